// The official `openai` npm client against a running ActorQuery server (ACTORQUERY_BASE_URL, e.g.
// http://127.0.0.1:PORT/v1): tool_choice "required" gives a call whose arguments validate; the streamed deltas
// (read raw, and assembled by the client's own ChatCompletionStream) join to the answer not streamed; a tool result in
// the history is accepted and answered. Exits non-zero with the failed assertion; prints a JSON summary.
import assert from "node:assert/strict";
import OpenAI from "openai";
import { z } from "zod";

const client = new OpenAI({ baseURL: process.env.ACTORQUERY_BASE_URL, apiKey: "unused", maxRetries: 0 });
const parameters = {
  type: "object",
  properties: { a: { type: "integer" }, b: { type: "integer" }, note: { type: "string", maxLength: 4 } },
  required: ["a", "b"],
  additionalProperties: false,
};
const AddArgs = z.strictObject({ a: z.number().int(), b: z.number().int(), note: z.string().max(4).optional() });
const tools = [{ type: "function", function: { name: "add", description: "Adds two integers.", parameters } }];
const question = [{ role: "user", content: "What is 2 + 3?" }];

// Required, sampled hot: only the grammar keeps the arguments valid.
const hot = (await client.chat.completions.create({
  model: "default", messages: question, tools, tool_choice: "required", temperature: 1.5, seed: 11, max_tokens: 100,
})).choices[0];
assert.equal(hot.finish_reason, "tool_calls");
assert.equal(hot.message.tool_calls.length, 1);
const call = hot.message.tool_calls[0];
assert.match(call.id, /^call_/);
assert.equal(call.type, "function");
assert.equal(call.function.name, "add");
AddArgs.parse(JSON.parse(call.function.arguments));

// The same request, greedy: whole, streamed raw, and streamed through the client's assembler.
const greedy = { model: "default", messages: question, tools, tool_choice: "required", temperature: 0, max_tokens: 100 };
const whole = (await client.chat.completions.create(greedy)).choices[0].message.tool_calls[0];
const parts = [];
let finish = null;
for await (const chunk of await client.chat.completions.create({ ...greedy, stream: true })) {
  const choice = chunk.choices[0];
  if (!choice) continue;
  assert.ok(!choice.delta.content, `content leaked: ${choice.delta.content}`);
  parts.push(...(choice.delta.tool_calls ?? []));
  finish ??= choice.finish_reason;
}
assert.equal(finish, "tool_calls");
assert.equal(parts[0].index, 0);
assert.match(parts[0].id, /^call_/);
assert.equal(parts[0].function.name, whole.function.name);
assert.ok(parts.length > 2, `the arguments came in ${parts.length - 1} delta(s), not as the model wrote them`);
assert.equal(parts.map(p => p.function?.arguments ?? "").join(""), whole.function.arguments);
const assembled = await client.chat.completions.stream(greedy).finalChatCompletion();
assert.deepEqual(assembled.choices[0].message.tool_calls.map(c => [c.function.name, c.function.arguments]),
  [[whole.function.name, whole.function.arguments]]);

// The call and its result in the history: accepted, rendered into the prompt, and answered.
const history = [
  ...question,
  { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "add", arguments: '{"a": 2, "b": 3}' } }] },
  { role: "tool", tool_call_id: "call_1", content: "5" },
];
const answer = await client.chat.completions.create({ model: "default", messages: history, tools, temperature: 0, max_tokens: 30 });
const plain = await client.chat.completions.create({ model: "default", messages: question, tools, temperature: 0, max_tokens: 30 });
assert.ok(["stop", "length", "tool_calls"].includes(answer.choices[0].finish_reason), answer.choices[0].finish_reason);
assert.ok(answer.usage.prompt_tokens > plain.usage.prompt_tokens + 5, "the tool call and result did not reach the prompt");

console.log(JSON.stringify({ ok: true, required: call.function, streamed_parts: parts.length, answer: answer.choices[0].message }));
