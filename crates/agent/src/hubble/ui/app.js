// Hubble UI: polls /api/flows once a second with the filters in the form
// (mirrored in the address bar, so a link reproduces a view), draws the
// service map as SVG and the flow table, and shows one flow in the detail
// panel. `?select=drop` preselects the newest dropped flow, `?select=N`
// flow N. Everything is rendered into the DOM, nothing into a canvas.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const FILTERS = ["namespace", "pod", "verdict", "protocol", "port", "window"];
const BOX = { w: 150, h: 40, gapX: 70, gapY: 50, perRow: 3, pad: 28 };

const form = document.getElementById("filters");
const status = document.getElementById("status");
const params = new URLSearchParams(location.search);
let select = params.get("select") || "";
let selected = null;

for (const name of FILTERS) {
  if (params.has(name)) form.elements[name].value = params.get(name);
}

function el(tag, attrs, text) {
  const node = tag === "svg" || ["g", "rect", "text", "path", "title"].includes(tag)
    ? document.createElementNS(SVG, tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function apiQuery() {
  const q = new URLSearchParams();
  for (const name of ["namespace", "pod", "verdict", "protocol", "port"]) {
    const v = form.elements[name].value.trim();
    if (v) q.set(name, v);
  }
  const win = form.elements.window.value;
  if (win) q.set("since", String(Date.now() - Number(win) * 1000));
  return q;
}

function syncAddress() {
  const q = new URLSearchParams();
  for (const name of FILTERS) {
    const v = form.elements[name].value.trim();
    if (v) q.set(name, v);
  }
  if (select) q.set("select", select);
  history.replaceState(null, "", q.toString() ? "?" + q : location.pathname);
}

// Namespaces stacked top to bottom, their workloads in rows inside.
function layout(nodes) {
  const byNs = new Map();
  for (const n of nodes) {
    if (!byNs.has(n.namespace)) byNs.set(n.namespace, []);
    byNs.get(n.namespace).push(n);
  }
  const pos = new Map();
  const groups = [];
  let y = 10;
  for (const [ns, members] of byNs) {
    const rows = Math.ceil(members.length / BOX.perRow);
    const cols = Math.min(members.length, BOX.perRow);
    const w = cols * BOX.w + (cols - 1) * BOX.gapX + 2 * BOX.pad;
    const h = rows * BOX.h + (rows - 1) * BOX.gapY + 2 * BOX.pad;
    groups.push({ ns, x: 10, y, w, h });
    members.forEach((n, i) => {
      const x = 10 + BOX.pad + (i % BOX.perRow) * (BOX.w + BOX.gapX);
      const top = y + BOX.pad + Math.floor(i / BOX.perRow) * (BOX.h + BOX.gapY);
      pos.set(n.id, { x, y: top });
    });
    y += h + 20;
  }
  return { pos, groups, height: Math.max(y, 120) };
}

// Where the segment from a box's centre towards (tx, ty) leaves the box.
function border(p, tx, ty) {
  const cx = p.x + BOX.w / 2, cy = p.y + BOX.h / 2;
  const dx = tx - cx, dy = ty - cy;
  if (dx === 0 && dy === 0) return [cx, cy];
  const s = Math.min(Math.abs(BOX.w / 2 / (dx || 1e-9)), Math.abs(BOX.h / 2 / (dy || 1e-9)));
  return [cx + dx * s, cy + dy * s];
}

function drawMap(map) {
  const { pos, groups, height } = layout(map.nodes);
  const svg = document.getElementById("map");
  svg.setAttribute("height", String(height));
  const nsLayer = document.getElementById("map-namespaces");
  const edgeLayer = document.getElementById("map-edges");
  const nodeLayer = document.getElementById("map-nodes");
  nsLayer.replaceChildren();
  edgeLayer.replaceChildren();
  nodeLayer.replaceChildren();
  for (const g of groups) {
    const group = el("g", { class: "namespace", "data-namespace": g.ns });
    group.append(el("rect", { x: g.x, y: g.y, width: g.w, height: g.h, rx: 8 }));
    group.append(el("text", { x: g.x + 8, y: g.y + 16 }, g.ns || "(no namespace)"));
    nsLayer.append(group);
  }
  for (const n of map.nodes) {
    const p = pos.get(n.id);
    const g = el("g", { class: "workload", "data-id": n.id });
    g.append(el("rect", { x: p.x, y: p.y, width: BOX.w, height: BOX.h }));
    g.append(el("text", { x: p.x + 8, y: p.y + 17 }, n.name));
    g.append(el("text", { class: "identity", x: p.x + 8, y: p.y + 32 }, "identity " + n.identity));
    nodeLayer.append(g);
  }
  // Edges between the same two boxes bend apart, one lane each.
  const lanes = new Map();
  for (const e of map.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const pair = [e.from, e.to].sort().join("\u0000");
    const lane = lanes.get(pair) || 0;
    lanes.set(pair, lane + 1);
    const g = el("g", {
      class: "edge " + e.verdict,
      "data-from": e.from,
      "data-to": e.to,
      "data-verdict": e.verdict,
      "data-count": e.count,
    });
    let d, lx, ly;
    if (e.from === e.to) {
      const x = a.x + BOX.w, y = a.y + BOX.h / 2, r = 22 + lane * 14;
      d = `M${x},${y - 8} C${x + r * 2},${y - r * 1.5} ${x + r * 2},${y + r * 1.5} ${x},${y + 8}`;
      lx = x + r * 1.6; ly = y;
    } else {
      const acx = a.x + BOX.w / 2, acy = a.y + BOX.h / 2;
      const bcx = b.x + BOX.w / 2, bcy = b.y + BOX.h / 2;
      const len = Math.hypot(bcx - acx, bcy - acy);
      const bend = 18 + lane * 30;
      const mx = (acx + bcx) / 2 - ((bcy - acy) / len) * bend;
      const my = (acy + bcy) / 2 + ((bcx - acx) / len) * bend;
      const [sx, sy] = border(a, mx, my);
      const [tx, ty] = border(b, mx, my);
      d = `M${sx},${sy} Q${mx},${my} ${tx},${ty}`;
      lx = (sx + 2 * mx + tx) / 4; ly = (sy + 2 * my + ty) / 4;
    }
    g.append(el("path", { d, "marker-end": `url(#arrow-${e.verdict})` }));
    g.append(el("text", { class: "count", x: lx, y: ly + 4, "text-anchor": "middle" }, String(e.count)));
    g.append(el("title", {}, `${e.from} → ${e.to}: ${e.count} ${e.verdict}`));
    edgeLayer.append(g);
  }
}

function drawTable(rows) {
  const body = document.querySelector("#flows tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = el("tr", { "data-id": r.id, "data-verdict": r.verdict });
    const cells = [
      r.time, r.source.name, r.destination.name, r.verdict, r.kind, r.summary, r.reason,
    ];
    cells.forEach((text, i) => {
      const td = el("td", i === 3 ? { class: "verdict-" + r.verdict } : {}, text);
      tr.append(td);
    });
    if (selected && selected.id === r.id) tr.classList.add("selected");
    tr.addEventListener("click", () => {
      select = String(r.id);
      showDetail(r);
      syncAddress();
      for (const other of body.children) other.classList.toggle("selected", other === tr);
    });
    body.append(tr);
  }
}

function showDetail(r) {
  selected = r;
  const panel = document.getElementById("detail");
  panel.hidden = false;
  panel.setAttribute("data-flow-id", r.id);
  panel.setAttribute("data-verdict", r.verdict);
  const set = (id, text) => { document.getElementById(id).textContent = text; };
  set("detail-id", "#" + r.id);
  set("detail-time", r.time);
  set("detail-source", `${r.source.name} (${r.source.ip}, identity ${r.source.identity})`);
  set("detail-destination", `${r.destination.name} (${r.destination.ip}, identity ${r.destination.identity})`);
  set("detail-verdict", r.verdict);
  set("detail-summary", `${r.kind} ${r.summary}`);
  set("detail-reason", r.reason || "—");
  set("detail-denied-by", r.denied_by.length ? r.denied_by.join(", ") : "—");
  set("detail-allowed-by", r.allowed_by.length ? r.allowed_by.join(", ") : "—");
}

function pickSelection(rows) {
  if (!select) return;
  const found = select === "drop"
    ? (selected || rows.find((r) => r.verdict === "DROPPED"))
    : rows.find((r) => String(r.id) === select);
  if (found) showDetail(found);
}

// The rows the page has (newest first) and the number of the next flow it
// has not seen: each poll asks only for rows from there on. New filters (the
// query without its moving `since`) or a restarted agent start over.
const ROW_LIMIT = 200;
let rows = [];
let from = 0;
let rowsFor = null;

function queryKey(q) {
  const k = new URLSearchParams(q);
  k.delete("since");
  return k.toString();
}

let inFlight = false;
async function poll() {
  if (inFlight) return;
  inFlight = true;
  try {
    const q = apiQuery();
    if (queryKey(q) !== rowsFor) {
      rows = [];
      from = 0;
      rowsFor = queryKey(q);
    }
    q.set("from", String(from));
    const res = await fetch("/api/flows?" + q);
    if (!res.ok) throw new Error(await res.text());
    const page = await res.json();
    if (page.seen < from) {
      // The agent restarted and numbers its flows from 0 again.
      rows = [];
      from = 0;
      return;
    }
    if (queryKey(apiQuery()) !== rowsFor) return; // filters changed meanwhile
    rows = page.rows.concat(rows).filter((r) => r.id >= page.first).slice(0, ROW_LIMIT);
    from = page.seen;
    drawMap(page.map);
    pickSelection(rows);
    drawTable(rows);
    status.className = "";
    status.setAttribute("data-matched", page.matched);
    status.textContent = `${page.matched} flows matched, ${rows.length} shown, ` +
      `${page.seen} seen · ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    status.className = "error";
    status.textContent = "error: " + err.message;
  } finally {
    inFlight = false;
  }
}

form.addEventListener("input", () => { syncAddress(); poll(); });
form.addEventListener("submit", (ev) => ev.preventDefault());
poll();
setInterval(poll, 1000);
