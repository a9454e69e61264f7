// Renders tools/chat-template-reference/conversations.json with two tools-aware chat templates through Hugging Face's
// own JavaScript Jinja (@huggingface/jinja, as transformers.js applies chat templates), and writes the references the
// Tokenization tests compare against:
//   tests/fixtures/chat-template-tools/qwen3.json             the template of models/shapes/qwen2.5-0.5b (Qwen3's)
//   tests/fixtures/chat-template-tools/qwen2.5-instruct.json  Qwen2.5-Instruct's template (qwen2.5-instruct.jinja beside it)
//   tests/fixtures/chat-template-tools/llama3.1-instruct.json Llama 3.1/3.3-Instruct's template (llama3.1-instruct.jinja)
// A conversation a template rejects (raise_exception) is written with the template's message as "error" instead.
// Each conversation is rendered with tools and add_generation_prompt true, messages passed as transformers passes them
// (assistant tool_calls as {"type": "function", "function": {"name", "arguments": <object>}}).
//
//   cd tools/chat-template-reference && npm install --no-save @huggingface/jinja@0.5.13 && node render.mjs
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Template } from "@huggingface/jinja";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const fixtures = path.join(root, "tests/fixtures/chat-template-tools");
const config = JSON.parse(fs.readFileSync(path.join(root, "models/shapes/qwen2.5-0.5b/tokenizer_config.json"), "utf8"));
const input = JSON.parse(fs.readFileSync(path.join(here, "conversations.json"), "utf8"));
const qwenSpecial = {};
for (const name of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
  const t = config[name];
  if (t != null) qwenSpecial[name] = typeof t === "string" ? t : t.content;
}
const llamaSpecial = { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" };
const read = name => fs.readFileSync(path.join(fixtures, name), "utf8");
const templates = {
  "qwen3": [config.chat_template, qwenSpecial],
  "qwen2.5-instruct": [read("qwen2.5-instruct.jinja"), qwenSpecial],
  "llama3.1-instruct": [read("llama3.1-instruct.jinja"), llamaSpecial],
};

function render(template, messages, special) {
  try {
    return { rendered: template.render({ messages, tools: input.tools, add_generation_prompt: true, ...special }) };
  } catch (e) {
    return { error: e.message };
  }
}

for (const [name, [source, special]] of Object.entries(templates)) {
  const template = new Template(source);
  const conversations = input.conversations.map(c => ({ name: c.name, messages: c.messages, ...render(template, c.messages, special) }));
  const out = path.join(fixtures, `${name}.json`);
  fs.writeFileSync(out, JSON.stringify({ tools: input.tools, conversations }, null, 2) + "\n");
  console.log(`wrote ${conversations.length} conversations to ${path.relative(root, out)}`);
}
