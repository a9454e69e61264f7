// Fuzzes a running ActorQuery server with mutated requests and checks what a client must be able to rely on:
// no 5xx other than 503/504 with a reason, no connection dropped before a response, resident memory within 10% of
// its level after the warm-up, and a normal query answered right afterwards. Node 20, no dependencies.
//
//   node tools/fuzz-api/fuzz.mjs --url http://127.0.0.1:8000 --key KEY [--pid PID] [--requests 10000]
//                                [--concurrency 8] [--warmup 5000] [--seed N]
// The warm-up is 30 normal queries and then mutated requests like the run's (checked the same way), in batches of 500 until
// the server's resident memory grew less than 1% over the last batch (at least --warmup, at most 8,000): its heaps, pools and
// native allocators grow to what such traffic needs (about 60 MiB over the first 3,000 requests with the default model, of
// which the managed heap is none), and the run then shows whether memory keeps growing, which is a leak.
// Exit code 0 when every check held, 1 otherwise; the seed is printed first, so a failing run can be repeated.
import http from "node:http";
import fs from "node:fs";

const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) =>
  a.startsWith("--") ? [...pairs, [a.slice(2), all[i + 1]]] : pairs, []));
const url = new URL(args.url ?? "http://127.0.0.1:8000");
const key = args.key ?? "";
// With an admin key, each memory reading follows POST /admin/cleanup (a full garbage collection and malloc_trim in the
// server and its workers), so that garbage the traffic left and the collector has not taken yet does not read as growth;
// the readings without it are printed too.
const adminKey = args["admin-key"] ?? "";
const pid = args.pid ? Number(args.pid) : null;
const total = Number(args.requests ?? 10000);
const concurrency = Number(args.concurrency ?? 8);
const warmup = Number(args.warmup ?? 5000);
const seed = Number(args.seed ?? Math.floor(Math.random() * 2 ** 31));
console.log(`seed ${seed} (repeat with --seed ${seed}); at least ${warmup} warm-up and ${total} requests at concurrency ${concurrency} against ${url.origin}`);

// mulberry32: small, seedable, good enough to pick mutations.
let state = seed >>> 0;
function random() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (list) => list[Math.floor(random() * list.length)];
const chance = (p) => random() < p;
const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));

let agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });

// ---- what is sent ----
// JSON text with the escapes a JSON encoder would never write: lone surrogates, NUL, noncharacters.
const oddStrings = [
  "\\ud800", "\\udbff", "\\udc00", "a\\ud83d", "\\ude00b", "\\ud83d\\ude00", "\\u0000", "\\uffff", "\\ufffe", "\\u202e\\u0645\\u0631",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "混合 текст ﷽", "\\\\", "\\\"", "%s%n%x", "{{ 7*7 }}", "{% for x in range(99999999) %}x{% endfor %}", "</s><|im_end|>",
];
function text() {
  switch (int(0, 5)) {
    case 0: return "What is " + int(0, 999) + " + " + int(0, 999) + "?";
    case 1: return pick(oddStrings);
    case 2: return "x".repeat(int(0, 3000));
    case 3: return pick(oddStrings).repeat(int(1, 200));
    case 4: return "";
    default: return "Compute " + int(0, 999) + " - " + int(0, 999) + "." + (chance(0.3) ? pick(oddStrings) : "");
  }
}
// A JSON value of any type, sometimes deep or large.
function anyValue(depth = 0) {
  switch (int(0, 11)) {
    case 0: return "null";
    case 1: return pick(["true", "false"]);
    case 2: return String(int(-5, 600));
    case 3: return pick(["-1", "0", "1e308", "-1e308", "99999999999999999999", "0.5", "1.5", "-0", "3.4e38", "1e-400"]);
    case 4: return JSON.stringify(text()).replace(/\\\\u/g, "\\u");
    case 5: return `"${pick(oddStrings)}"`;
    case 6: return depth < 3 ? `[${Array.from({ length: int(0, 4) }, () => anyValue(depth + 1)).join(",")}]` : "[]";
    case 7: return depth < 3 ? `{"a": ${anyValue(depth + 1)}, "${pick(oddStrings)}": 1}` : "{}";
    case 8: return "[".repeat(int(60, 2000)) + "]".repeat(int(0, 2000)); // past the reader's depth limit
    case 9: return `"${"y".repeat(int(10_000, 1_200_000))}"`; // around the body limit
    case 10: return `[${Array.from({ length: int(1, 3000) }, () => int(0, 300)).join(",")}]`;
    default: return `"${text()}"`;
  }
}
const message = () => `{"role": ${chance(0.85) ? JSON.stringify(pick(["user", "system", "assistant", "developer"])) : anyValue()}, "content": ${
  chance(0.7) ? `"${text()}"` : chance(0.5) ? `[{"type": "text", "text": "${text()}"}]` : anyValue()}}`;

// A valid request of each endpoint as fields, each of which a mutation may drop, retype or duplicate.
function fields(path) {
  const common = {
    temperature: pick(["0", "0.7", "1"]), top_p: "1", stream: pick(["false", "true"]), seed: String(int(0, 99)),
    stop: chance(0.5) ? `["${text()}"]` : `"\\n"`,
  };
  if (path === "/query")
    return { prompt: `"${text()}"`, max_new_tokens: String(int(1, 8)), ...common, top_k: "0", min_p: "0", repetition_penalty: "1", timeout_ms: "20000" };
  if (path === "/v1/chat/completions")
    return { model: '"default"', messages: `[${Array.from({ length: int(1, 4) }, message).join(",")}]`, max_tokens: String(int(1, 8)), ...common,
      stream_options: '{"include_usage": true}', logprobs: pick(["false", "true"]), top_logprobs: String(int(0, 3)), n: "1" };
  return { model: '"default"', prompt: chance(0.8) ? `"${text()}"` : `[${int(1, 50)}, ${int(1, 50)}]`, max_tokens: String(int(1, 8)), ...common, echo: "false" };
}

function body(path) {
  const f = fields(path);
  for (const name of Object.keys(f)) {
    if (chance(0.06)) delete f[name];
    else if (chance(0.08)) f[name] = anyValue();
  }
  if (chance(0.05)) f[pick(["unknown", "max_tokens", "prompt", "messages", "max_new_tokens"])] = anyValue();
  let json = "{" + Object.entries(f).map(([k, v]) => `"${k}": ${v}`).join(", ") + "}";
  if (chance(0.04)) json = json + json.slice(1); // duplicate keys (and a trailing mess)
  switch (int(0, 40)) {
    case 0: return json.slice(0, int(0, json.length)); // truncated
    case 1: return "";
    case 2: return pick(["[]", "null", "\"{}\"", "42", "{", "}", "{\"prompt\": \"a\",}"]);
    case 3: return Buffer.concat([Buffer.from('{"prompt": "'), Buffer.from([pick([0xc3, 0xff, 0xed, 0xf0, 0x80]), pick([0x28, 0xa0, 0x80, 0x00])]), Buffer.from('"}')]);
    case 4: return Buffer.from(json, "latin1");
    case 5: return Buffer.from(json, "utf16le");
    default: return json;
  }
}

function headers(hasBody) {
  const h = {};
  if (hasBody && !chance(0.04))
    h["content-type"] = chance(0.9) ? "application/json" : pick(["text/plain", "application/json; charset=latin1", "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x", "application/json; charset=utf-8", "*/*", "application/jsonx", ";;;", "application/json; charset="]);
  const auth = chance(0.85) ? `Bearer ${key}` : pick(["", `Bearer ${key}x`, "Bearer", "Bearer ", `bearer ${key}`, `Basic ${key}`, `Bearer  ${key}`,
    `Bearer ${key} extra`, `Bearer ${"k".repeat(int(100, 20000))}`, "Bearer \u00e9\u00e8", `Token ${key}`, `${key}`]);
  if (auth) h.authorization = auth;
  if (chance(0.02)) h["x-request-id"] = pick(["id-1", "x".repeat(200), "a b", "\u00ff"]);
  return h;
}

const endpoints = [
  ["POST", "/query", 30], ["POST", "/v1/chat/completions", 30], ["POST", "/v1/completions", 20], ["GET", "/v1/models", 3], ["GET", "/v1/models/default", 1],
  ["GET", "/health", 2], ["GET", "/memory", 2], ["GET", "/cluster", 1], ["GET", "/", 1], ["GET", "/metrics", 1], ["GET", "/events?interval_ms=250", 1],
  ["POST", "/admin/drain", 1], ["GET", "/query", 1], ["DELETE", "/v1/chat/completions", 1], ["POST", "/nowhere", 1], ["GET", "/health/ready", 1],
];
const weights = endpoints.reduce((sum, e) => sum + e[2], 0);
function endpoint() {
  let r = random() * weights;
  for (const e of endpoints) if ((r -= e[2]) < 0) return e;
  return endpoints[0];
}

// ---- how it is sent and judged ----
function send(method, path, payload, hdrs, timeoutMs = 120_000) {
  return new Promise((resolve) => {
    let responded = null;
    const request = http.request({ host: url.hostname, port: url.port, method, path, agent, headers: hdrs }, (response) => {
      const chunks = [];
      let size = 0;
      responded = { status: response.statusCode, headers: response.headers };
      // An event stream ends by itself for queries; the dashboard's feed does not: read a little of it and hang up.
      const feed = path.startsWith("/events") && response.statusCode === 200;
      response.on("data", (c) => { size += c.length; if (size < 65536) chunks.push(c); if (feed && size > 2000) request.destroy(); });
      response.on("end", () => resolve({ ...responded, body: Buffer.concat(chunks).toString("utf8") }));
      response.on("error", () => resolve({ ...responded, body: Buffer.concat(chunks).toString("utf8"), cut: !feed }));
      response.on("aborted", () => { if (!feed) responded.cut = true; });
    });
    request.setTimeout(timeoutMs, () => request.destroy(new Error("timeout")));
    request.on("error", (e) => {
      // After a response the server may close a connection whose body it refused to read (413): not a drop.
      if (responded) resolve({ ...responded, body: "" });
      else if (e.code === "ERR_INVALID_CHAR" || e.code === "ERR_HTTP_INVALID_HEADER_VALUE") resolve({ status: 0, skipped: true });
      else resolve({ status: 0, error: `${e.code ?? ""} ${e.message}`.trim() });
    });
    if (payload !== null && payload !== undefined) request.write(payload);
    request.end();
  });
}

function reasonOf(r) {
  try {
    const j = JSON.parse(r.body.split("\n").find((l) => l.trim().startsWith("{")) ?? r.body);
    return j.detail ?? j.error?.message ?? j.reason ?? j.status ?? null;
  } catch { return null; }
}

function rssBytes() {
  if (!pid) return null;
  const line = fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return Number(line.split(/\s+/)[1]) * 1024;
}
const mib = (b) => (b / 1048576).toFixed(1) + " MiB";

async function cleanedRss() {
  if (!adminKey || !pid) return null;
  // The traffic's connections close first (as its clients would go), and the server gets a few idle seconds: what their
  // buffers held is not growth either.
  agent.destroy();
  agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  await new Promise((res) => setTimeout(res, 15000));
  // The lowest of three cleaned readings a second apart: what a collection leaves varies by several MiB from one to the next
  // (the runtime decommits in its own time), and a leak is what no cleanup gives back.
  let lowest = null;
  for (let i = 0; i < 3; i++) {
    const r = await send("POST", "/admin/cleanup", "", { authorization: `Bearer ${adminKey}` });
    if (r.status !== 200) { console.log(`POST /admin/cleanup answered ${r.status}: ${r.body.slice(0, 200)}`); return null; }
    await new Promise((res) => setTimeout(res, 1000));
    const now = rssBytes();
    lowest = lowest === null ? now : Math.min(lowest, now);
  }
  return lowest;
}
// The server's own reading (GET /memory): what of the resident memory is the managed heap, for telling a leak from heaps
// and pools that the traffic sized.
async function serverMemory() {
  const r = await send("GET", "/memory", null, { authorization: `Bearer ${key}` });
  try { const a = JSON.parse(r.body).actual; return `managed heap ${mib(a.managed_bytes)}, unaccounted ${mib(a.unaccounted_bytes)}`; }
  catch { return `GET /memory answered ${r.status}`; }
}

async function normalQuery() {
  const r = await send("POST", "/v1/chat/completions",
    JSON.stringify({ messages: [{ role: "user", content: "What is 37 + 58?" }], temperature: 0 }),
    { "content-type": "application/json", authorization: `Bearer ${key}` });
  return { ok: r.status === 200 && r.body.includes("95"), text: `${r.status} ${r.body.slice(0, 300)}` };
}

// ---- the run ----
const started = Date.now();
for (let i = 0; i < 30; i++) {
  const w = await normalQuery();
  if (!w.ok) { console.log(`warm-up query failed: ${w.text}`); process.exit(1); }
}
const byStatus = new Map();
const failures = [];
let skipped = 0, sent = 0, limit = 0, warmedWith = 0;
for (let previous = rssBytes(); ;) {
  limit += 500;
  await Promise.all(Array.from({ length: concurrency }, worker));
  await new Promise((r) => setTimeout(r, 1000));
  const now = rssBytes();
  warmedWith = limit;
  if (limit >= 8000 || (limit >= warmup && (now === null || (now - previous) / previous < 0.01))) break;
  previous = now;
}
const rssAfterWarmup = rssBytes();
const memoryAfterWarmup = await serverMemory();
const cleanedAfterWarmup = await cleanedRss();
const runStarted = Date.now();
const warmupFailures = failures.length;
byStatus.clear();
sent = 0; skipped = 0; limit = total;
await Promise.all(Array.from({ length: concurrency }, worker));

async function worker() {
  while (sent < limit) {
    sent++;
    const [method, path] = endpoint();
    const payload = method === "POST" ? (chance(0.97) ? body(path) : "") : null;
    const r = await send(method, path, payload, headers(payload !== null));
    if (r.skipped) { skipped++; continue; }
    byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
    const shown = typeof payload === "string" ? payload.slice(0, 200) : payload ? `(${payload.length} bytes)` : "";
    if (r.status === 0) failures.push(`dropped connection: ${method} ${path}: ${r.error} ${shown}`);
    else if (r.cut) failures.push(`response cut: ${method} ${path} ${r.status} ${shown}`);
    else if (r.status >= 500 && !((r.status === 503 || r.status === 504) && reasonOf(r)))
      failures.push(`${r.status}: ${method} ${path} ${shown} -> ${r.body.slice(0, 300)}`);
  }
}
await new Promise((r) => setTimeout(r, 2000));
const rssAfter = rssBytes();
const memoryAfter = await serverMemory();
const cleanedAfter = await cleanedRss();
const after = await normalQuery();
const seconds = ((Date.now() - runStarted) / 1000).toFixed(0);
const warmupSeconds = ((runStarted - started) / 1000).toFixed(0);

const statuses = [...byStatus.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}: ${n}`).join(", ");
console.log(`warm-up: ${warmedWith} mutated requests in ${warmupSeconds} s, until resident memory grew less than 1% over 500`);
console.log(`sent ${sent - skipped} requests in ${seconds} s (${skipped} not sendable by node's HTTP client, skipped); statuses ${statuses}`);
let ok = true;
console.log(`unexplained 5xx, dropped or cut responses: ${failures.length} (${warmupFailures} of them in the warm-up)`);
for (const f of failures.slice(0, 20)) console.log("  " + f);
if (failures.length > 0) ok = false;
if (rssAfterWarmup !== null) {
  const change = (rssAfter - rssAfterWarmup) / rssAfterWarmup;
  const cleaned = cleanedAfterWarmup !== null && cleanedAfter !== null;
  const judged = cleaned ? (cleanedAfter - cleanedAfterWarmup) / cleanedAfterWarmup : change;
  const within = Math.abs(judged) <= 0.10;
  console.log(`resident memory: ${mib(rssAfterWarmup)} after the warm-up, ${mib(rssAfter)} after the run (${(change * 100).toFixed(1)}%${cleaned ? "" : `, ${within ? "within" : "NOT within"} 10%`})`);
  console.log(`  after the warm-up: ${memoryAfterWarmup}; after the run: ${memoryAfter}`);
  if (cleaned)
    console.log(`resident memory after POST /admin/cleanup: ${mib(cleanedAfterWarmup)} after the warm-up, ${mib(cleanedAfter)} after the run `
      + `(${(judged * 100).toFixed(1)}%, ${within ? "within" : "NOT within"} 10%)`);
  ok &&= within;
}
console.log(`normal query afterwards: ${after.ok ? "answered (95)" : "FAILED " + after.text}`);
ok &&= after.ok;
console.log(ok ? `PASS (seed ${seed})` : `FAIL (seed ${seed})`);
agent.destroy();
process.exit(ok ? 0 : 1);
