// Renders tools/chat-template-reference/conversations.json with two tools-aware chat templates through Hugging Face's
// own JavaScript Jinja (@huggingface/jinja, as transformers.js applies chat templates), and writes the references the
// Tokenization tests compare against:
//   tests/fixtures/chat-template-tools/qwen3.json             the template of models/shapes/qwen2.5-0.5b (Qwen3's)
//   tests/fixtures/chat-template-tools/qwen2.5-instruct.json  Qwen2.5-Instruct's template (qwen2.5-instruct.jinja beside it)
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
const templates = {
  "qwen3": config.chat_template,
  "qwen2.5-instruct": fs.readFileSync(path.join(fixtures, "qwen2.5-instruct.jinja"), "utf8"),
};

const special = {};
for (const name of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
  const t = config[name];
  if (t != null) special[name] = typeof t === "string" ? t : t.content;
}

for (const [name, source] of Object.entries(templates)) {
  const template = new Template(source);
  const conversations = input.conversations.map(c => ({
    name: c.name,
    messages: c.messages,
    rendered: template.render({ messages: c.messages, tools: input.tools, add_generation_prompt: true, ...special }),
  }));
  const out = path.join(fixtures, `${name}.json`);
  fs.writeFileSync(out, JSON.stringify({ tools: input.tools, conversations }, null, 2) + "\n");
  console.log(`wrote ${conversations.length} conversations to ${path.relative(root, out)}`);
}
