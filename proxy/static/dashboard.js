// isogate's dashboard: figures from /dashboard/events (server-sent events), drawn on canvases and tables.
// Everything a caller sent (entities, paths, evidence) is set as text, never as markup.
"use strict";

const COLORS = ["#2f6fdf", "#e0612b", "#2aa876", "#a347d1", "#c9a100", "#d1346b", "#5a6b7d", "#1aa3b8"];
const FAULTS = ["timeouts", "oom_kills", "crashes", "died_idle", "refused", "replaced"];

function $(id) { return document.getElementById(id); }

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function fill(table, rows, columns) {
  const body = table.tBodies[0] || table.createTBody();
  body.replaceChildren();
  for (const item of rows) {
    const row = body.insertRow();
    for (const column of columns) cell(row, column(item));
  }
  if (!rows.length) cell(body.insertRow(), "none yet", "empty").colSpan = columns.length;
}

// Series named by prefix ("mode:thread" -> "thread") out of the samples' rates.
function series(samples, prefix) {
  const names = new Set();
  for (const s of samples) for (const key of Object.keys(s.rates)) if (key.startsWith(prefix)) names.add(key);
  return [...names].sort().map((key) => ({
    name: key.slice(prefix.length) || key,
    points: samples.map((s) => [s.t, s.rates[key] || 0]),
  }));
}

function lineChart(canvas, lines, now, spanS) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, left = 44, bottom = 18, top = 8;
  ctx.clearRect(0, 0, w, h);
  let max = 1;
  for (const line of lines) for (const [, v] of line.points) max = Math.max(max, v);
  max = niceCeiling(max);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#667";
  ctx.strokeStyle = "#e3e6ea";
  for (let i = 0; i <= 4; i++) {
    const y = top + ((h - top - bottom) * i) / 4;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w, y); ctx.stroke();
    ctx.fillText(formatNumber(max * (1 - i / 4)), 2, y + 4);
  }
  ctx.fillText(`-${Math.round(spanS / 60)} min`, left, h - 4);
  ctx.fillText("now", w - 24, h - 4);
  const x = (t) => left + ((w - left) * (t - (now - spanS))) / spanS;
  const y = (v) => h - bottom - ((h - top - bottom) * v) / max;
  lines.forEach((line, i) => {
    ctx.strokeStyle = COLORS[i % COLORS.length];
    ctx.lineWidth = 1.6;
    ctx.beginPath();
    line.points.forEach(([t, v], j) => (j ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    ctx.stroke();
    ctx.fillStyle = ctx.strokeStyle;
    ctx.fillText(line.name, left + 6 + i * 90, top + 10);
  });
  ctx.lineWidth = 1;
}

function barChart(canvas, counts, labels) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, bottom = 18, top = 14;
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1, ...counts);
  const step = w / counts.length;
  ctx.font = "11px sans-serif";
  counts.forEach((count, i) => {
    const height = ((h - top - bottom) * count) / max;
    ctx.fillStyle = i >= 6 ? "#e0612b" : i >= 3 ? "#c9a100" : "#2f6fdf";
    ctx.fillRect(i * step + 3, h - bottom - height, step - 6, height);
    ctx.fillStyle = "#667";
    ctx.fillText(labels[i], i * step + 4, h - 4);
    if (count) ctx.fillText(formatNumber(count), i * step + 4, h - bottom - height - 3);
  });
}

function niceCeiling(v) {
  const magnitude = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * magnitude).find((m) => m >= v);
}

function formatNumber(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1);
}

function clock(seconds) { return new Date(seconds * 1000).toLocaleTimeString([], { hour12: false }); }

function render(data) {
  const stats = data.stats, requests = stats.requests, span = 15 * 60;
  $("health").textContent = data.health.status;
  $("health").className = "badge " + data.health.status;
  $("problems").textContent = data.health.problems.join("; ");
  $("summary").textContent =
    `worker ${stats.worker.index + 1} of ${stats.worker.of} · mode ${stats.execution_mode} · ` +
    `up ${Math.round(stats.uptime_s)} s · config generation ${stats.config.generation}`;

  lineChart($("by-mode"), series(data.samples, "mode:"), data.at, span);
  lineChart($("by-band"), series(data.samples, "band:"), data.at, span);
  lineChart($("by-status"), series(data.samples, "status:"), data.at, span);
  lineChart($("limited"), series(data.samples, "rate_limited"), data.at, span);
  const latency = [];
  const modes = new Set(data.samples.flatMap((s) => Object.keys(s.latency_ms)));
  for (const mode of [...modes].sort()) {
    for (const q of ["p50", "p99"]) {
      latency.push({
        name: `${mode} ${q}`,
        points: data.samples.filter((s) => s.latency_ms[mode]).map((s) => [s.t, s.latency_ms[mode][q]]),
      });
    }
  }
  lineChart($("latency"), latency, data.at, span);
  barChart($("scores"), data.scores, ["0", "10", "20", "30", "40", "50", "60", "70", "80", "90", "100"]);

  const totals = [
    ["requests", requests.total],
    ...Object.entries(requests.by_mode).map(([k, v]) => [`mode ${k}`, v]),
    ...Object.entries(requests.by_status).map(([k, v]) => [`status ${k}`, v]),
    ["rate-limit refusals", Object.values(stats.rate_limits.refused)
      .flatMap((limits) => Object.values(limits)).reduce((a, b) => a + b, 0)],
    ["entities tracked", stats.entities.tracked],
  ];
  const totalsTable = $("totals");
  totalsTable.replaceChildren();
  for (const [name, value] of totals) {
    const row = totalsTable.insertRow();
    cell(row, name);
    cell(row, value, "number").dataset.total = name;
  }

  fill($("flagged"), data.flagged, [
    (d) => clock(d.at), (d) => d.entity, (d) => `${d.method} ${d.route || ""}`, (d) => d.score,
    (d) => d.band, (d) => d.mode, (d) => d.status, (d) => d.would || "",
    (d) => Object.entries(d.evidence).map(([name, what]) => `${name}: ${what}`).join(" | "),
  ]);
  fill($("top"), data.top, [
    (e) => e.entityId, (e) => e.totalRequests,
    (e) => (e.failureRate === undefined ? "" : (100 * e.failureRate).toFixed(1) + "%"),
    (e) => Object.entries(e.factors).map(([name, n]) => `${name} ×${n}`).join(", "),
  ]);

  const pools = [];
  if (stats.docker && stats.docker.enabled) pools.push(["handlers", stats.docker]);
  for (const [name, pool] of Object.entries(stats.replicas || {})) pools.push([name, pool]);
  const rows = [];
  for (const [name, pool] of pools) {
    const faults = FAULTS.filter((k) => pool[k]).map((k) => `${k} ${pool[k]}`).join(", ") || "none";
    rows.push([name + (pool.available === false ? " (down)" : ""), pool.idle, pool.busy, pool.creating, faults]);
    const engines = pool.engines || [];
    if (engines.length < 2) continue;
    for (const e of engines) {  // each engine of a pool on several
      rows.push([`\u2003on ${e.engine}` + (e.up ? "" : " (down)"), e.idle, e.busy, e.creating,
        `faults ${e.faults}, down ${e.downs} times`]);
    }
  }
  fill($("pools"), rows, [0, 1, 2, 3, 4].map((i) => (row) => row[i]));

  $("generation").textContent =
    `generation ${stats.config.generation}` + (stats.config.last_error ? ` · last error: ${stats.config.last_error}` : "");
  fill($("reloads"), [...stats.config.reloads].reverse(), [
    (r) => r.generation, (r) => clock(r.at), (r) => r.trigger,
    (r) => JSON.stringify(Object.fromEntries(
      Object.entries(r).filter(([k]) => !["generation", "at", "trigger"].includes(k)))),
  ]);
}

function connect() {
  const source = new EventSource("/dashboard/events");
  source.onmessage = (event) => render(JSON.parse(event.data));
  source.addEventListener("expired", () => { source.close(); window.location.reload(); });
  source.onerror = () => {
    $("health").textContent = source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting";
    $("health").className = "badge degraded";
    if (source.readyState === EventSource.CLOSED) window.location.reload();  // the login is over
  };
}

document.addEventListener("DOMContentLoaded", connect);
