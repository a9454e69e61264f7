// The Vercel AI SDK (`ai` with `@ai-sdk/openai`'s chat model) against a running ActorQuery server
// (ACTORQUERY_BASE_URL): generateText with toolChoice "required" gives a call whose input validates; streamText's
// tool call (assembled by the SDK from the server's deltas) equals generateText's; a tool executed by the SDK has its
// result sent back and answered; generateObject with a zod schema gets an object of that schema. Exits non-zero with
// the failed assertion; prints a JSON summary.
import assert from "node:assert/strict";
import { createOpenAI } from "@ai-sdk/openai";
import { generateObject, generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";

const model = createOpenAI({ baseURL: process.env.ACTORQUERY_BASE_URL, apiKey: "unused" }).chat("default");
// The tool's schema as JSON Schema, short enough for the default model's 512-token context (zod's own conversion
// spells out the safe-integer bounds and $schema); zod checks each input against the same constraints.
const inputSchema = jsonSchema({
  type: "object",
  properties: { a: { type: "integer" }, b: { type: "integer" }, note: { type: "string", maxLength: 4 } },
  required: ["a", "b"],
  additionalProperties: false,
});
const AddArgs = z.strictObject({ a: z.number().int(), b: z.number().int(), note: z.string().max(4).optional() });
const tools = { add: tool({ description: "Adds two integers.", inputSchema }) };
const prompt = "What is 2 + 3?";

const hot = await generateText({ model, tools, toolChoice: "required", prompt, temperature: 1.5, seed: 11, maxOutputTokens: 100, maxRetries: 0 });
assert.equal(hot.finishReason, "tool-calls");
assert.equal(hot.toolCalls.length, 1);
assert.equal(hot.toolCalls[0].toolName, "add");
assert.ok(!hot.toolCalls[0].invalid, `the SDK found the input invalid: ${JSON.stringify(hot.toolCalls[0])}`);
AddArgs.parse(hot.toolCalls[0].input);

const greedy = { model, tools, toolChoice: "required", prompt, temperature: 0, maxOutputTokens: 100, maxRetries: 0 };
const whole = await generateText(greedy);
const streamed = streamText(greedy);
let deltas = 0;
for await (const part of streamed.fullStream) {
  if (part.type === "error") throw part.error;
  if (part.type === "tool-input-delta") deltas++;
}
assert.equal(await streamed.finishReason, "tool-calls");
assert.deepEqual((await streamed.toolCalls).map(c => [c.toolName, c.input]), whole.toolCalls.map(c => [c.toolName, c.input]));

// The SDK runs the tool and sends its result back; the second step may not call again, so it answers.
const executed = await generateText({
  model, prompt, temperature: 0, maxOutputTokens: 100, maxRetries: 0, toolChoice: "required", stopWhen: stepCountIs(2),
  tools: { add: tool({ description: "Adds two integers.", inputSchema, execute: async ({ a, b }) => a + b }) },
  prepareStep: ({ stepNumber }) => (stepNumber === 1 ? { toolChoice: "none" } : undefined),
});
assert.equal(executed.steps.length, 2);
assert.equal(executed.steps[0].toolResults.length, 1);
assert.ok(["stop", "length"].includes(executed.steps[1].finishReason), executed.steps[1].finishReason);
assert.ok(executed.steps[1].usage.inputTokens > executed.steps[0].usage.inputTokens + 5, "the tool result did not reach the prompt");

const Sum = z.object({ answer: z.number() });
const { object } = await generateObject({ model, schema: Sum, prompt: "What is 37 + 58?", temperature: 0, maxOutputTokens: 40, maxRetries: 0 });
Sum.parse(object);

console.log(JSON.stringify({ ok: true, required: hot.toolCalls[0].input, input_deltas: deltas, answer: executed.steps[1].text, object }));
