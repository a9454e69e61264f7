// ActorQuery dashboard: one EventSource on /events (init, state every second, timeline entries), charts drawn on
// <canvas> by hand, and a playground on the public POST /v1/chat/completions with stream: true. No dependencies.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const WINDOW_S = 600;
  const series = new Map(); // unix second -> sample
  let timelineIds = new Set();

  // ---- formatting ----
  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0, v = Math.abs(n);
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (n < 0 ? "-" : "") + (i === 0 ? v.toFixed(0) : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)) + " " + units[i];
  }
  function clock(iso) { const d = new Date(iso); return d.toLocaleTimeString([], { hour12: false }); }
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "style") e.style.cssText = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c === null || c === undefined ? "" : String(c)));
    return e;
  }
  function pill(text, cls) { return el("span", { class: "pill " + cls }, text); }

  // ---- live feed ----
  // With API keys on, every call sends the key of the playground's field (kept for this tab in sessionStorage). The
  // live feed's EventSource cannot set headers, so it passes the key as /events?access_token=, which only /events takes.
  let source = null;
  function connect() {
    if (source) source.close();
    const key = apiKey();
    source = new EventSource("/events" + (key ? "?access_token=" + encodeURIComponent(key) : ""));
    const current = source;
    source.addEventListener("init", (e) => {
      const init = JSON.parse(e.data);
      $("model").textContent = "model " + init.model;
      series.clear();
      for (const s of init.series) series.set(Date.parse(s.time) / 1000, s);
      $("timeline").replaceChildren();
      timelineIds = new Set();
      for (const entry of init.timeline) addTimeline(entry);
      drawCharts();
    });
    source.addEventListener("state", (e) => render(JSON.parse(e.data)));
    source.addEventListener("timeline", (e) => addTimeline(JSON.parse(e.data)));
    source.onerror = () => {
      // A refused feed (401) is closed for good, while a lost one reconnects by itself: ask which it was.
      if (current.readyState === EventSource.CLOSED) { checkKey(); return; }
      $("status").textContent = "reconnecting"; $("status").className = "pill warning";
    };
  }

  async function checkKey() {
    try {
      const r = await fetch("/v1/models", { headers: authHeaders() });
      if (r.status === 401) {
        $("status").textContent = apiKey() ? "API key not valid" : "API key needed";
        $("status").className = "pill warning";
        $("pg-key").focus();
        return;
      }
    } catch (_) { /* the server is gone: try again below */ }
    setTimeout(connect, 2000);
  }

  function render(s) {
    $("node").textContent = "node " + s.node + " · pid " + s.pid;
    const status = $("status");
    status.textContent = s.status.replace(/_/g, " ");
    status.className = "pill " + (s.ready ? "ok" : s.status === "memory_pressure" || s.status === "unavailable" ? "critical" : "warning");
    renderWorkers(s.workers);
    renderMemory(s.memory);
    renderAdmission(s);
    renderAlerts(s.alerts);
    renderCluster(s.cluster);
    if (s.sample) {
      series.set(Date.parse(s.sample.time) / 1000, s.sample);
      drawCharts();
    }
  }

  function renderWorkers(workers) {
    const body = $("workers").tBodies[0];
    body.replaceChildren(...workers.map((w) => el("tr", { "data-worker": w.worker, "data-state": w.state },
      el("td", {}, w.worker), el("td", {}, w.node), el("td", {}, pill(w.state, "state-" + w.state)),
      el("td", {}, w.pid === null ? "–" : w.pid), el("td", {}, w.device || "–"), el("td", {}, w.running), el("td", {}, w.queued),
      el("td", {}, w.kv_free_tokens + " / " + w.kv_capacity_tokens), el("td", {}, w.restarts), el("td", {}, w.oom_count),
      el("td", {}, w.degraded ? "level " + w.degrade_level + ": " + (w.degraded_reason || "") : "no"))));
    if (workers.length === 0) body.append(el("tr", {}, el("td", { colspan: "11", class: "muted" }, "no workers on this node")));
  }

  function renderMemory(m) {
    const bar = $("memory-bar"), legend = $("memory-legend");
    if (!m) return;
    $("memory-summary").textContent = m.summary;
    const kvPool = m.plan ? m.plan.kv_pool_bytes : m.kv.capacity_bytes;
    const kvUsed = Math.min(m.kv.used_bytes, kvPool);
    const parts = [
      ["other", "runtime and other", m.plan ? m.plan.runtime_overhead_bytes + m.plan.load_overhead_bytes + m.plan.loading_share_bytes : 0],
      ["weights", "weights", m.plan ? m.plan.weights_bytes : m.workers.reduce((a, w) => a + w.weights_bytes, 0)],
      ["kvused", "KV used", kvUsed],
      ["kvfree", "KV free", Math.max(0, kvPool - kvUsed)],
      ["act", "activations", m.plan ? m.plan.activation_peak_bytes : 0],
    ];
    const limit = m.limit ? m.limit.bytes : parts.reduce((a, p) => a + p[2], 0);
    const resident = m.actual ? m.actual.resident_bytes : null;
    const scale = Math.max(limit, resident || 0, 1);
    const segments = (total) => parts.map(([cls, name, value]) =>
      el("div", { class: "seg" + (value > 0 ? " some" : ""), "data-part": cls, title: name + " " + bytes(value),
        style: "width:" + (100 * value / Math.max(total, 1)).toFixed(3) + "%;background:var(--" + (cls === "other" ? "runtime" : cls) + ")" }));
    bar.replaceChildren(...segments(scale));
    $("plan-bar").replaceChildren(...segments(parts.reduce((a, p) => a + p[2], 0)));
    const marks = [];
    if (m.watchdog) {
      marks.push(["cleanup", "cleanup " + bytes(m.watchdog.cleanup_at_bytes), m.watchdog.cleanup_at_bytes]);
      marks.push(["pause", "pause " + bytes(m.watchdog.pause_at_bytes), m.watchdog.pause_at_bytes]);
      marks.push(["shed", "shed", m.watchdog.shed_at_bytes]);
    }
    if (resident !== null) marks.push(["resident", "resident " + bytes(resident), resident]);
    for (const [cls, label, at] of marks)
      bar.append(el("div", { class: "mark " + cls, title: label, style: "left:" + Math.min(100, 100 * at / scale).toFixed(3) + "%" },
        el("span", {}, cls === "shed" ? "" : label)));
    legend.replaceChildren(...parts.map(([cls, name, value]) =>
      el("span", {}, el("i", { style: "background:var(--" + (cls === "other" ? "runtime" : cls) + ")" }), name + " " + bytes(value))),
      el("span", { class: "muted" }, m.limit ? "limit " + bytes(limit) + " (" + m.limit.source + ")" : "watchdog off: no limit read"));
    const st = $("mem-state");
    const state = m.watchdog ? m.watchdog.state : "off";
    st.textContent = state;
    st.className = "pill " + (state === "normal" ? "ok" : state === "cleanup" ? "warning" : state === "off" ? "" : "critical");
  }

  function renderAdmission(s) {
    $("inflight-text").textContent = s.in_flight + " of " + s.max_in_flight;
    $("queued-text").textContent = s.queued + " of " + s.max_queue;
    $("inflight-bar").style.width = (s.max_in_flight ? 100 * s.in_flight / s.max_in_flight : 0) + "%";
    $("queued-bar").style.width = (s.max_queue ? 100 * s.queued / s.max_queue : 0) + "%";
    $("pause-reason").textContent = s.paused ? "admission paused: " + (s.pause_reason || "memory pressure") : (s.error || "");
  }

  function renderAlerts(alerts) {
    const list = $("alerts");
    if (!alerts || alerts.length === 0) { list.replaceChildren(el("li", { class: "muted" }, "none")); return; }
    list.replaceChildren(...alerts.map((a) => el("li", { class: "sev-" + a.severity, "data-kind": a.kind },
      el("time", {}, clock(a.time)), el("span", { class: "kind" }, a.kind), a.message)));
  }

  function renderCluster(c) {
    const body = $("cluster").tBodies[0];
    if (!c || !c.enabled) {
      body.replaceChildren();
      $("cluster-note").textContent = "this node runs without Akka.Cluster (a single node)";
      return;
    }
    $("cluster-note").textContent = "leader " + (c.leader || "none") + "; " + c.workers.length + " workers in the cluster";
    body.replaceChildren(...c.members.map((m) => el("tr", {},
      el("td", {}, m.address + (m.self ? " (this node)" : "")), el("td", {}, m.roles.join(", ")), el("td", {}, m.status),
      el("td", {}, m.reachable ? pill("yes", "ok") : pill("no", "critical")))));
  }

  function addTimeline(entry) {
    if (timelineIds.has(entry.id)) return;
    timelineIds.add(entry.id);
    const cls = "sev-" + entry.severity + (entry.alert === "resolved" ? " resolved" : "");
    const label = entry.alert ? entry.kind + " " + entry.alert : entry.kind;
    const item = el("li", { class: cls, "data-kind": entry.kind, "data-alert": entry.alert || "" },
      el("time", { datetime: entry.time }, clock(entry.time)), el("span", { class: "kind" }, label.replace(/_/g, " ")),
      (entry.worker && !entry.message.startsWith(entry.worker) ? entry.worker + ": " : "") + entry.message);
    const list = $("timeline");
    list.prepend(item);
    while (list.children.length > 200) list.lastChild.remove();
  }

  // ---- charts ----
  function drawCharts() {
    const now = Math.floor(Date.now() / 1000);
    for (const key of series.keys()) if (key < now - WINDOW_S) series.delete(key);
    const xs = [];
    for (let t = now - WINDOW_S; t < now; t++) xs.push(series.get(t) || null);
    const last = (pick) => { for (let i = xs.length - 1; i >= 0; i--) if (xs[i] && pick(xs[i]) !== null) return pick(xs[i]); return null; };
    draw($("chart-tps"), xs.map((s) => (s ? s.tokens : 0)), "#3b6fd8", true);
    draw($("chart-ttft"), xs.map((s) => (s ? s.ttft_ms : null)), "#e08a3c", false);
    draw($("chart-itl"), xs.map((s) => (s ? s.itl_ms : null)), "#7b4fd0", false);
    const recent = xs.slice(-5).map((s) => (s ? s.tokens : 0));
    $("tps-now").textContent = (recent.reduce((a, b) => a + b, 0) / Math.max(1, recent.length)).toFixed(1);
    const ttft = last((s) => s.ttft_ms), itl = last((s) => s.itl_ms);
    $("ttft-now").textContent = ttft === null ? "" : ttft.toFixed(1);
    $("itl-now").textContent = itl === null ? "" : itl.toFixed(2);
  }

  function draw(canvas, values, color, area) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, pad = 16;
    ctx.clearRect(0, 0, w, h);
    let max = 0;
    for (const v of values) if (v !== null && v > max) max = v;
    const top = max > 0 ? niceCeil(max) : 1;
    ctx.strokeStyle = "#dde1e8"; ctx.fillStyle = "#6b7385"; ctx.font = "10px system-ui, sans-serif"; ctx.lineWidth = 1;
    for (const f of [0, 0.5, 1]) {
      const y = h - pad - f * (h - 2 * pad);
      ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(w, y); ctx.stroke();
      ctx.fillText(formatTick(top * f), 2, y - 2);
    }
    ctx.fillText("-10 min", 2, h - 3); ctx.fillText("now", w - 22, h - 3);
    const x = (i) => (i / Math.max(1, values.length - 1)) * w;
    const y = (v) => h - pad - (v / top) * (h - 2 * pad);
    ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 1.5;
    ctx.beginPath();
    let open = false;
    values.forEach((v, i) => {
      if (v === null) { open = false; return; }
      if (!open) { ctx.moveTo(x(i), y(v)); open = true; } else ctx.lineTo(x(i), y(v));
      if (!area) ctx.fillRect(x(i) - 1, y(v) - 1, 2, 2);
    });
    ctx.stroke();
    if (area) {
      ctx.globalAlpha = 0.15;
      ctx.beginPath(); ctx.moveTo(0, y(0));
      values.forEach((v, i) => ctx.lineTo(x(i), y(v === null ? 0 : v)));
      ctx.lineTo(w, y(0)); ctx.closePath(); ctx.fill();
      ctx.globalAlpha = 1;
    }
  }
  function niceCeil(v) { const p = Math.pow(10, Math.floor(Math.log10(v))); for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p; return 10 * p; }
  function formatTick(v) { return v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2); }

  // ---- playground ----
  let controller = null;

  async function loadModels() {
    const select = $("pg-model");
    try {
      const r = await fetch("/v1/models", { headers: authHeaders() });
      if (!r.ok) return;
      const list = await r.json();
      select.replaceChildren(...list.data.map((m) => el("option", { value: m.id }, m.id)));
    } catch (_) { /* the select stays empty; the request then names no model */ }
  }

  function apiKey() { return $("pg-key").value.trim(); }
  function authHeaders() {
    const key = apiKey();
    return key ? { Authorization: "Bearer " + key } : {};
  }

  async function send(event) {
    event.preventDefault();
    if (controller) return;
    const out = $("pg-output"), stats = $("pg-stats");
    out.textContent = "";
    const messages = [];
    const system = $("pg-system").value.trim();
    if (system) messages.push({ role: "system", content: system });
    messages.push({ role: "user", content: $("pg-user").value });
    const body = { messages, stream: true, stream_options: { include_usage: true },
      temperature: Number($("pg-temperature").value), top_p: Number($("pg-top-p").value), max_tokens: Number($("pg-max-tokens").value) };
    if ($("pg-model").value) body.model = $("pg-model").value;
    if ($("pg-seed").value !== "") body.seed = Number($("pg-seed").value);
    controller = new AbortController();
    $("pg-send").disabled = true; $("pg-stop").disabled = false;
    const started = performance.now();
    let first = null, chunks = 0, usage = null, finish = null;
    stats.textContent = "waiting…";
    try {
      const r = await fetch("/v1/chat/completions", { method: "POST", signal: controller.signal,
        headers: Object.assign({ "Content-Type": "application/json" }, authHeaders()), body: JSON.stringify(body) });
      if (!r.ok) {
        let message = r.status + " " + r.statusText;
        try { const err = await r.json(); message += ": " + ((err.error && err.error.message) || err.detail || JSON.stringify(err)); } catch (_) { }
        stats.textContent = "refused";
        out.textContent = message;
        return;
      }
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
          for (const line of block.split("\n")) {
            if (!line.startsWith("data:")) continue;
            const data = line.slice(5).trim();
            if (data === "[DONE]") continue;
            const chunk = JSON.parse(data);
            if (chunk.error) { out.textContent += "\n[error] " + chunk.error.message; continue; }
            if (chunk.usage) usage = chunk.usage;
            const choice = chunk.choices && chunk.choices[0];
            if (!choice) continue;
            if (choice.finish_reason) finish = choice.finish_reason;
            const text = choice.delta && choice.delta.content;
            if (text) {
              if (first === null) first = performance.now();
              chunks++;
              out.textContent += text;
            }
          }
          showStats();
        }
      }
      showStats(true);
    } catch (e) {
      if (e.name === "AbortError") stats.textContent += " · stopped"; else out.textContent += "\n[error] " + e.message;
    } finally {
      controller = null;
      $("pg-send").disabled = false; $("pg-stop").disabled = true;
    }

    function showStats(done) {
      const tokens = usage ? usage.completion_tokens : chunks;
      const now = performance.now();
      const seconds = first === null ? 0 : (now - first) / 1000;
      const parts = [tokens + " tokens"];
      if (first !== null) parts.push("first token " + (first - started).toFixed(0) + " ms");
      if (seconds > 0 && tokens > 1) parts.push(((tokens - 1) / seconds).toFixed(1) + " tokens/s");
      if (done) parts.push("total " + ((now - started) / 1000).toFixed(2) + " s" + (finish ? " · " + finish : ""));
      stats.textContent = parts.join(" · ");
    }
  }

  $("pg-form").addEventListener("submit", send);
  $("pg-stop").addEventListener("click", () => { if (controller) controller.abort(); });
  setInterval(drawCharts, 5000); // the window moves even when nothing streams
  $("pg-key").value = sessionStorage.getItem("actorquery-api-key") || "";
  $("pg-key").addEventListener("change", () => {
    sessionStorage.setItem("actorquery-api-key", apiKey());
    loadModels();
    connect();
  });
  loadModels();
  connect();
})();
