// eegstream dashboard: two websockets (signal + events) and a /status poll. No build step.
"use strict";

const WINDOW_S = 10;          // seconds shown
const MAX_ROWS = 200;         // event rows kept in the list
const STATUS_EVERY_MS = 2000;
const COLORS = { blink: "#4fa3ff", jaw_clench: "#ffad42", fault: "#f2555a" };
const LABEL_TEXT = { blink: "blink", jaw_clench: "jaw clench" };

const params = new URLSearchParams(location.search);
const token = params.get("token");
const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;

function wsUrl(path, query) {
  const q = new URLSearchParams(query || {});
  if (token) q.set("token", token);
  const s = q.toString();
  return wsBase + path + (s ? "?" + s : "");
}

const $ = (id) => document.getElementById(id);
// the headset whose signal is shown (?stream=ID); null: the service's first, until /status
// lists two or more streams and the first is chosen explicitly
let chosen = params.get("stream");
$("ws-url").textContent = wsBase + "/ws/events";
if (token) $("metrics-link").title = "needs the header Authorization: Bearer <token>";
if (token) $("calibrate-link").href = "/calibrate?token=" + encodeURIComponent(token);

// --- signal buffer: one ring per channel, times shared ------------------------------------------
const sig = {
  stream: null, channels: [], rate: 32, n: 0, head: 0, size: 0,
  data: [], times: null,
  latest: null, latestArrival: 0,
};

function resetSignal(channels, rate) {
  sig.channels = channels;
  sig.rate = rate;
  sig.n = Math.round(WINDOW_S * rate) + 8;
  sig.data = channels.map(() => new Float32Array(sig.n));
  sig.times = new Float64Array(sig.n);
  sig.head = 0;
  sig.size = 0;
  sig.latest = null;
}

function pushFrame(frame) {
  const m = frame.data[0].length;
  for (let i = 0; i < m; i++) {
    const slot = sig.head;
    for (let c = 0; c < sig.channels.length; c++) sig.data[c][slot] = frame.data[c][i];
    sig.times[slot] = frame.t0 + i * frame.dt;
    sig.head = (sig.head + 1) % sig.n;
    sig.size = Math.min(sig.size + 1, sig.n);
  }
  sig.latest = frame.t0 + (m - 1) * frame.dt;
  sig.latestArrival = performance.now();
}

// --- artifact spans (by event id) and fault spans ---------------------------------------------
const spans = new Map();

function addSpan(key, label, start, end, stream) {
  spans.set(key, { label, start, end, stream });
  if (spans.size > 500) spans.delete(spans.keys().next().value);
}

// spans of the headset on screen (another headset's artifacts are not this signal's)
function visibleSpans() {
  const all = [...spans.values()];
  return chosen === null ? all : all.filter((span) => span.stream === chosen);
}

// --- drawing ------------------------------------------------------------------------------------
// y of a sample in its channel's lane: full scale fills the lane, larger values stay at its edge
// (a 300 uV blink at +-100 uV drew across the neighbouring channels)
function laneY(mid, rowH, value, scale) {
  const v = Math.max(-1, Math.min(1, value / scale));
  return mid - v * rowH * 0.5;
}

const canvas = $("signal");
const ctx = canvas.getContext("2d");
const scaleSelect = $("scale");

function draw() {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);

  const left = 46, right = 8, top = 8, bottom = 22;
  const plotW = w - left - right, plotH = h - top - bottom;
  const nCh = sig.channels.length || 14;
  const rowH = plotH / nCh;

  // the right edge follows the newest sample, advancing smoothly between frames
  let now = sig.latest;
  if (now !== null) now += Math.min(0.25, (performance.now() - sig.latestArrival) / 1000);
  const x = (t) => left + plotW * (1 - (now - t) / WINDOW_S);

  // time grid (one line per second) and its labels
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  if (now !== null) {
    for (let s = 0; s <= WINDOW_S; s++) {
      const gx = left + plotW * (1 - s / WINDOW_S);
      ctx.strokeStyle = "#1a2230";
      ctx.beginPath(); ctx.moveTo(gx, top); ctx.lineTo(gx, top + plotH); ctx.stroke();
      ctx.fillStyle = "#5c6677";
      ctx.textAlign = s === 0 ? "right" : "center";
      ctx.fillText(s === 0 ? "now" : `-${s} s`, gx, h - 6);
      ctx.textAlign = "left";
    }
  }

  // artifact spans
  if (now !== null) {
    for (const span of visibleSpans()) {
      const end = span.end === null ? now : span.end;
      if (end < now - WINDOW_S || span.start > now) continue;
      const x0 = Math.max(left, x(span.start)), x1 = Math.min(left + plotW, x(end));
      if (x1 <= x0) continue;
      ctx.fillStyle = COLORS[span.label] + "33";
      ctx.fillRect(x0, top, x1 - x0, plotH);
      ctx.fillStyle = COLORS[span.label];
      ctx.fillRect(x0, top, x1 - x0, 3);
      if (x1 - x0 > 30) {
        const text = LABEL_TEXT[span.label] || span.label;
        ctx.fillStyle = "#0a0e14cc";
        ctx.fillRect(x0 + 2, top + 4, ctx.measureText(text).width + 6, 14);
        ctx.fillStyle = COLORS[span.label];
        ctx.fillText(text, x0 + 5, top + 15);
      }
    }
  }

  // channels (traces clipped to the plot area)
  const scale = Number(scaleSelect.value);
  for (let c = 0; c < nCh; c++) {
    const mid = top + rowH * (c + 0.5);
    ctx.fillStyle = "#8b96a8";
    ctx.fillText(sig.channels[c] || "", 8, mid + 4);
    ctx.strokeStyle = "#161d28";
    ctx.beginPath(); ctx.moveTo(left, mid); ctx.lineTo(left + plotW, mid); ctx.stroke();
    if (now === null || sig.size < 2) continue;
    ctx.save();
    ctx.beginPath(); ctx.rect(left, mid - rowH / 2, plotW, rowH); ctx.clip();  // its own lane
    ctx.strokeStyle = c % 2 ? "#9fd8e6" : "#c8d3e6";
    ctx.lineWidth = 1.1;
    ctx.beginPath();
    const start = (sig.head - sig.size + sig.n) % sig.n;
    let started = false;
    for (let i = 0; i < sig.size; i++) {
      const k = (start + i) % sig.n;
      const t = sig.times[k];
      if (t < now - WINDOW_S - 0.5) continue;
        const px = x(t), py = laneY(mid, rowH, sig.data[c][k], scale);
      if (started) ctx.lineTo(px, py); else { ctx.moveTo(px, py); started = true; }
    }
    ctx.stroke();
    ctx.restore();
    ctx.lineWidth = 1;
  }

  if (now === null) {
    ctx.fillStyle = "#5c6677";
    ctx.font = "14px system-ui, sans-serif";
    ctx.fillText("waiting for signal…", left + plotW / 2 - 60, top + plotH / 2);
  }
  requestAnimationFrame(draw);
}
requestAnimationFrame(draw);

// --- websockets with reconnection ---------------------------------------------------------------
function keepConnected(name, makeUrl, onMessage, onState) {
  let delay = 500;
  let ws = null;
  function open() {
    ws = new WebSocket(makeUrl());
    ws.onopen = () => { delay = 500; onState(true); };
    ws.onmessage = (e) => onMessage(JSON.parse(e.data));
    ws.onclose = (e) => {
      onState(false, e);
      // refused (token, origin, host): retrying will not help
      if (e.code === 4401 || e.code === 4403 || e.code === 1008) return;
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  open();
  // reopen at once with a fresh URL (another stream chosen)
  return { restart() { delay = 0; if (ws) ws.close(); } };
}

// signal
const signal = keepConnected("signal", () => wsUrl("/ws/signal", chosen ? { stream: chosen } : {}), (msg) => {
  if (msg.type === "signal_info") {
    resetSignal(msg.channels, msg.rate);
    sig.stream = msg.stream;
  } else if (msg.type === "signal") pushFrame(msg);
}, () => {});

function choose(stream) {
  if (stream === chosen) return;
  chosen = stream;
  $("stream").value = stream;
  const q = new URLSearchParams(location.search);
  q.set("stream", stream);
  history.replaceState(null, "", "?" + q.toString());  // a reload keeps the choice
  signal.restart();
}
$("stream").addEventListener("change", (e) => choose(e.target.value));

// the headset picker lists the streams of /status; shown from two streams on
function updateStreams(ids) {
  const select = $("stream");
  const have = [...select.options].map((o) => o.value);
  if (have.join("\n") !== ids.join("\n")) {
    select.innerHTML = "";
    for (const id of ids) select.append(new Option(id, id));
  }
  $("stream-picker").hidden = ids.length < 2;
  if (ids.length >= 2 && (chosen === null || !ids.includes(chosen))) choose(ids[0]);
  else if (chosen !== null) select.value = chosen;
}

// events: reconnect with ?since= so nothing is missed
let lastSeq = null;
const counts = { blink: 0, jaw_clench: 0 };
const rows = new Map();
const list = $("events");

function fmtTime(unix) {
  const d = new Date(unix * 1000);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0").slice(0, 1);
}

function showEvent(ev) {
  addSpan(ev.id, ev.label, ev.onset_lsl, ev.phase === "final" ? ev.offset_lsl : null, ev.stream_id);
  let row = rows.get(ev.id);
  if (!row) {
    row = document.createElement("li");
    row.dataset.id = ev.id;
    rows.set(ev.id, row);
    list.prepend(row);
    counts[ev.label] = (counts[ev.label] || 0) + 1;
    const b = counts.blink, c = counts.jaw_clench;
    $("counts").textContent = `${b} blink${b === 1 ? "" : "s"} · ${c} clench${c === 1 ? "" : "es"}`;
    $("no-events").style.display = "none";
    while (list.children.length > MAX_ROWS) {
      const old = list.lastElementChild;
      rows.delete(old.dataset.id);
      old.remove();
    }
  }
  row.className = `event-row ${ev.label} ${ev.phase}`;
  row.innerHTML = "";
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = fmtTime(ev.onset_unix);
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = LABEL_TEXT[ev.label] || ev.label;
  const phase = document.createElement("span");
  phase.className = "phase";
  phase.textContent = ev.phase === "final" ? "final" : "live";
  label.appendChild(phase);
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = `${Math.round(ev.confidence * 100)}% · ${ev.duration.toFixed(2)} s`;
  row.title = ev.stream_id;
  row.append(time, label, meta);
  if ($("stream").options.length > 1) {  // several headsets: say whose
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = ev.stream_id;
    row.append(who);
  }
}

const streamLog = $("stream-log");
function showStatus(msg) {
  if (msg.status === "signal_fault" && msg.start_lsl !== null) {
    addSpan("fault-" + msg.seq, "fault", msg.start_lsl, msg.end_lsl, msg.stream_id);
  }
  const li = document.createElement("li");
  const bad = !["connected", "recovered"].includes(msg.status);
  li.className = bad ? "bad" : "";
  const what = msg.electrodes && msg.electrodes.length ? ` (${msg.electrodes.join(", ")})` : "";
  li.textContent = `${fmtTime(msg.unix_time)} ${msg.stream_id}: ${msg.status}${what}`;
  streamLog.prepend(li);
  while (streamLog.children.length > 20) streamLog.lastElementChild.remove();
}

// the first connection asks for the whole held history (since=0): a page opened or reloaded
// shows the earlier events and shades them; later ones ask for what came after the last seen
keepConnected("events", () => wsUrl("/ws/events", { since: lastSeq === null ? 0 : lastSeq }), (msg) => {
  if (msg.type === "hello") {
    const model = msg.model ? `${msg.model.name} · ${msg.model.sha256.slice(0, 8)}` : "no model";
    $("model").textContent = `${model} · ${msg.backend || "–"}`;
    return;
  }
  if (msg.type === "ping" || typeof msg.seq !== "number") return;
  if (lastSeq !== null && msg.seq <= lastSeq) return;  // already shown (no duplicates)
  lastSeq = msg.seq;
  if (msg.type === "artifact") showEvent(msg);
  else if (msg.type === "status") showStatus(msg);
}, (up, e) => {
  const conn = $("conn");
  conn.className = "badge " + (up ? "on" : "off");
  if (up) conn.textContent = "live";
  else if (e && e.code === 4401) conn.textContent = "token needed: open /?token=…";
  else if (e && (e.code === 4403 || e.code === 1008)) conn.textContent = "refused: " + e.reason;
  else conn.textContent = "reconnecting…";
});

// --- status panel -------------------------------------------------------------------------------
function fmt(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 10 ? 2 : 1);
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (v === null || v === undefined) return "–";
  if (typeof v === "object") return Array.isArray(v) ? v.join(", ") : JSON.stringify(v);
  return String(v);
}

function fmtUptime(s) {
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h ? `${h}h ${m}m` : m ? `${m}m ${sec}s` : `${sec}s`;
}

// per-stream fields worth a glance, with their units; the rest stays in /status
const STREAM_FIELDS = [
  ["state", "state", (v) => v],
  ["measured_fs", "rate", (v) => (v === null ? "–" : `${v.toFixed(1)} Hz`)],
  ["lag_s", "lag", (v) => (v === null ? "–" : `${Math.round(v * 1000)} ms`)],
  ["buffer_fill", "buffer", (v) => `${Math.round(v * 100)} %`],
  ["windows_per_s", "windows/s", (v) => (v === null ? "–" : v.toFixed(1))],
  ["dropped_windows", "dropped windows", fmt],
  ["nan_samples", "NaN samples", fmt],
  ["gaps", "gaps", fmt],
  ["reconnects", "reconnects", fmt],
];

async function pollStatus() {
  try {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const r = await fetch("/status", { headers });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const st = await r.json();
    const ready = $("ready");
    ready.textContent = st.ready ? "ready" : st.reason;
    ready.className = "pill " + (st.ready ? "ok" : "bad");
    const rows = [
      ["engine", st.model ? st.model.backend : null],
      ["model", st.model ? `${st.model.name} · ${st.model.sha256.slice(0, 12)}` : null],
      ["profile", st.model && st.model.profile ? st.model.profile.name : "none (uncalibrated)"],
      ["uptime", fmtUptime(st.uptime_s)],
      ["messages", st.seq],
      ["clients", st.clients],
    ];
    const streams = (st.pipeline && st.pipeline.streams) || {};
    updateStreams(Object.keys(streams));
    for (const [id, info] of Object.entries(streams)) {
      rows.push(["stream", id, "head"], ...STREAM_FIELDS.filter(([k]) => k in info).map(([k, name, f]) => [name, f(info[k])]));
    }
    const dl = $("status");
    dl.innerHTML = "";
    for (const [k, v, cls] of rows) {
      const dt = document.createElement("dt");
      if (cls) dt.className = cls;
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = fmt(v);
      dd.title = fmt(v);
      if (cls) dd.className = cls;
      dl.append(dt, dd);
    }
  } catch (err) {
    $("ready").textContent = "status unavailable";
    $("ready").className = "pill bad";
  }
  setTimeout(pollStatus, STATUS_EVERY_MS);
}
pollStatus();
