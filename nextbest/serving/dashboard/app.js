// The dashboard of `nextbest serve`: draws what the server's JSON API answers, nothing computed here.
// No library, no build step, no request to any other host (the server's Content-Security-Policy says so too).
//   GET /                    the served experiments (from /healthz), each linking to its page
//   GET /experiments/{name}  its figures and charts, refreshed every 5 s (?refresh_seconds=N: every N ≥ 1 s)
// A data call answered 401 or 403 shows a key prompt; the key stays in sessionStorage (this tab only) and
// goes as `Authorization: Bearer <key>` on every later call.
"use strict";

const REFRESH_MS = 1000 * Math.max(1, Number(new URLSearchParams(location.search).get("refresh_seconds")) || 5);
const KEY_STORAGE = "nextbest-api-key";
const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#2f6fdf", "#e8833a", "#3aa675", "#c94c6e", "#8a63d2", "#c9a227", "#3bb3c3", "#7d8590",
                 "#a0522d", "#5b8c2a"];
const W = 600, MARGIN = { left: 52, right: 10, top: 10, bottom: 24 };

const $ = (id) => document.getElementById(id);
let refreshes = 0;
let timer = null;

class KeyNeeded extends Error {}

// --- the API ----------------------------------------------------------------------------------
async function api(path) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) headers.Authorization = "Bearer " + key;
  const response = await fetch(path, { headers, cache: "no-store" });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  const message = body && body.error ? body.error : `${path}: HTTP ${response.status}`;
  if (response.status === 401 || response.status === 403) throw new KeyNeeded(message);
  if (!response.ok) throw new Error(message);
  return body;
}

function experimentName() {
  const match = location.pathname.match(/^\/experiments\/([^/]+)\/?$/);
  return match ? decodeURIComponent(match[1]) : null;
}

function windowChoice() {
  const query = new URLSearchParams(location.search);
  const minutes = Number(query.get("minutes") || 60), bucket = Number(query.get("bucket_seconds") || 60);
  return { minutes, bucket };
}

// --- formatting -------------------------------------------------------------------------------
const count = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
const percent = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%");
const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const TIME_STEPS = [10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800];

function number(x) {
  if (x === null || x === undefined) return "–";
  const v = Number(x);
  if (Math.abs(v) >= 1000) return v.toLocaleString("en-US", { maximumFractionDigits: 0 });
  if (v === 0 || Math.abs(v) >= 1e-3) return String(Number(v.toPrecision(4)));
  return v.toExponential(2);
}
const moment = (seconds) => new Date(seconds * 1000).toLocaleString([], { dateStyle: "short", timeStyle: "medium" });

function show(id, text, value) {
  const element = $(id);
  element.textContent = text;
  element.dataset.value = value === null || value === undefined ? "" : String(value);
}

// --- a small SVG chart drawer -----------------------------------------------------------------
function node(name, attributes, parent, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  if (parent) parent.appendChild(element);
  return element;
}

function niceTicks(low, high, wanted) {
  const span = high - low || 1;
  const raw = span / wanted, power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

// spec: {starts: bucket starts (s), bucket: seconds, height, y: [low, high] or null, format, layers}
// layers: {kind: "bars", values} | {kind: "line", values} | {kind: "band", low, high} | {kind: "stack", shares, labels}
// Sets data-points (marks drawn) and data-drawn (the refresh that drew it) on the svg.
function drawChart(svg, spec) {
  const height = spec.height || 200;
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} ${height}`);
  const x0 = spec.starts[0], x1 = spec.starts[spec.starts.length - 1] + spec.bucket;
  const plot = { left: MARGIN.left, right: W - MARGIN.right, top: MARGIN.top, bottom: height - MARGIN.bottom };
  const values = [];
  for (const layer of spec.layers) {
    for (const v of [...(layer.values || []), ...(layer.low || []), ...(layer.high || [])]) if (v !== null) values.push(v);
  }
  let [low, high] = spec.y || [Math.min(0, ...values), Math.max(...values, 0)];
  if (!(high > low)) high = low + 1;
  const ticks = niceTicks(low, high, 4);
  low = Math.min(low, ticks[0]);
  high = Math.max(high, ticks[ticks.length - 1]);
  const x = (t) => plot.left + ((t - x0) / (x1 - x0)) * (plot.right - plot.left);
  const y = (v) => plot.bottom - ((v - low) / (high - low)) * (plot.bottom - plot.top);
  for (const t of ticks) {
    node("line", { class: "grid", x1: plot.left, x2: plot.right, y1: y(t), y2: y(t) }, svg);
    node("text", { x: plot.left - 6, y: y(t) + 4, "text-anchor": "end" }, svg, spec.format(t));
  }
  // time labels every whole step (10 s … 2 days) such that at most 6 fit
  const step = TIME_STEPS.find((s) => (x1 - x0) / s <= 6) || TIME_STEPS[TIME_STEPS.length - 1];
  const label = (t) => (step >= 86400 ? new Date(t * 1000).toLocaleDateString() : step < 60
    ? new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : clock(t));
  for (let t = Math.ceil(x0 / step) * step; t <= x1; t += step) {
    const anchor = x(t) > plot.right - 30 ? "end" : x(t) < plot.left + 30 ? "start" : "middle";  // stay inside the chart
    node("text", { x: x(t), y: height - 6, "text-anchor": anchor }, svg, label(t));
  }
  node("line", { class: "axis", x1: plot.left, x2: plot.right, y1: plot.bottom, y2: plot.bottom }, svg);
  node("line", { class: "axis", x1: plot.left, x2: plot.left, y1: plot.top, y2: plot.bottom }, svg);

  const slot = (plot.right - plot.left) / spec.starts.length;
  const barWidth = Math.max(1, slot * 0.8);
  let points = 0;
  for (const layer of spec.layers) {
    if (layer.kind === "bars") {
      layer.values.forEach((v, i) => {
        if (!v) return;
        const rect = node("rect", { class: "bar mark", x: x(spec.starts[i]) + (slot - barWidth) / 2, y: y(v), width: barWidth,
                                    height: Math.max(0, y(low < 0 ? 0 : low) - y(v)) }, svg);
        node("title", {}, rect, `${clock(spec.starts[i])}: ${spec.format(v)}`);
        points += 1;
      });
    } else if (layer.kind === "band") {
      // one polygon per run of buckets with an interval: upper edge forward, lower edge back
      let run = [];
      const flush = () => {
        if (run.length) {
          const centre = (i) => x(spec.starts[i]) + slot / 2;
          const top = run.map((i) => `${centre(i)},${y(layer.high[i])}`), bottom = run.slice().reverse().map((i) => `${centre(i)},${y(layer.low[i])}`);
          if (run.length === 1) { // a lone bucket: a bar as wide as the bucket
            const i = run[0];
            node("rect", { class: "band", x: x(spec.starts[i]) + (slot - barWidth) / 2, y: y(layer.high[i]), width: barWidth,
                           height: Math.max(1, y(layer.low[i]) - y(layer.high[i])) }, svg);
          } else {
            node("polygon", { class: "band", points: [...top, ...bottom].join(" ") }, svg);
          }
        }
        run = [];
      };
      layer.low.forEach((v, i) => (v !== null && layer.high[i] !== null ? run.push(i) : flush()));
      flush();
    } else if (layer.kind === "line") {
      let d = "", pen = false;
      layer.values.forEach((v, i) => {
        if (v === null) { pen = false; return; }
        const px = x(spec.starts[i]) + slot / 2, py = y(v);
        d += `${pen ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`;
        pen = true;
        const dot = node("circle", { class: "point mark", cx: px, cy: py, r: 2.5 }, svg);
        node("title", {}, dot, `${clock(spec.starts[i])}: ${spec.format(v)}`);
        points += 1;
      });
      if (d) node("path", { class: "line", d }, svg);
    } else if (layer.kind === "stack") {
      layer.shares.forEach((shares, i) => {
        if (!shares) return;
        let base = 0;
        shares.forEach((share, a) => {
          if (!share) return;
          const rect = node("rect", { class: "mark", x: x(spec.starts[i]) + (slot - barWidth) / 2, y: y(base + share), width: barWidth,
                                      height: Math.max(0, y(base) - y(base + share)), fill: PALETTE[a % PALETTE.length] }, svg);
          node("title", {}, rect, `${clock(spec.starts[i])}: ${layer.labels[a]} ${percent(share)}`);
          base += share;
          points += 1;
        });
      });
    }
  }
  if (!points) node("text", { class: "empty", x: (plot.left + plot.right) / 2, y: (plot.top + plot.bottom) / 2, "text-anchor": "middle" },
                    svg, "no decisions in this window yet");
  svg.dataset.points = String(points);
  svg.dataset.drawn = String(refreshes + 1);
}

// rows: [{label, estimate, low, high}] → one horizontal interval per row on a shared axis (a full-width panel).
function drawIntervals(svg, rows) {
  const width = 2 * W, height = 40 + 36 * Math.max(rows.length, 1);
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const left = 170, right = width - 20;
  const values = rows.flatMap((r) => [r.low, r.high, r.estimate]).filter((v) => v !== null && Number.isFinite(v));
  let points = 0;
  if (values.length) {
    let low = Math.min(...values), high = Math.max(...values);
    if (!(high > low)) { low -= 0.5; high += 0.5; }
    const ticks = niceTicks(low, high, 5);
    low = Math.min(low, ticks[0]); high = Math.max(high, ticks[ticks.length - 1]);
    const x = (v) => left + ((v - low) / (high - low)) * (right - left);
    for (const t of ticks) {
      node("line", { class: "grid", x1: x(t), x2: x(t), y1: 8, y2: height - 22 }, svg);
      node("text", { x: x(t), y: height - 6, "text-anchor": "middle" }, svg, number(t));
    }
    rows.forEach((r, i) => {
      const cy = 26 + 36 * i;
      node("text", { x: left - 10, y: cy + 4, "text-anchor": "end" }, svg, r.label);
      if (r.estimate === null) return;
      node("line", { class: "whisker mark", x1: x(r.low), x2: x(r.high), y1: cy, y2: cy }, svg);
      for (const end of [r.low, r.high]) node("line", { class: "whisker", x1: x(end), x2: x(end), y1: cy - 6, y2: cy + 6 }, svg);
      const dot = node("circle", { class: "point", cx: x(r.estimate), cy, r: 5, fill: PALETTE[i] }, svg);
      node("title", {}, dot, `${r.label}: ${number(r.estimate)} (${number(r.low)} … ${number(r.high)})`);
      points += 1;
    });
  } else {
    node("text", { class: "empty", x: width / 2, y: height / 2, "text-anchor": "middle" }, svg, "no estimate yet");
  }
  svg.dataset.points = String(points);
  svg.dataset.drawn = String(refreshes + 1);
}

// --- the experiment page ----------------------------------------------------------------------
function renderStatus(status) {
  const events = status.events;
  show("events-logged", count(events.logged), events.logged);
  show("events-waiting", count(events.waiting), events.waiting);
  show("events-joined", count(events.joined), events.joined);
  show("events-trained", count(events.trained), events.trained);
  show("checkpoint", status.checkpoint || "none yet", status.checkpoint);
  show("agent", status.agent, status.agent);
  show("updates", count(status.updates), status.updates);
  show("learner-round", count(status.learner.round), status.learner.round);
  show("mode", status.mode, status.mode);
  show("apprentice-agreement", percent(status.apprentice_agreement), status.apprentice_agreement);
}

function renderTimeline(timeline) {
  const starts = timeline.buckets.map((b) => b.start), bucket = timeline.bucket_seconds;
  const totals = timeline.totals;
  show("decisions-per-minute", count(timeline.decisions_per_minute), timeline.decisions_per_minute);
  show("reacted-share", percent(totals.reacted_share), totals.reacted_share);
  show("mean-reward", number(totals.mean_reward), totals.mean_reward);
  $("mean-reward-interval").textContent = totals.ci_low === null ? "joined events in the window"
    : `95% interval ${number(totals.ci_low)} … ${number(totals.ci_high)} (${count(totals.joined)} joined)`;
  $("reacted-note").textContent = `${count(totals.reacted)} of ${count(totals.decisions)} decisions in the window`;
  const perMinute = 60 / bucket;
  drawChart($("chart-decisions"), { starts, bucket, format: number,
    layers: [{ kind: "bars", values: timeline.buckets.map((b) => b.decisions * perMinute) }] });
  drawChart($("chart-reacted"), { starts, bucket, y: [0, 1], format: percent,
    layers: [{ kind: "line", values: timeline.buckets.map((b) => b.reacted_share) }] });
  drawChart($("chart-reward"), { starts, bucket, format: number,
    y: timeline.reward_linear ? null : [0, 1],
    layers: [{ kind: "band", low: timeline.buckets.map((b) => b.ci_low), high: timeline.buckets.map((b) => b.ci_high) },
             { kind: "line", values: timeline.buckets.map((b) => b.mean_reward) }] });
  renderActionCharts(timeline, starts, bucket);
}

function renderActionCharts(timeline, starts, bucket) {
  const holder = $("action-charts");
  const sets = timeline.choice_sets;
  if (holder.children.length !== sets.length) {
    holder.replaceChildren();
    sets.forEach((size, j) => {
      const figure = document.createElement("figure");
      const caption = document.createElement("figcaption");
      caption.textContent = sets.length > 1 ? `Share of each action, choice set ${j}` : "Share of each action";
      const svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("class", "chart");
      svg.id = `chart-actions-${j}`;
      const legend = document.createElement("div");
      legend.className = "legend";
      for (let a = 0; a < size; a += 1) {
        const item = document.createElement("span"), swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = PALETTE[a % PALETTE.length];
        item.append(swatch, `action ${a}`);
        legend.appendChild(item);
      }
      figure.append(caption, svg, legend);
      holder.appendChild(figure);
    });
  }
  sets.forEach((size, j) => {
    drawChart($(`chart-actions-${j}`), { starts, bucket, y: [0, 1], format: percent, layers: [{
      kind: "stack", labels: Array.from({ length: size }, (_, a) => `action ${a}`),
      shares: timeline.buckets.map((b) => b.action_shares[j]) }] });
  });
}

function renderCheckpoints(history, status) {
  const body = $("checkpoints").tBodies[0];
  body.replaceChildren();
  for (const round of history.rounds.slice().reverse()) {
    const row = body.insertRow();
    if (round.checkpoint === status.checkpoint) row.className = "serving";
    const metrics = Object.entries(round.metrics).map(([k, v]) => `${k} ${number(v)}`).join(" · ");
    [String(round.round), round.checkpoint || "–", moment(round.finished_at), count(round.events),
     round.round === 0 ? "the model the learner started from" : metrics].forEach((text, i) => {
      const cell = row.insertCell();
      cell.textContent = text;
      if (i === 4) cell.className = "metrics";
    });
  }
  $("checkpoints").dataset.rounds = String(history.rounds.length);
}

function renderEstimate(estimate) {
  show("estimate-events", count(estimate.events), estimate.events);
  if (estimate.status !== "ok") {
    $("estimate-status").textContent = `${estimate.status === "not enough data" ? "Not enough data" : "Unavailable"}: ${estimate.message}`;
    show("estimate-dr", "–", null);
    show("estimate-logging", "–", null);
    drawIntervals($("chart-estimate"), []);
    return;
  }
  const dr = estimate.estimators.dr, logging = estimate.logging_policy;
  const change = logging.mean_reward ? ` (${dr.estimate >= logging.mean_reward ? "+" : ""}${percent(dr.estimate / logging.mean_reward - 1)} vs logging)` : "";
  $("estimate-status").textContent = `Doubly robust (${estimate.settings.reward_model} reward model, ${estimate.settings.folds} folds), ` +
    `${Math.round(100 * estimate.settings.confidence)}% normal intervals, on the last ${count(estimate.rows)} joined events; target: ` +
    `${estimate.target}; computed ${clock(estimate.computed_at)}.`;
  show("estimate-dr", `${number(dr.estimate)} (${number(dr.ci_low)} … ${number(dr.ci_high)})${change}`, dr.estimate);
  show("estimate-logging", `${number(logging.mean_reward)} (${number(logging.ci_low)} … ${number(logging.ci_high)})`, logging.mean_reward);
  drawIntervals($("chart-estimate"), [
    { label: "greedy policy (DR)", estimate: dr.estimate, low: dr.ci_low, high: dr.ci_high },
    { label: "logging policy", estimate: logging.mean_reward, low: logging.ci_low, high: logging.ci_high }]);
}

async function refreshExperiment(name) {
  const base = `/v1/experiments/${encodeURIComponent(name)}`;
  const { minutes, bucket } = windowChoice();
  const [status, timeline, history, estimate] = await Promise.all([
    api(base), api(`${base}/timeline?minutes=${minutes}&bucket_seconds=${bucket}`), api(`${base}/checkpoints`),
    api(`${base}/estimate`)]);
  renderStatus(status);
  renderTimeline(timeline);
  renderCheckpoints(history, status);
  renderEstimate(estimate);
}

// --- the list of experiments -----------------------------------------------------------------
async function refreshHome() {
  const health = await api("/healthz");
  const list = $("experiments");
  list.replaceChildren();
  for (const name of health.experiments) {
    const item = document.createElement("li"), link = document.createElement("a");
    link.href = `/experiments/${encodeURIComponent(name)}`;
    link.textContent = name;
    item.appendChild(link);
    list.appendChild(item);
  }
}

// --- the loop ---------------------------------------------------------------------------------
function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function askForKey(message) {
  const stored = sessionStorage.getItem(KEY_STORAGE);
  $("key-reason").textContent = stored ? `The key was refused: ${message}` : `This server needs an API key: ${message}`;
  $("key-prompt").hidden = false;
  $("key-input").focus();
  document.body.dataset.keyNeeded = "true";
}

async function refresh() {
  clearTimeout(timer);
  const name = experimentName();
  try {
    await (name === null ? refreshHome() : refreshExperiment(name));
    refreshes += 1;
    document.body.dataset.refreshes = String(refreshes);
    $("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
    showError("");
  } catch (error) {
    if (error instanceof KeyNeeded) {
      askForKey(error.message);
      return; // no more calls until a key is given
    }
    showError(error.message);
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function start() {
  const name = experimentName();
  $(name === null ? "home" : "board").hidden = false;
  if (name !== null) {
    $("experiment-name").textContent = name;
    document.title = `${name} · nextbest`;
    $("window-label").hidden = false;
    $("refresh-seconds").textContent = String(REFRESH_MS / 1000);
    const { minutes, bucket } = windowChoice();
    const select = $("window"), chosen = `${minutes},${bucket}`;
    if (![...select.options].some((o) => o.value === chosen)) select.add(new Option(`${minutes} min · ${bucket} s buckets`, chosen));
    select.value = chosen;
    select.addEventListener("change", () => {
      const [m, b] = select.value.split(",");
      const query = new URLSearchParams(location.search);
      query.set("minutes", m);
      query.set("bucket_seconds", b);
      history.replaceState(null, "", `${location.pathname}?${query}`);
      refresh();
    });
  }
  $("key-prompt").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("key-input").value.trim());
    $("key-input").value = "";
    $("key-prompt").hidden = true;
    delete document.body.dataset.keyNeeded;
    refresh();
  });
  refresh();
}

start();
