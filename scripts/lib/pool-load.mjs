// Requests alternating across a model pool's models (scripts/model-pool.sh):
//   node scripts/lib/pool-load.mjs URL REQUESTS CONCURRENCY MODELS(comma-separated) MAX_TOKENS OUT.json
// Request i asks for MODELS[i % MODELS.length] on /v1/chat/completions (non-streamed, temperature 0); CONCURRENCY run at
// once. OUT.json: every request's model, status, seconds and error; prints the counts by status and the slowest.
import { writeFileSync } from "node:fs";

const [url, requests, concurrency, modelList, maxTokens, out] = process.argv.slice(2);
const models = modelList.split(",");
const results = [];
let next = 0;

async function one(i) {
  const model = models[i % models.length];
  const started = performance.now();
  let status = 0, error = null;
  try {
    const r = await fetch(`${url}/v1/chat/completions`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: `Request ${i}: what is 12 + 30?` }], max_tokens: +maxTokens, temperature: 0 }),
    });
    status = r.status;
    const j = await r.json().catch(e => ({ error: { message: String(e) } }));
    if (status !== 200) error = j.error?.message ?? JSON.stringify(j);
    else if (j.model !== model) error = `answered by ${j.model}`;
  } catch (e) { error = String(e); }
  results.push({ i, model, status, seconds: (performance.now() - started) / 1000, error });
}

async function worker() { for (let i; (i = next++) < +requests;) await one(i); }
await Promise.all([...Array(+concurrency).keys()].map(worker));
results.sort((a, b) => a.i - b.i);
writeFileSync(out, JSON.stringify(results, null, 1));
const byStatus = {};
for (const r of results) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
const slowest = results.reduce((a, b) => (b.seconds > a.seconds ? b : a));
const wrong = results.filter(r => r.error).length;
console.log(`${results.length} requests: ${Object.entries(byStatus).map(([s, n]) => `${n} x ${s}`).join(", ")}; ${wrong} with an error; `
  + `slowest ${slowest.seconds.toFixed(1)} s (${slowest.model})`);
