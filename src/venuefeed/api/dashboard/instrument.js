// venuefeed instrument page: one instrument's ladder, depth, trades, gaps and book states.
// Polls /api/v1/instruments/{venue}/{instrument} every second; says so at once when it cannot.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const venue = params.get("venue") || "";
const instrument = params.get("id") || "";
const DEPTH = 10;
const page = { failures: 0, last: null };

function fmtTime(ns) {
  const d = new Date(Number(ns) / 1e6);
  return d.toLocaleTimeString(undefined, { hour12: false }) + "." +
    String(d.getMilliseconds()).padStart(3, "0");
}
function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}
function item(text, cls) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  return li;
}

function setFeed(ok, why) {
  const badge = $("feed");
  badge.textContent = ok ? "live" : why;
  badge.className = `badge ${ok ? "ok" : "down"}`;
  badge.dataset.state = ok ? "live" : "down";
  document.body.classList.toggle("offline", !ok);
}

async function poll() {
  const url = `/api/v1/instruments/${encodeURIComponent(venue)}/${encodeURIComponent(instrument)}` +
    `?depth=${DEPTH}`;
  try {
    const response = await fetch(url, { cache: "no-store" });
    if (response.status === 404) {
      setFeed(false, "unknown instrument");
      return;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    page.failures = 0;
    setFeed(true);
    render(data);
  } catch (err) {
    page.failures += 1;
    setFeed(false, "disconnected");
  }
}

function render(data) {
  page.last = data;
  $("venue").textContent = data.venue;
  $("title").textContent = data.title || data.instrument;
  $("title").title = data.instrument;
  $("outcome").textContent = data.outcome || "";
  document.title = `venuefeed · ${data.title || data.instrument}`;
  const sync = $("sync");
  const state = data.state || (data.book ? "live" : "no book");
  sync.textContent = `book ${state}`;
  sync.dataset.state = state;
  sync.className = `badge ${state === "live" ? "ok" : state === "no book" ? "idle" : "down"}`;
  renderLadder(data.book);
  drawDepth(data.book);
  renderTrades(data.trades);
  renderTimeline(data);
}

function renderLadder(book) {
  const body = $("ladder").tBodies[0];
  body.replaceChildren();
  if (!book) {
    const tr = document.createElement("tr");
    const td = cell("no book yet", "muted");
    td.colSpan = 4;
    tr.append(td);
    body.append(tr);
    $("book-meta").textContent = "";
    $("spread").textContent = "";
    return;
  }
  const rows = Math.max(book.bids.length, book.asks.length);
  for (let i = 0; i < rows; i++) {
    const bid = book.bids[i], ask = book.asks[i];
    const tr = document.createElement("tr");
    tr.append(cell(bid ? bid[1] : "", "num"), cell(bid ? bid[0] : "", "num bid"),
      cell(ask ? ask[0] : "", "num ask"), cell(ask ? ask[1] : "", "num"));
    body.append(tr);
  }
  const seq = book.sequence === null ? "" : ` · seq ${book.sequence}`;
  $("book-meta").textContent =
    `(${book.levels[0]} bids, ${book.levels[1]} asks · ${fmtTime(book.ts_recv)}${seq})`;
  if (book.bids.length && book.asks.length) {
    const bid = Number(book.bids[0][0]), ask = Number(book.asks[0][0]);
    $("spread").textContent = `spread ${(ask - bid).toPrecision(4)} · mid ${((ask + bid) / 2).toPrecision(6)}`;
  } else {
    $("spread").textContent = "";
  }
}

// Cumulative size from the touch outwards: bids step down to the left, asks up to the right.
function drawDepth(book) {
  const canvas = $("depth");
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * ratio) { canvas.width = w * ratio; canvas.height = h * ratio; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  if (!book || (!book.bids.length && !book.asks.length)) return;
  const styles = getComputedStyle(document.documentElement);
  const cumulative = (side) => {
    let total = 0;
    return side.map(([p, s]) => [Number(p), (total += Number(s))]);
  };
  const bids = cumulative(book.bids), asks = cumulative(book.asks);
  const prices = [...bids, ...asks].map((x) => x[0]);
  const lo = Math.min(...prices), hi = Math.max(...prices);
  const maxQ = Math.max(1e-12, ...bids.map((x) => x[1]), ...asks.map((x) => x[1]));
  const pad = 18, plotH = h - pad;
  const x = (p) => (hi === lo ? w / 2 : ((p - lo) / (hi - lo)) * (w - 8) + 4);
  const y = (q) => plotH - (q / maxQ) * (plotH - 6);
  const area = (points, color) => {
    if (!points.length) return;
    ctx.beginPath();
    ctx.moveTo(x(points[0][0]), plotH);
    let prevY = plotH;
    for (const [p, q] of points) {
      ctx.lineTo(x(p), prevY);
      ctx.lineTo(x(p), y(q));
      prevY = y(q);
    }
    ctx.lineTo(x(points[points.length - 1][0]), plotH);
    ctx.closePath();
    ctx.globalAlpha = 0.35;
    ctx.fillStyle = color;
    ctx.fill();
    ctx.globalAlpha = 1;
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.stroke();
  };
  area(bids, styles.getPropertyValue("--ok"));
  area(asks, styles.getPropertyValue("--bad"));
  ctx.fillStyle = styles.getPropertyValue("--muted");
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(String(lo), 4, h - 4);
  const right = String(hi);
  ctx.fillText(right, w - ctx.measureText(right).width - 4, h - 4);
  const top = `max ${maxQ.toLocaleString()}`;
  ctx.fillText(top, w - ctx.measureText(top).width - 4, 12);
}

function renderTrades(trades) {
  const body = $("trades");
  body.replaceChildren();
  for (const t of trades) {
    const tr = document.createElement("tr");
    tr.append(cell(fmtTime(t.ts)), cell(t.side, t.side === "buy" ? "up" : t.side === "sell" ? "down-move" : ""),
      cell(t.price, "num"), cell(t.size, "num"));
    body.append(tr);
  }
  if (!trades.length) {
    const tr = document.createElement("tr");
    const td = cell("none yet", "muted");
    td.colSpan = 4;
    tr.append(td);
    body.append(tr);
  }
}

// A strip per kind of mark over the page's time window: gaps as spans, state changes as ticks.
function renderTimeline(data) {
  const gaps = $("gaps"), states = $("states");
  gaps.replaceChildren(...data.gaps.map((g) => {
    const end = g.end ? fmtTime(g.end) : "open";
    const li = item(`${fmtTime(g.start)} → ${end}  ${g.cause} (${g.scope})` +
      `${g.healed ? " · healed" : ""}${g.detail ? " · " + g.detail : ""}`, g.healed ? "healed" : "open");
    li.dataset.healed = g.healed ? "true" : "false";
    return li;
  }));
  if (!data.gaps.length) gaps.append(item("none", "muted"));
  states.replaceChildren(...data.states.map((s) =>
    item(`${fmtTime(s.ts)}  ${s.state}${s.reason ? " · " + s.reason : ""}`,
      s.state === "live" ? "healed" : "open")));
  if (!data.states.length) states.append(item("no change", "muted"));
  drawTimeline(data);
}

function drawTimeline(data) {
  const canvas = $("timeline");
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * ratio) { canvas.width = w * ratio; canvas.height = h * ratio; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const styles = getComputedStyle(document.documentElement);
  const now = Date.now() * 1e6;
  // The last two minutes, or back to the first state change; older gaps are clipped at the left.
  const start = Math.max(now - 900e9, Math.min(now - 120e9, ...data.states.map((s) => s.ts)));
  const x = (ns) => ((ns - start) / (now - start)) * (w - 8) + 4;
  ctx.fillStyle = styles.getPropertyValue("--line");
  ctx.fillRect(4, 14, w - 8, 16);
  ctx.fillRect(4, 40, w - 8, 16);
  for (const g of data.gaps) {
    if ((g.end || now) < start) continue;
    const a = x(Math.max(g.start, start)), b = x(g.end || now);
    ctx.fillStyle = styles.getPropertyValue(g.healed ? "--warn" : "--bad");
    ctx.fillRect(a, 14, Math.max(3, b - a), 16);
  }
  for (const s of data.states) {
    ctx.fillStyle = styles.getPropertyValue(s.state === "live" ? "--ok" : "--bad");
    ctx.fillRect(x(s.ts) - 1, 40, 3, 16);
  }
  ctx.fillStyle = styles.getPropertyValue("--muted");
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText("gaps", 8, 26);
  ctx.fillText("book states", 8, 52);
  const label = `${fmtTime(start)} – now`;
  ctx.fillText(label, w - ctx.measureText(label).width - 4, 68);
}

window.addEventListener("resize", () => { if (page.last) render(page.last); });
if (!venue || !instrument) {
  setFeed(false, "no instrument given");
} else {
  poll();
  setInterval(poll, 1000);
}
