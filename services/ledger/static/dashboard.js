// NearHome regional dashboard: reads the ledger's /v1 API with the token kept in this tab, and
// polls it every 5 seconds (the trends every 30 seconds). For a council's token it also reads the
// council's open referrals and their alerts from the authority and alerting services named in
// /page/links.json. No framework, no external resource; charts are inline SVG with a table.
import {
  $, ApiError, api, el, howToStart, keyboardScroll, links, say, startGovuk, startIdentity, token, who, words,
} from "/static/common/nearhome.js";
import { NEEDS, PLACEMENT_TYPES } from "/static/common/words.js";

const POLL_MS = 5000;
const TREND_EVERY = 6; // polls
const DAYS = 14; // the daily trend's span, today included
const LARGEST_OTHERS = 5; // other councils named in the flows before "everyone else"
const FOOTPRINT_KEY = "nearhome.footprint";
const SVG = "http://www.w3.org/2000/svg";

// The figures each council (and each placement type) shows, in the tables' order.
const FIGURES = [
  ["registered_places", "Registered places"],
  ["occupied", "Occupied"],
  ["vacant", "Vacant"],
  ["held", "Held"],
  ["offered", "Offered"],
  ["stale_vacancies", "Stale vacancies"],
  ["open_referrals", "Open referrals"],
];
const TYPE_NAMES = PLACEMENT_TYPES;
const NEED_NAMES = NEEDS;
const REASON_NAMES = {
  needs_cannot_be_met: "Needs cannot be met",
  matching_risk: "Matching risk with the children there",
  staffing: "Staffing",
  location_risk: "Location risk",
  bed_no_longer_available: "Bed no longer available",
  other: "Other",
};

const state = {
  footprints: [], footprint: null, polls: 0, timer: null, generation: 0, last: {},
  links: {}, countedBy: "setting", trend: null, pastPoints: new Map(),
};

const typeName = (type) => TYPE_NAMES[type] || sentence(type);
const needName = (need) => NEED_NAMES[need] || sentence(need);
const reasonName = (reason) => REASON_NAMES[reason] || sentence(reason);
const number = (n) => n.toLocaleString("en-GB");
const plural = (n, one, many = `${one}s`) => `${number(n)} ${n === 1 ? one : many}`;
function percent(fraction) {
  if (fraction === null || fraction === undefined) return "–";
  return fraction > 0 && fraction < 0.005 ? "under 1%" : `${Math.round(fraction * 100)}%`;
}

function sentence(value) {
  const text = words(value);
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function share(figures) {
  if (!figures || figures.occupied === 0) return "–";
  return `${Math.round((100 * figures.occupied_by_others) / figures.occupied)}%`;
}

function status(text, isError = false) {
  say($("status"), text, isError);
}

// Set a node's text; mark it for a moment when a live update changed it. Whether it changed.
function setText(node, text) {
  if (!node || node.textContent === text) return false;
  const first = node.textContent === "";
  node.textContent = text;
  if (!first) {
    node.classList.remove("nearhome-new");
    void node.offsetWidth; // restart the highlight
    node.classList.add("nearhome-new");
  }
  return !first;
}

// Replace a table body's rows only when what they show changed (so a reader keeps their place).
function replaceRows(body, key, signature, rows) {
  if (state.last[key] === signature) return;
  state.last[key] = signature;
  body.replaceChildren(...rows);
}

function cell(text, numeric = false, attributes = {}) {
  const kind = numeric ? "govuk-table__cell govuk-table__cell--numeric" : "govuk-table__cell";
  return el("td", { class: kind, ...attributes }, text);
}

function rowHeader(text, attributes = {}) {
  return el("th", { scope: "row", class: "govuk-table__header", ...attributes }, text);
}

function emptyRow(columns, text) {
  return el("tr", { class: "govuk-table__row" },
    el("td", { class: "govuk-table__cell nearhome-empty", colspan: columns }, text));
}

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

// --- the footprint picker -----------------------------------------------------------------------

async function loadFootprints() {
  state.footprints = await api("", "/v1/footprints");
  const select = $("footprint");
  select.replaceChildren();
  const kinds = [["collaborative", "Collaboratives"], ["region", "Regions"], ["council", "Councils"]];
  for (const [kind, label] of kinds) {
    const group = el("optgroup", { label });
    for (const f of state.footprints.filter((x) => x.kind === kind)) {
      group.append(el("option", { value: f.footprint_id }, f.name));
    }
    if (group.children.length) select.append(group);
  }
  const byId = (id) => state.footprints.find((f) => f.footprint_id === id);
  const chosen = byId(sessionStorage.getItem(FOOTPRINT_KEY)) || homeFootprint(who().authority_code)
    || state.footprints.find((f) => f.kind === "collaborative") || state.footprints[0];
  if (!chosen) throw new ApiError(403, "this token may read no footprint", []);
  select.value = chosen.footprint_id;
  $("picker").hidden = false;
  choose(chosen);
}

// For a council's token: the first collaborative it belongs to, else the council itself.
function homeFootprint(code) {
  if (!code) return null;
  const member = (f) => f.member_councils.some((c) => c.authority_code === code);
  return state.footprints.find((f) => f.kind === "collaborative" && member(f))
    || state.footprints.find((f) => f.footprint_id === code) || null;
}

function choose(footprint) {
  state.footprint = footprint;
  state.polls = 0;
  state.generation += 1;
  state.last = {};
  state.trend = null;
  sessionStorage.setItem(FOOTPRINT_KEY, footprint.footprint_id);
  $("footprint-name").textContent = footprint.name;
  document.title = `${footprint.name} – Regional capacity – NearHome`;
  for (const id of ["councils", "types", "trend-table", "declines-by-reason", "declines-by-need",
    "responses-by-type", "sufficiency-by-type"]) $(id).tBodies[0].replaceChildren();
  for (const body of [...$("flows").tBodies]) body.remove();
  $("by-type").replaceChildren();
  $("trend-chart").replaceChildren();
  for (const node of document.querySelectorAll("#figures [data-figure], #figures [data-note]")) node.replaceChildren();
  $("figures").hidden = false;
  poll();
}

// The footprint's councils by name (a council's footprint: the council itself).
function councilsOf(footprint) {
  const councils = footprint.member_councils.length ? [...footprint.member_councils]
    : [{ authority_code: footprint.footprint_id, name: footprint.name }];
  return councils.sort((a, b) => a.name.localeCompare(b.name, "en-GB"));
}

// --- at a glance --------------------------------------------------------------------------------

function renderSummary(capacity) {
  const t = capacity.totals;
  const summary = $("summary");
  const figure = (name) => summary.querySelector(`[data-figure="${name}"]`);
  const note = (name) => summary.querySelector(`[data-note="${name}"]`);
  for (const name of ["offered", "held", "open_referrals", "stale_vacancies"]) setText(figure(name), String(t[name]));
  setText(figure("share_by_others"), share(t));
  setText(note("offered"), `of ${plural(t.vacant, "vacant bed")} in ${plural(t.registered_places, "registered place")}`);
  setText(note("held"), "kept for a child by a provider’s open offer");
  setText(note("open_referrals"), "children the member councils are looking for a home for");
  setText(note("stale_vacancies"), "open vacancies their providers have not confirmed lately");
  setText(note("share_by_others"), `${number(t.occupied_by_others)} of ${plural(t.occupied, "occupied bed")}`);
  summary.querySelector('[data-summary="stale_vacancies"]').classList.toggle("nearhome-figure--warning", t.stale_vacancies > 0);
  $("as-of").textContent = new Date(capacity.as_of).toLocaleString("en-GB");
  $("as-of").setAttribute("datetime", capacity.as_of);
}

// --- councils and placement types -----------------------------------------------------------------

function figureCells(row) {
  for (const [name] of FIGURES) row.append(cell("", true, { "data-figure": name }));
  row.append(cell("", true, { "data-figure": "share_by_others" }));
}

function fillFigures(row, figures) {
  const changed = [];
  for (const [name, label] of FIGURES) {
    if (setText(row.querySelector(`[data-figure="${name}"]`), String(figures[name]))) changed.push(label.toLowerCase());
  }
  setText(row.querySelector('[data-figure="share_by_others"]'), share(figures));
  return changed;
}

function renderCouncil(code, name, capacity) {
  const body = $("councils").tBodies[0];
  let row = body.querySelector(`tr[data-council="${CSS.escape(code)}"]`);
  if (!row) {
    row = el("tr", { class: "govuk-table__row", "data-council": code }, rowHeader(name));
    figureCells(row);
    row.append(cell("", false, { "data-trend": "offered", class: "govuk-table__cell nearhome-spark-cell" }));
    body.append(row);
  }
  const changed = fillFigures(row, capacity.totals);
  renderByType($("by-type"), code, name, capacity);
  return changed.length ? `${name}: ${changed.join(", ")}` : null;
}

const inUse = (f) => f.registered_places > 0 || f.occupied > 0 || f.open_referrals > 0 || f.offered > 0 || f.held > 0;

// A table of figures by placement type into `body` (types with nothing at all are left out).
function fillTypes(body, capacity, columns) {
  const types = Object.keys(capacity.by_type).filter((type) => inUse(capacity.by_type[type]));
  if (types.length === 0) {
    if (!body.querySelector(".nearhome-empty")) body.replaceChildren(emptyRow(columns, "No homes registered and no open referrals."));
    return;
  }
  body.querySelector(".nearhome-empty")?.closest("tr").remove();
  for (const type of types) {
    let row = body.querySelector(`tr[data-type="${type}"]`);
    if (!row) {
      row = el("tr", { class: "govuk-table__row", "data-type": type }, rowHeader(typeName(type)));
      figureCells(row);
      body.append(row);
    }
    fillFigures(row, capacity.by_type[type]);
  }
  for (const row of body.querySelectorAll("tr[data-type]")) if (!types.includes(row.dataset.type)) row.remove();
}

function typesHead() {
  const head = el("tr", { class: "govuk-table__row" }, el("th", { scope: "col", class: "govuk-table__header" }, "Placement type"));
  for (const [, label] of FIGURES) head.append(el("th", { scope: "col", class: "govuk-table__header govuk-table__header--numeric" }, label));
  head.append(el("th", { scope: "col", class: "govuk-table__header govuk-table__header--numeric" }, "Taken by other councils"));
  return el("thead", { class: "govuk-table__head" }, head);
}

function renderByType(holder, code, name, capacity) {
  let table = holder.querySelector(`table[data-council="${CSS.escape(code)}"]`);
  if (!table) {
    table = el("table", { class: "govuk-table nearhome-table--compact", "data-council": code },
      el("caption", { class: "govuk-table__caption govuk-table__caption--s" }, `${name}: live capacity by placement type`),
      typesHead(), el("tbody", { class: "govuk-table__body" }));
    holder.append(el("details", { class: "govuk-details nearhome-details", "data-council": code },
      el("summary", { class: "govuk-details__summary" }, el("span", { class: "govuk-details__summary-text" }, name)),
      el("div", { class: "govuk-details__text nearhome-scroll" }, table)));
  }
  fillTypes(table.tBodies[0], capacity, FIGURES.length + 2);
}

// --- flows: member councils, then the largest others, then everyone else together -----------------

function bar(fraction) {
  const width = 100;
  return svg("svg", { class: "nearhome-bar", width, height: 12, viewBox: `0 0 ${width} 12`, "aria-hidden": "true", focusable: "false" },
    svg("rect", { class: "nearhome-bar__track", x: 0, y: 0, width, height: 12 }),
    svg("rect", { class: "nearhome-bar__fill", x: 0, y: 0, width: Math.max(fraction > 0 ? 1 : 0, fraction * width).toFixed(1), height: 12 }));
}

function typesText(byType) {
  return Object.entries(byType).sort((a, b) => b[1] - a[1]).map(([t, n]) => `${typeName(t)} ${n}`).join(", ");
}

function flowRow(code, name, beds, byType, total, extra = {}) {
  const fraction = total ? beds / total : 0;
  return el("tr", { class: "govuk-table__row", "data-placing-council": code, ...extra },
    rowHeader(name),
    cell(number(beds), true, { "data-figure": "beds" }),
    cell(percent(fraction), true, { "data-figure": "share" }),
    el("td", { class: "govuk-table__cell nearhome-bar-cell" }, bar(fraction)),
    cell(typesText(byType), false, { class: "govuk-table__cell govuk-body-s nearhome-types" }));
}

function groupBody(group, title, rows) {
  return el("tbody", { class: "govuk-table__body", "data-group": group },
    el("tr", { class: "govuk-table__row nearhome-group" },
      el("th", { scope: "colgroup", colspan: 5, class: "govuk-table__header" }, title)),
    ...rows);
}

function renderFlows(flows, footprint) {
  const signature = JSON.stringify(flows.flows);
  if (state.last.flows === signature) return;
  state.last.flows = signature;
  const table = $("flows");
  for (const body of [...table.tBodies]) body.remove();
  const total = flows.totals.occupied;
  const members = flows.flows.filter((f) => f.own);
  const others = flows.flows.filter((f) => !f.own); // most beds first, as the API gives them
  const named = others.length > LARGEST_OTHERS + 1 ? others.slice(0, LARGEST_OTHERS) : others;
  const rest = others.slice(named.length);
  const row = (f) => flowRow(f.placing_authority_code, f.placing_authority_name, f.beds, f.by_type, total);
  const bodies = [];
  if (total === 0) {
    bodies.push(el("tbody", { class: "govuk-table__body" }, emptyRow(5, "No beds occupied yet.")));
  } else {
    const memberTitle = footprint.kind === "council" ? "The council itself" : "Member councils";
    bodies.push(groupBody("members", memberTitle, members.length ? members.map(row) : [emptyRow(5, "None of the member councils has a child in these homes.")]));
    if (others.length) {
      const elsewhereRows = [];
      if (rest.length) {
        const byType = {};
        for (const f of rest) for (const [t, n] of Object.entries(f.by_type)) byType[t] = (byType[t] || 0) + n;
        const beds = rest.reduce((sum, f) => sum + f.beds, 0);
        elsewhereRows.push(flowRow("elsewhere", `Elsewhere: ${plural(rest.length, "other council")} together`, beds, byType, total,
          { class: "govuk-table__row nearhome-elsewhere" }));
      }
      const title = rest.length ? `Other councils: the ${named.length} placing the most children here` : "Other councils";
      bodies.push(groupBody("others", title, [...named.map(row), ...elsewhereRows]));
    }
    bodies.push(el("tbody", { class: "govuk-table__body nearhome-total" },
      flowRow("total", "All placing councils", total, {}, total, { class: "govuk-table__row nearhome-total" })));
  }
  table.append(...bodies);
  const t = flows.totals;
  $("flows-intro").textContent = total
    ? `${plural(t.occupied, "bed is", "beds are")} occupied in the footprint’s homes: ${number(t.occupied_by_own)} by children its own councils placed `
      + `(${percent(t.occupied_by_own / t.occupied)}) and ${number(t.occupied_by_others)} by children placed from ${plural(others.length, "other council")}.`
    : "";
  const placing = new Set(members.map((f) => f.placing_authority_code));
  const without = councilsOf(footprint).filter((c) => !placing.has(c.authority_code));
  $("flows-members-without").textContent = total && without.length && footprint.kind !== "council"
    ? `Member councils with no child in these homes: ${without.map((c) => c.name).join(", ")}.` : "";
}

// --- the trend of beds offered and demand ---------------------------------------------------------

const isEmpty = (totals) => Object.values(totals).every((v) => v === 0);

// The footprint's totals at `at` (from the snapshots), remembered: the past does not change.
async function totalsAt(id, at) {
  const key = `${id}|${at.toISOString()}`;
  if (!state.pastPoints.has(key)) {
    const iso = encodeURIComponent(at.toISOString());
    const history = await api("", `/v1/capacity/${id}/history?since=${iso}&until=${iso}`);
    const point = history.points[history.points.length - 1];
    state.pastPoints.set(key, point ? point.totals : null);
  }
  return state.pastPoints.get(key);
}

// The trend's scales, coarsest first: the end of each of the last 13 days, of the last 23 hours,
// of the last eleven 5-minute spans (the last point is always now, from the live figures).
const SCALES = [
  { unit: "day", count: DAYS - 1, floor: (d) => d.setHours(0, 0, 0, 0), back: (d, n) => d.setDate(d.getDate() - n),
    label: (end) => new Date(end.getTime() - 1).toLocaleDateString("en-GB", { weekday: "short", day: "numeric", month: "short" }) },
  { unit: "hour", count: 23, floor: (d) => d.setMinutes(0, 0, 0), back: (d, n) => d.setHours(d.getHours() - n),
    label: (end) => end.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" }) },
  { unit: "5 minutes", count: 11, floor: (d) => d.setMinutes(d.getMinutes() - (d.getMinutes() % 5), 0, 0),
    back: (d, n) => d.setMinutes(d.getMinutes() - 5 * n),
    label: (end) => end.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" }) },
];

// The points of the trend on the coarsest scale with at least two points of history, from the
// first one with anything in it (the figures before the exchange began are all 0).
async function trendPoints(footprint) {
  const id = encodeURIComponent(footprint.footprint_id);
  let points = [];
  let unit = SCALES[0].unit;
  for (const scale of SCALES) {
    const latest = new Date();
    scale.floor(latest);
    const ends = [];
    for (let back = scale.count - 1; back >= 0; back -= 1) {
      const end = new Date(latest);
      scale.back(end, back);
      ends.push(end);
    }
    const totals = await Promise.all(ends.map((end) => totalsAt(id, end)));
    const first = totals.findIndex((t) => t && !isEmpty(t));
    unit = scale.unit;
    points = first < 0 ? [] : ends.slice(first).map((end, i) => ({ at: end, label: scale.label(end), totals: totals[first + i] }));
    if (points.length >= 2) break;
  }
  return { unit, points };
}

function niceStep(high) {
  const rough = high / 4;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough);
  return Math.max(1, step);
}

function describeSeries(points, key, name) {
  const values = points.map((p) => p[key]);
  const high = Math.max(...values);
  const low = Math.min(...values);
  const at = (v) => points[values.indexOf(v)].label;
  if (values.length === 1) return `${name}: ${values[0]}.`;
  return `${name} went from ${values[0]} (${points[0].label}) to ${values[values.length - 1]} (now); `
    + `highest ${high} (${at(high)}), lowest ${low} (${at(low)}).`;
}

function trendChart(points, unit) {
  const width = 760, height = 280, left = 44, right = 150, top = 14, bottom = 40;
  const plotW = width - left - right, plotH = height - top - bottom;
  const high = Math.max(1, ...points.flatMap((p) => [p.offered, p.demand]));
  const step = niceStep(high);
  const top_ = Math.ceil(high / step) * step;
  const x = (i) => left + (points.length === 1 ? plotW / 2 : (i * plotW) / (points.length - 1));
  const y = (v) => top + plotH - (v / top_) * plotH;
  const title = svg("title", { id: "trend-chart-title" });
  title.textContent = `Beds offered and open referrals at the end of ${unit}; the last point is now`;
  const desc = svg("desc", { id: "trend-chart-desc" });
  desc.textContent = `${describeSeries(points, "offered", "Beds offered")} ${describeSeries(points, "demand", "Open referrals")} The table below the chart has every figure.`;
  const chart = svg("svg", {
    class: "nearhome-chart__svg", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-labelledby": "trend-chart-title trend-chart-desc", focusable: "false",
  }, title, desc);
  const grid = svg("g", { class: "nearhome-chart__grid" });
  for (let v = 0; v <= top_; v += step) {
    grid.append(svg("line", { x1: left, x2: left + plotW, y1: y(v), y2: y(v) }));
    const label = svg("text", { x: left - 8, y: y(v) + 5, "text-anchor": "end", class: "nearhome-chart__axis" });
    label.textContent = String(v);
    grid.append(label);
  }
  const nth = Math.ceil(points.length / 8);
  points.forEach((p, i) => {
    if ((points.length - 1 - i) % nth !== 0) return;
    const label = svg("text", { x: x(i), y: top + plotH + 24, "text-anchor": "middle", class: "nearhome-chart__axis" });
    label.textContent = i === points.length - 1 ? "Now" : p.label;
    grid.append(label);
  });
  grid.append(svg("line", { class: "nearhome-chart__baseline", x1: left, x2: left + plotW, y1: y(0), y2: y(0) }));
  chart.append(grid);
  const ends = [];
  for (const [key, name, marker] of [["offered", "Beds offered", "circle"], ["demand", "Open referrals", "square"]]) {
    const series = svg("g", { class: `nearhome-chart__series nearhome-chart__series--${key}` });
    const coordinates = points.map((p, i) => [x(i), y(p[key])]);
    if (coordinates.length > 1) {
      series.append(svg("polyline", { points: coordinates.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ") }));
    }
    for (const [a, b] of coordinates) {
      series.append(marker === "circle" ? svg("circle", { cx: a.toFixed(1), cy: b.toFixed(1), r: 4 })
        : svg("rect", { x: (a - 4).toFixed(1), y: (b - 4).toFixed(1), width: 8, height: 8 }));
    }
    const [lastX, lastY] = coordinates[coordinates.length - 1];
    ends.push({ series, x: lastX, y: lastY, text: `${name} ${points[points.length - 1][key]}` });
    chart.append(series);
  }
  // The lines' names at their ends (not only their colours), kept apart.
  if (Math.abs(ends[0].y - ends[1].y) < 18) {
    const [upper, lower] = ends[0].y <= ends[1].y ? [ends[0], ends[1]] : [ends[1], ends[0]];
    const middle = (upper.y + lower.y) / 2;
    upper.y = middle - 9;
    lower.y = middle + 9;
  }
  for (const end of ends) {
    const label = svg("text", { x: end.x + 10, y: end.y + 5, class: "nearhome-chart__end" });
    label.textContent = end.text;
    end.series.append(label);
  }
  return chart;
}

function renderTrend(trend, capacity) {
  const now = { label: trend.unit === "day" ? "Today, now" : "Now", at: new Date(capacity.as_of), totals: capacity.totals };
  const points = [...trend.points, now].map((p) => ({
    label: p.label, offered: p.totals ? p.totals.offered : 0, held: p.totals ? p.totals.held : 0,
    demand: p.totals ? p.totals.open_referrals : 0,
  }));
  const signature = JSON.stringify([trend.unit, points]);
  if (state.last.trend === signature) return;
  state.last.trend = signature;
  const span = trend.points.length;
  const every = trend.unit === "day" ? "each day" : trend.unit === "hour" ? "each hour" : "each 5 minutes";
  $("trend-intro").textContent = span === 0
    ? "There is no history yet: the chart shows the figures as they are now."
    : `Beds offered (in open vacancies, not held for a child) and open referrals at the end of ${every}`
      + `${trend.unit === "day" ? "" : " (the history is too short for a daily trend)"}, and now.`;
  $("trend-chart").replaceChildren(trendChart(points, every));
  $("trend-when").textContent = trend.unit === "day" ? "Day" : "Time";
  $("trend-caption").textContent = `Beds offered, held and open referrals at the end of ${every} (the last row is now)`;
  const rows = points.map((p) => el("tr", { class: "govuk-table__row" },
    rowHeader(p.label), cell(String(p.offered), true), cell(String(p.held), true), cell(String(p.demand), true)));
  $("trend-table").tBodies[0].replaceChildren(...rows);
}

// A council's sparkline of beds offered, with its text alternative.
function sparkline(values, label) {
  const width = 120, height = 28, pad = 3;
  const title = svg("title");
  const chart = svg("svg", { class: "nearhome-spark", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  if (values.length === 0) {
    title.textContent = `${label}: no history yet`;
    chart.setAttribute("aria-label", title.textContent);
    chart.append(title);
    return chart;
  }
  const low = Math.min(...values), high = Math.max(...values);
  const span = high - low || 1;
  const step = values.length > 1 ? (width - 2 * pad) / (values.length - 1) : 0;
  const points = values.map((v, i) => [pad + i * step, height - pad - ((v - low) / span) * (height - 2 * pad)]);
  if (values.length === 1) points.push([width - pad, points[0][1]]);
  const [lx, ly] = points[points.length - 1];
  title.textContent = `${label}: from ${values[0]} to ${values[values.length - 1]}, lowest ${low}, highest ${high}`;
  chart.setAttribute("aria-label", title.textContent);
  chart.append(title,
    svg("polyline", { points: points.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ") }),
    svg("circle", { cx: lx.toFixed(1), cy: ly.toFixed(1), r: 2.5 }));
  return chart;
}

function renderSparklines(councilHistories) {
  for (const [code, history] of councilHistories) {
    const target = $("councils").querySelector(`tr[data-council="${CSS.escape(code)}"] [data-trend="offered"]`);
    if (target) target.replaceChildren(sparkline(history.points.map((p) => p.totals.offered), `${history.name}, beds offered`));
  }
}

// --- requests and answers; sufficiency ------------------------------------------------------------

function fillFigureList(list, values, notes) {
  for (const [name, text] of Object.entries(values)) setText(list.querySelector(`[data-figure="${name}"]`), text);
  for (const [name, text] of Object.entries(notes)) setText(list.querySelector(`[data-note="${name}"]`), text);
}

const hours = (h) => (h === null ? "–" : h < 1 ? `${Math.round(h * 60)} min` : `${h.toFixed(1)} h`);

function renderResponses(responses) {
  const t = responses.totals;
  fillFigureList($("responses"), {
    requests: String(t.requests), offers: String(t.offers), declines: String(t.declines),
    median_hours_to_first_answer: hours(t.median_hours_to_first_answer),
    requests_per_placement: t.requests_per_placement === null ? "–" : t.requests_per_placement.toFixed(1),
  }, {
    requests: `${t.answered} answered`,
    offers: t.requests ? `${percent(t.offers / t.requests)} of requests` : "",
    declines: t.requests ? `${percent(t.declines / t.requests)} of requests` : "",
    median_hours_to_first_answer: t.answered ? `over ${plural(t.answered, "answered request")}` : "no answers yet",
    requests_per_placement: `${plural(t.placements_from_requests, "placement")} started from an offer`,
  });
  const counts = (byKey, name) => Object.entries(byKey).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1])
    .map(([key, n]) => el("tr", { class: "govuk-table__row", "data-key": key }, rowHeader(name(key)), cell(String(n), true)));
  const reasons = counts(t.declines_by_reason, reasonName);
  const needs = counts(t.declines_by_need, needName);
  replaceRows($("declines-by-reason").tBodies[0], "reasons", JSON.stringify(t.declines_by_reason),
    reasons.length ? reasons : [emptyRow(2, "No declines yet.")]);
  replaceRows($("declines-by-need").tBodies[0], "needs", JSON.stringify(t.declines_by_need),
    needs.length ? needs : [emptyRow(2, "No declines yet.")]);
  const types = Object.entries(responses.by_type).filter(([, r]) => r.requests > 0);
  const rows = types.map(([type, r]) => el("tr", { class: "govuk-table__row", "data-type": type },
    rowHeader(typeName(type)), cell(String(r.requests), true), cell(String(r.offers), true), cell(String(r.declines), true),
    cell(String(r.answered), true), cell(r.median_hours_to_first_answer === null ? "–" : r.median_hours_to_first_answer.toFixed(1), true),
    cell(String(r.placements_from_requests), true), cell(r.requests_per_placement === null ? "–" : r.requests_per_placement.toFixed(1), true)));
  replaceRows($("responses-by-type").tBodies[0], "responses", JSON.stringify(types),
    rows.length ? rows : [emptyRow(8, "No requests yet.")]);
}

function renderSufficiency(sufficiency) {
  const t = sufficiency.totals;
  fillFigureList($("sufficiency"), {
    placements: String(t.placements),
    share_within_20_miles: percent(t.share_within_20_miles),
    share_inside_placing_council: percent(t.share_inside_placing_council),
  }, {
    placements: sufficiency.counted_by === "setting" ? "in the footprint’s homes" : "made by the footprint’s councils",
    share_within_20_miles: t.home_known ? `${t.within_20_miles} of ${plural(t.home_known, "placement")} whose home district is known` : "no home district known yet",
    share_inside_placing_council: t.placements ? `${t.inside_placing_council} of ${plural(t.placements, "placement")}` : "no placements yet",
  });
  const types = Object.entries(sufficiency.by_type).filter(([, s]) => s.placements > 0);
  const rows = types.map(([type, s]) => el("tr", { class: "govuk-table__row", "data-type": type },
    rowHeader(typeName(type)), cell(String(s.placements), true),
    cell(`${percent(s.share_within_20_miles)} (${s.within_20_miles} of ${s.home_known})`, true),
    cell(`${percent(s.share_inside_placing_council)} (${s.inside_placing_council} of ${s.placements})`, true)));
  replaceRows($("sufficiency-by-type").tBodies[0], "sufficiency", JSON.stringify([sufficiency.counted_by, types]),
    rows.length ? rows : [emptyRow(4, "No placements from referrals yet.")]);
}

// --- a council's own referrals and their alerts -----------------------------------------------------

function alertText(alert) {
  const where = `${alert.distance_miles.toFixed(1)} miles${alert.local ? ", local" : ""}`;
  return `${typeName(alert.placement_type)} in ${alert.postcode_district} (${where}), `
    + `rated ${words(alert.ofsted_rating)}, ${plural(alert.beds, "bed")}`;
}

function referralRow(referral, alerts) {
  const fitting = alerts.length
    ? el("ul", { class: "govuk-list govuk-body-s nearhome-alerts" },
      ...alerts.map((a) => el("li", { "data-alert": a.alert_id, "data-vacancy": a.vacancy_id }, alertText(a))))
    : el("span", { class: "nearhome-empty" }, "None yet");
  return el("tr", { class: "govuk-table__row", "data-referral": referral.referral_id },
    rowHeader(referral.reference),
    cell(String(referral.age), true),
    cell(referral.placement_types.map(typeName).join(", ")),
    cell(referral.needs.map(needName).join(", ") || "None"),
    cell(new Date(referral.needed_by).toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric" })),
    cell(sentence(referral.urgency)),
    cell(sentence(referral.search_scope)),
    cell(String(alerts.length), true, { "data-figure": "alerts" }),
    el("td", { class: "govuk-table__cell" }, fitting));
}

function renderReferrals(referrals, alerts) {
  const byReferral = new Map();
  for (const alert of alerts) {
    if (!byReferral.has(alert.referral_id)) byReferral.set(alert.referral_id, []);
    byReferral.get(alert.referral_id).push(alert); // already best first
  }
  const urgent = (r) => (r.urgency === "emergency" ? 0 : 1);
  const ordered = [...referrals].sort((a, b) => urgent(a) - urgent(b) || a.needed_by.localeCompare(b.needed_by));
  const rows = ordered.map((r) => referralRow(r, byReferral.get(r.referral_id) || []));
  if (rows.length === 0) rows.push(emptyRow(9, "No open referrals."));
  const signature = JSON.stringify([ordered.map((r) => [r.referral_id, r.version]), alerts.map((a) => a.alert_id)]);
  replaceRows($("referrals").tBodies[0], "referrals", signature, rows);
  const alerted = ordered.reduce((count, r) => count + (byReferral.get(r.referral_id) || []).length, 0);
  say($("referrals-status"), `${plural(referrals.length, "open referral")}, ${plural(alerted, "open alert")}.`);
}

// Failing here (the authority or alerting service away) leaves the capacity figures alone.
async function pollReferrals(generation) {
  const section = $("council-referrals");
  const { authority, alerting } = state.links;
  if (who().role !== "authority" || !authority || !alerting) { section.hidden = true; return; }
  section.hidden = false;
  const link = $("home-finder-link");
  if (link.hidden) {
    link.replaceChildren("To request a bed for a child, use the ",
      el("a", { class: "govuk-link", href: `${authority}/` }, "home finder"), ".");
    link.hidden = false;
  }
  try {
    const [referrals, alerts] = await Promise.all([
      api(authority, "/v1/referrals?status=open"),
      api(alerting, "/v1/alerts?status=open&limit=1000"),
    ]);
    if (generation === state.generation) renderReferrals(referrals, alerts);
  } catch (error) {
    if (generation !== state.generation) return;
    say($("referrals-status"), error instanceof ApiError
      ? `Could not read the referrals or their alerts: ${error.message} (HTTP ${error.status}).`
      : "Could not reach the authority or alerting service; trying again.", true);
  }
}

// --- polling --------------------------------------------------------------------------------------

async function poll() {
  clearTimeout(state.timer);
  const generation = state.generation;
  const footprint = state.footprint;
  if (!footprint || !token.get()) return;
  const councils = councilsOf(footprint);
  const id = encodeURIComponent(footprint.footprint_id);
  const withTrend = state.polls % TREND_EVERY === 0;
  const referrals = pollReferrals(generation);
  try {
    const [capacity, flows, responses, sufficiency, ...perCouncil] = await Promise.all([
      api("", `/v1/capacity/${id}`),
      api("", `/v1/capacity/${id}/flows`),
      api("", `/v1/capacity/${id}/responses`),
      api("", `/v1/capacity/${id}/sufficiency?counted_by=${state.countedBy}`),
      ...councils.map((c) => api("", `/v1/capacity/${encodeURIComponent(c.authority_code)}`)),
    ]);
    let trend = null;
    let histories = null;
    if (withTrend) {
      [trend, histories] = await Promise.all([
        trendPoints(footprint),
        Promise.all(councils.map((c) => api("", `/v1/capacity/${encodeURIComponent(c.authority_code)}/history`))),
      ]);
    }
    await referrals;
    if (generation !== state.generation) return; // the footprint changed meanwhile
    renderSummary(capacity);
    const changes = councils.map((c, i) => renderCouncil(c.authority_code, c.name, perCouncil[i])).filter(Boolean);
    fillTypes($("types").tBodies[0], capacity, FIGURES.length + 2);
    $("types-caption").textContent = `${footprint.name}: live capacity by placement type`;
    renderFlows(flows, footprint);
    renderResponses(responses);
    renderSufficiency(sufficiency);
    if (trend) state.trend = trend;
    if (state.trend) renderTrend(state.trend, capacity);
    if (histories) renderSparklines(councils.map((c, i) => [c.authority_code, histories[i]]));
    state.polls += 1;
    const time = new Date().toLocaleTimeString("en-GB");
    status(changes.length && state.polls > 1 ? `Updated at ${time}. Changed: ${changes.join("; ")}.` : `Updated at ${time}.`);
    document.body.dataset.polls = String(state.polls);
  } catch (error) {
    if (generation !== state.generation) return;
    if (error instanceof ApiError && error.status === 401) {
      status(`The token was refused (${error.message}). Enter another token.`, true);
      return;
    }
    status(error instanceof ApiError ? `Could not read capacity: ${error.message} (HTTP ${error.status}). Trying again.`
      : "Could not reach the ledger. Trying again.", true);
  }
  state.timer = setTimeout(poll, POLL_MS);
}

function stop(message) {
  clearTimeout(state.timer);
  state.generation += 1;
  state.footprint = null;
  $("figures").hidden = true;
  $("picker").hidden = true;
  status(message);
}

async function start() {
  clearTimeout(state.timer);
  status("Loading footprints…");
  try {
    await loadFootprints();
  } catch (error) {
    const message = error instanceof ApiError ? `${error.message} (HTTP ${error.status})` : "the ledger did not answer";
    stop(`Could not load footprints: ${message}.`);
    say($("status"), $("status").textContent, true);
  }
}

startGovuk();
keyboardScroll($("figures"));
try {
  state.links = await links();
} catch {
  state.links = {};
}
$("footprint").addEventListener("change", (event) => {
  const chosen = state.footprints.find((f) => f.footprint_id === event.target.value);
  if (chosen) choose(chosen);
});
$("counted-by").addEventListener("change", (event) => {
  state.countedBy = event.target.value;
  poll();
});
status(howToStart("Enter a token to see capacity.", "Sign in to see capacity."));
let started = false;
startIdentity((me) => {
  if (me && me.refused) {
    stop(`The token was refused (${me.refused}). ${howToStart("Enter another token.", "Sign in again.")}`);
    say($("status"), $("status").textContent, true);
  } else if (me) {
    start();
  } else {
    sessionStorage.removeItem(FOOTPRINT_KEY);
    stop(started
      ? howToStart("Token forgotten. Enter a token to see capacity.", "Signed out. Sign in to see capacity.")
      : howToStart("Enter a token to see capacity.", "Sign in to see capacity."));
  }
  started = true;
});
