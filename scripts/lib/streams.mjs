// Runs N streamed completions at once against ActorQuery's native /query and writes what each client saw:
//   node scripts/lib/streams.mjs URL N MAX_TOKENS TEMPERATURE SEED OUT.json
// Stream i asks "Story i:" (so that the streams differ) with ignore_eos; OUT.json holds, per stream, its text (the
// chunks concatenated), its terminal event (done / error) with its data, and its number of chunks. Node 20's fetch, no
// package: the server's SSE is read line by line.
import { writeFileSync } from "node:fs";

const [url, n, maxTokens, temperature, seed, out] = process.argv.slice(2);
async function stream(i) {
  const body = { prompt: `Story ${i}: once upon a time`, max_tokens: +maxTokens, ignore_eos: true, stream: true,
                 temperature: +temperature, timeout_ms: 1800000 };
  if (seed !== "none") body.seed = +seed + i;
  const result = { i, text: "", chunks: 0, end: null, data: null, status: 0 };
  try {
    const r = await fetch(`${url}/query`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    result.status = r.status;
    if (r.status !== 200) { result.end = "http"; result.data = await r.text(); return result; }
    const decoder = new TextDecoder();
    let buffer = "", event = null;
    for await (const part of r.body) {
      buffer += decoder.decode(part, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl); buffer = buffer.slice(nl + 1);
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) {
          const data = line.slice(6);
          if (event === "chunk") { result.text += JSON.parse(data).text; result.chunks++; }
          else { result.end = event; result.data = data; }
        }
      }
    }
  } catch (e) { result.end = "connection"; result.data = String(e); }
  return result;
}
const results = await Promise.all([...Array(+n).keys()].map(stream));
writeFileSync(out, JSON.stringify(results, null, 1));
const bad = results.filter(r => r.end !== "done");
console.log(`${results.length} streams: ${results.length - bad.length} done, ${bad.length} not (${bad.map(r => `${r.i}: ${r.end} ${r.data}`).join("; ")})`);
