// venuefeed live dashboard: one WebSocket (/ws/live?stats=1), no framework, no build step.
// The server pushes "events" batches as they happen and a "stats" snapshot every second;
// when the socket drops the page says so at once and reconnects with a growing delay.
"use strict";

const MAX_ROWS = 150;
const SHOWN_TYPES = new Set(["trade", "price_update", "whale_trade"]);
const $ = (id) => document.getElementById(id);

const page = {
  retries: 0,
  uptimeBase: null,   // [uptime seconds, Date.now() when received]
  lastPrice: new Map(),
  series: { events: [], latency_ms: [] },
};

// ---- formatting -----------------------------------------------------------------
function fmtNum(v, digits = 0) {
  if (v === null || v === undefined) return "–";
  return Number(v).toLocaleString(undefined, { maximumFractionDigits: digits });
}
function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  return `${Math.round(seconds / 60)} min`;
}
function fmtDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60), r = s % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return (d ? `${d}d ` : "") + `${pad(h)}:${pad(m)}:${pad(r)}`;
}
function fmtTime(ns) {
  const d = new Date(Number(ns) / 1e6);
  return d.toLocaleTimeString(undefined, { hour12: false }) + "." +
    String(d.getMilliseconds()).padStart(3, "0");
}
function shortId(id) {
  const s = String(id || "");
  return s.length > 22 ? `${s.slice(0, 10)}…${s.slice(-6)}` : s;
}
function decimals(s) {
  const i = String(s).indexOf(".");
  return i < 0 ? 0 : String(s).length - i - 1;
}
// Prices are exact decimal strings; the difference is shown with their precision.
function priceMove(prev, price) {
  if (prev === undefined || prev === null) return { text: "", cls: "" };
  const diff = Number(price) - Number(prev);
  if (diff === 0) return { text: "±0", cls: "" };
  const text = diff.toFixed(Math.max(decimals(prev), decimals(price)));
  return diff > 0 ? { text: `▲ +${text}`, cls: "up" } : { text: `▼ ${text}`, cls: "down-move" };
}
function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

// ---- socket ---------------------------------------------------------------------
function setSocket(up) {
  const badge = $("socket");
  badge.textContent = up ? "live" : "disconnected";
  badge.className = `badge ${up ? "ok" : "down"}`;
  badge.dataset.state = up ? "live" : "disconnected";
  document.body.classList.toggle("offline", !up);
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws/live?stats=1`);
  ws.onopen = () => { page.retries = 0; setSocket(true); loadPairs(); };
  ws.onmessage = (msg) => {
    const data = JSON.parse(msg.data);
    if (data.kind === "events") onEvents(data);
    else if (data.kind === "stats") onStats(data);
  };
  ws.onclose = () => {
    setSocket(false);
    const delay = Math.min(5000, 250 * 2 ** page.retries++);
    setTimeout(connect, delay);
  };
  ws.onerror = () => ws.close();
}

// ---- live events ------------------------------------------------------------------
function onEvents(msg) {
  if (msg.dropped) $("dropped").textContent = `(${fmtNum(msg.dropped)} dropped: page too slow)`;
  const body = $("events");
  for (const ev of msg.events) {
    if (ev.type === "pair_quote") renderPair(ev);
    if (!SHOWN_TYPES.has(ev.type)) continue;
    body.prepend(eventRow(ev));
  }
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
}

function eventRow(ev) {
  const tr = document.createElement("tr");
  tr.className = "fresh";
  tr.dataset.type = ev.type;
  tr.dataset.venue = ev.venue;
  const key = `${ev.venue}|${ev.instrument}`;
  let move = { text: "", cls: "" };
  if (ev.price !== undefined && ev.price !== null && ev.type !== "whale_trade") {
    move = priceMove(page.lastPrice.get(key), ev.price);  // a whale row repeats its trade
    page.lastPrice.set(key, ev.price);
  }
  const side = ev.side && ev.side !== "unknown" ? ` ${ev.side}` : "";
  let kind = ev.type.replace("_", " ") + side;
  if (ev.type === "whale_trade") {
    tr.classList.add("whale");
    const who = ev.trader_address && ev.trader_address !== "unknown" ?
      ` by ${shortId(ev.trader_address)}` : "";
    kind = `WHALE${side} $${fmtNum(ev.amount)}${who}`;
  }
  tr.append(
    cell(fmtTime(ev.ts_venue || ev.ts_recv)),
    cell(ev.venue),
    instrumentCell(ev),
    cell(ev.outcome || ""),
    cell(kind),
    cell(`${ev.price ?? "–"} ${move.text}`.trim(), move.cls),
    cell(ev.size ?? "–", "num"),
  );
  tr.title = ev.instrument;
  return tr;
}

// The market cell links to the instrument's own page (ladder, depth, trades, gaps).
function instrumentCell(ev) {
  const td = document.createElement("td");
  const a = document.createElement("a");
  a.href = `/instrument?venue=${encodeURIComponent(ev.venue)}&id=${encodeURIComponent(ev.instrument)}`;
  a.textContent = ev.title || shortId(ev.instrument);
  a.className = "instrument";
  td.append(a);
  return td;
}

// ---- stats snapshot -------------------------------------------------------------
function onStats(msg) {
  const status = msg.status, m = msg.metrics;
  page.uptimeBase = [status.uptime_s, Date.now()];
  $("uptime").textContent = fmtDuration(status.uptime_s);
  $("version").textContent = `v${status.version}`;
  renderHealth(status);
  renderVenues(status.venues);
  const set = (id, v) => { $(id).textContent = v; };
  set("m-events", fmtNum(m.events_received));
  set("m-rate", fmtNum(m.events_per_s, 1));
  set("m-trades-stored", fmtNum(m.trades_stored));
  set("m-price-updates", fmtNum(m.price_updates));
  set("m-book-updates", fmtNum(m.book_updates));
  set("m-whales", fmtNum(m.whale_trades));
  const lat = m.latency_ms || {};
  set("m-latency", lat.p50 === null || lat.p50 === undefined ? "–" :
    `${fmtNum(lat.p50, 1)} / ${fmtNum(lat.p99, 1)} ms`);
  set("m-trade-age", fmtAge(m.avg_trade_age_s));
  set("m-freshness", m.freshness_pct === null ? "–" : `${m.freshness_pct}%`);
  set("m-coverage", m.coverage_pct === null ? "–" :
    `${m.coverage_pct}% (${m.instruments_with_data}/${m.instruments_subscribed})`);
  set("m-gaps", fmtNum(m.gaps));
  set("m-g1", fmtNum(m.g1_stale_blocked));
  set("m-g3", fmtNum(m.g3_size_backfilled));
  set("m-g3-missing", fmtNum(m.g3_size_missing));
  set("m-g5", fmtNum(m.g5_divergence_flagged));
  set("m-errors", fmtNum(status.errors_last_hour));
  renderErrors(msg.errors);
  page.series = msg.series;
  drawChart();
}

// The same verdict as /api/status (503 when unhealthy): a badge, and the reasons, one per line.
function renderHealth(status) {
  const problems = status.problems || [];
  const badge = $("health");
  badge.textContent = status.healthy ? "healthy" : `unhealthy (${problems.length})`;
  badge.className = `badge ${status.healthy ? "ok" : "down"}`;
  badge.dataset.state = status.healthy ? "healthy" : "unhealthy";
  const list = $("problems");
  list.replaceChildren(...problems.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
  $("problems-panel").hidden = status.healthy;
}

function renderVenues(venues) {
  const body = $("venues");
  body.replaceChildren();
  for (const v of venues.filter((x) => x.enabled)) {
    const tr = document.createElement("tr");
    tr.dataset.venue = v.venue;
    const up = v.state === "connected";
    const badge = document.createElement("span");
    badge.className = `badge ${up ? "ok" : "down"} state`;
    badge.textContent = up ? "connected" : "disconnected";
    const td = document.createElement("td");
    td.append(badge);
    if (!up && v.state && v.state !== "disconnected") {
      td.append(` ${v.state}`);
    }
    tr.append(
      cell(v.venue), td, cell(fmtAge(v.last_event_age_s)), cell(fmtNum(v.reconnects)),
      cell(fmtNum(v.markets)), cell(fmtNum(v.subscribed)), cell(fmtNum(v.events)),
    );
    if (v.error) tr.title = v.error;
    body.append(tr);
  }
  if (!body.rows.length) {
    const tr = document.createElement("tr");
    const td = cell("no venue enabled", "muted");
    td.colSpan = 7;
    tr.append(td);
    body.append(tr);
  }
}

function renderErrors(errors) {
  const list = $("errors");
  list.replaceChildren();
  for (const e of errors) {
    const li = document.createElement("li");
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = e.kind;
    li.append(new Date(e.ts * 1000).toLocaleTimeString(undefined, { hour12: false }), " ",
      e.component, kind, e.message);
    list.append(li);
  }
  if (!errors.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "none";
    list.append(li);
  }
}

// ---- chart: events/s as bars, latency as a line on its own scale ---------------------
function drawChart() {
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * ratio) { canvas.width = w * ratio; canvas.height = h * ratio; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const styles = getComputedStyle(document.documentElement);
  const events = page.series.events || [], lat = page.series.latency_ms || [];
  const n = Math.max(events.length, 1), pad = 18, plotH = h - pad;
  const maxE = Math.max(1, ...events), maxL = Math.max(1, ...lat.filter((x) => x !== null));
  const bw = w / n;
  ctx.fillStyle = styles.getPropertyValue("--accent");
  events.forEach((v, i) => {
    const bh = (v / maxE) * (plotH - 4);
    ctx.fillRect(i * bw + 1, plotH - bh, Math.max(1, bw - 2), bh);
  });
  ctx.strokeStyle = styles.getPropertyValue("--warn");
  ctx.lineWidth = 2;
  ctx.beginPath();
  let pen = false;
  lat.forEach((v, i) => {
    if (v === null) { pen = false; return; }
    const x = i * bw + bw / 2, y = plotH - (v / maxL) * (plotH - 4);
    if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    pen = true;
  });
  ctx.stroke();
  ctx.fillStyle = styles.getPropertyValue("--muted");
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(`max ${fmtNum(maxE)} ev/s`, 4, h - 4);
  const label = `max ${fmtNum(maxL, 1)} ms`;
  ctx.fillText(label, w - ctx.measureText(label).width - 4, h - 4);
}

// ---- cross-venue pairs --------------------------------------------------------------
// The latest quote of each confirmed pair: fetched once per connection, then kept
// current by the pair_quote events on the live socket (one per change).
async function loadPairs() {
  try {
    const answer = await fetch("/api/v1/pairs/quotes");
    if (answer.ok) for (const quote of (await answer.json()).quotes) renderPair(quote);
  } catch (err) { /* the socket's own reconnect reports the outage */ }
}

function renderPair(q) {
  const body = $("pairs");
  let row = body.querySelector(`tr[data-pair="${CSS.escape(q.instrument)}"]`);
  if (!row) {
    if (!body.querySelector("tr[data-pair]")) body.replaceChildren();
    row = document.createElement("tr");
    row.dataset.pair = q.instrument;
    body.append(row);
  }
  const two = (a, b) => `${a ?? "–"} / ${b ?? "–"}`;
  const edge = (v) => cell(v ?? "–", v !== null && Number(v) > 0 ? "num cross" : "num");
  row.replaceChildren(
    cell(q.instrument), cell(q.mapping === "yes_no" ? "YES ↔ NO" : "YES ↔ YES"),
    cell(two(q.kalshi_bid, q.kalshi_ask), "num"),
    cell(two(q.polymarket_bid, q.polymarket_ask), "num"),
    edge(q.edge_buy_kalshi), edge(q.edge_buy_polymarket), edge(q.best_edge),
    cell(fmtTime(q.ts_recv)),
  );
}

// ---- cluster (shown only where a venuefeed cluster runs) --------------------------
async function pollCluster() {
  let body = null;
  try {
    const resp = await fetch("/api/v1/cluster");
    body = await resp.json();
  } catch (_) {
    body = null;
  }
  const panel = $("cluster-panel");
  if (!body || !body.running) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  $("cluster-summary").textContent =
    `(${body.cluster}: planner ${body.planner || "–"}, ${body.workers.length} workers, ` +
    `${body.writers.length} writers)`;
  const rows = body.workers.map((w) => {
    const tr = document.createElement("tr");
    tr.append(cell(w.worker), cell(fmtNum(w.shards)), cell(fmtNum(w.instruments)),
      cell(w.lease_age_s == null ? "–" : `${w.lease_age_s.toFixed(1)} s`));
    return tr;
  });
  $("cluster-workers").replaceChildren(...rows);
  const c = body.consumer || {};
  $("cluster-lag").textContent = c.missing
    ? "writers' consumer not created yet"
    : `writers' consumer: ${fmtNum(c.pending)} waiting, ${fmtNum(c.ack_pending)} unacknowledged`;
}
setInterval(pollCluster, 5000);
pollCluster();

// ---- clock ------------------------------------------------------------------------
setInterval(() => {
  if (!page.uptimeBase) return;
  const [base, at] = page.uptimeBase;
  $("uptime").textContent = fmtDuration(base + (Date.now() - at) / 1000);
}, 1000);
window.addEventListener("resize", drawChart);
connect();
