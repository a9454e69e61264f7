// Continuous load on a local cluster's gateways while its nodes restart (scripts/rolling-restart.sh):
//   node scripts/lib/rolling-load.mjs BASEPORT NODES CONCURRENCY STOPFILE OUT.json
// CONCURRENCY loops, half streamed and half not, each sending native /query requests (64 new tokens) to the gateways
// in turn until STOPFILE exists. Like a load balancer, a request that a gateway does not take (connection refused, or
// 503 before any token: shutting down, no model ready) goes to the next gateway: counted as redirected, not failed.
// A request that a gateway took fails when it does not end as it should: a non-200 reply, a stream without its `done`
// event (an `error` event, a cut connection). OUT.json: the counts and every failure.
import { existsSync, writeFileSync } from "node:fs";

const [base, nodes, concurrency, stopFile, out] = process.argv.slice(2);
const counts = { sent: 0, ok: 0, failed: 0, redirected: 0, streamed: 0 };
const failures = [];
let next = 0;
const gateway = () => `http://127.0.0.1:${+base + (next++ % +nodes)}`;
const body = (stream) => JSON.stringify({ prompt: "What is 12 + 30?", max_tokens: 64, ignore_eos: true, temperature: 0, stream });

async function once(stream) {
  for (let tries = 0; tries < 3 * +nodes; tries++) {
    const url = gateway();
    let r;
    try { r = await fetch(`${url}/query`, { method: "POST", headers: { "content-type": "application/json" }, body: body(stream) }); }
    catch { counts.redirected++; await new Promise(s => setTimeout(s, 50)); continue; }
    if (r.status === 503) { await r.text(); counts.redirected++; continue; }
    counts.sent++;
    if (r.status !== 200) { counts.failed++; failures.push({ url, stream, status: r.status, body: await r.text() }); return; }
    if (!stream) {
      const j = await r.json().catch(e => ({ error: String(e) }));
      if (j.usage?.completion_tokens === 64) counts.ok++; else { counts.failed++; failures.push({ url, stream, body: j }); }
      return;
    }
    counts.streamed++;
    let text = "", last = null;
    try { for await (const part of r.body) text += new TextDecoder().decode(part); }
    catch (e) { counts.failed++; failures.push({ url, stream, cut: String(e), tail: text.slice(-300) }); return; }
    for (const block of text.split("\n\n")) { const m = /^event: (\w+)/m.exec(block); if (m) last = m[1]; }
    if (last === "done") counts.ok++; else { counts.failed++; failures.push({ url, stream, last, tail: text.slice(-300) }); }
    return;
  }
  counts.failed++; failures.push({ stream, reason: "no gateway took it after trying each three times" });
}

async function loop(i) { while (!existsSync(stopFile)) await once(i % 2 === 0); }
await Promise.all([...Array(+concurrency).keys()].map(loop));
writeFileSync(out, JSON.stringify({ counts, failures }, null, 1));
console.log(`${counts.sent} taken (${counts.streamed} streamed): ${counts.ok} ok, ${counts.failed} failed; ${counts.redirected} redirected to another gateway`);
