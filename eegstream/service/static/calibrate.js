// eegstream calibration page: drives POST/GET/DELETE /calibration. No build step.
"use strict";

const POLL_MS = 200;
const PROTOCOL_KEYS = ["blinks", "clenches", "rest_before_s", "rest_after_s", "seed"];
const LABEL_TEXT = { blink: "blink", jaw_clench: "jaw clench" };

const params = new URLSearchParams(location.search);
const token = params.get("token");
const $ = (id) => document.getElementById(id);
const headers = (extra) => Object.assign(token ? { Authorization: `Bearer ${token}` } : {}, extra || {});
if (token) $("back").href = "/?token=" + encodeURIComponent(token);

// the last state seen (tests read it)
const cal = { state: null, polls: 0, profileUrl: null };

async function api(method, path, body) {
  const init = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
  if (body) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const d = data.detail;
    const text = Array.isArray(d) ? d.map((e) => `${e.loc.slice(1).join(".")}: ${e.msg}`).join("; ") : d;
    throw new Error(text || `HTTP ${r.status}`);
  }
  return data;
}

function showError(text) {
  $("error").textContent = text || "";
  $("error").hidden = !text;
}

async function loadStreams() {
  try {
    const st = await api("GET", "/status");
    const ids = Object.keys((st.pipeline && st.pipeline.streams) || {});
    const sel = $("stream");
    const want = params.get("stream") || sel.value;
    sel.innerHTML = "";
    for (const id of ids) {
      const o = document.createElement("option");
      o.value = o.textContent = id;
      sel.append(o);
    }
    if (ids.includes(want)) sel.value = want;
    $("stream-picker").hidden = ids.length < 2;
    $("start").disabled = ids.length === 0;
    if (ids.length === 0) { showError("no headset connected yet: waiting for a stream"); setTimeout(loadStreams, 500); }
    else if ($("error").textContent.startsWith("no headset")) showError("");
  } catch (err) {
    showError(`status unavailable: ${err.message}`);
  }
}

function fmt(x, digits = 2) {
  return x === null || x === undefined ? "n/a" : Number(x).toFixed(digits);
}

function render(s) {
  cal.state = s;
  const running = s.state === "connecting" || s.state === "running" || s.state === "computing";
  $("start").hidden = running;
  $("cancel").hidden = !running;
  $("name").disabled = $("stream").disabled = running;
  if (s.state === "idle") return;
  $("stage").hidden = false;
  const cue = $("cue");
  cue.textContent = s.text;
  cue.dataset.phase = s.phase;
  cue.dataset.label = s.cue ? s.cue.label : "";
  $("countdown").textContent =
    s.phase === "countdown" ? Math.ceil(s.seconds_left) :
    s.phase === "rest" && s.seconds_left !== null ? `${Math.ceil(s.seconds_left)} s` : "\u00a0";
  $("bar").style.width = `${Math.round(100 * (s.progress || 0))}%`;
  $("step").textContent = s.cue ? `cue ${s.cue.index} of ${s.cue.total}` : `${s.cues} cues`;
  $("elapsed").textContent = `${fmt(s.elapsed_s, 0)} of ${fmt(s.duration_s, 0)} s`;
  if (s.state === "failed" || s.state === "cancelled") showError(s.error);
  if (s.state === "done" && s.result) showResult(s);
}

function showResult(s) {
  const r = s.result;
  $("result").hidden = false;
  $("thresholds").textContent = "thresholds " +
    Object.entries(r.thresholds).map(([k, v]) => `${LABEL_TEXT[k] || k} ${fmt(v)}`).join(" · ");
  const tbody = $("classes").querySelector("tbody");
  tbody.innerHTML = "";
  for (const [label, c] of Object.entries(r.classes)) {
    const tr = document.createElement("tr");
    tr.dataset.label = label;
    const triple = (x) => `${fmt(x.recall)} / ${fmt(x.precision)} / ${fmt(x.f1)}`;
    const cells = [
      LABEL_TEXT[label] || label, c.cues, c.kept,
      c.missed_at_s.length ? c.missed_at_s.map((t) => `${fmt(t, 1)} s`).join(", ") : "0",
      c.median_reaction_s === null ? "n/a" : `${fmt(c.median_reaction_s)} s`,
      triple(c.before), triple(c.after_cross_validated), fmt(c.threshold),
    ];
    for (const v of cells) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.append(td);
    }
    tbody.append(tr);
  }
  const fa = r.false_events_per_min;
  $("false-alarms").textContent = `false events per minute: before ${fmt(fa.before)}, after ${fmt(fa.after_cross_validated)} ` +
    `(${r.folds}-fold cross-validated over the cues; resting baseline from ${fmt(r.rest_s, 0)} s)`;
  const ul = $("warnings");
  ul.innerHTML = "";
  for (const w of r.warnings) {
    const li = document.createElement("li");
    li.textContent = w;
    ul.append(li);
  }
  $("saved").textContent = s.profile.file;
  $("use").textContent = `eegstream serve --profile ${s.profile.file}`;
}

// the download needs the token header when one is set: fetch it, hand the browser a blob
$("download").addEventListener("click", async (ev) => {
  ev.preventDefault();
  const s = cal.state;
  if (!s || !s.profile) return;
  try {
    const r = await fetch(s.profile.download, { headers: headers() });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const blob = await r.blob();
    if (cal.profileUrl) URL.revokeObjectURL(cal.profileUrl);
    cal.profileUrl = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = cal.profileUrl;
    a.download = `${s.name}.profile`;
    a.click();
  } catch (err) {
    showError(`download failed: ${err.message}`);
  }
});

let timer = null;
async function poll() {
  timer = null;
  try {
    const s = await api("GET", "/calibration");
    cal.polls += 1;
    render(s);
    if (s.state === "connecting" || s.state === "running" || s.state === "computing") {
      timer = setTimeout(poll, POLL_MS);
    }
  } catch (err) {
    showError(`calibration state unavailable: ${err.message}`);
    timer = setTimeout(poll, 1000);
  }
}

$("start").addEventListener("click", async () => {
  showError("");
  $("result").hidden = true;
  const body = { name: $("name").value.trim() || "profile" };
  if ($("stream").value) body.stream = $("stream").value;
  // a shorter protocol from the page's own URL (?blinks=2&rest_before_s=15...), bounded server-side
  for (const k of PROTOCOL_KEYS) if (params.has(k)) body[k] = Number(params.get(k));
  try {
    render(await api("POST", "/calibration", body));
    if (timer === null) timer = setTimeout(poll, POLL_MS);
  } catch (err) {
    showError(err.message);
  }
});

$("cancel").addEventListener("click", async () => {
  try {
    render(await api("DELETE", "/calibration"));
  } catch (err) {
    showError(err.message);
  }
});

const plan = PROTOCOL_KEYS.filter((k) => params.has(k)).map((k) => `${k} ${params.get(k)}`);
$("plan").textContent = plan.length ? `protocol: ${plan.join(", ")}` : "protocol: 10 blinks, 6 clenches";
if (params.has("name")) $("name").value = params.get("name");
loadStreams();
setInterval(loadStreams, 3000);
poll();  // a calibration already running (a reload) is picked up
