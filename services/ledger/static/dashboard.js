// NearHome regional dashboard: reads the ledger's /v1 API with the token kept in sessionStorage,
// and polls it every 5 seconds (history every 30 seconds). For an authority's token it also reads
// the council's open referrals and their alerts from the authority and alerting services named in
// /dashboard/links.json. No framework, no external resource.
"use strict";

const POLL_MS = 5000;
const HISTORY_EVERY = 6; // polls
const TOKEN_KEY = "nearhome.token";
const FOOTPRINT_KEY = "nearhome.footprint";
const FIGURES = [
  ["registered_places", "Registered places"],
  ["occupied", "Occupied"],
  ["vacant", "Vacant"],
  ["offered", "Offered"],
  ["stale_vacancies", "Stale vacancies"],
  ["open_referrals", "Open referrals"],
];
const TYPE_NAMES = {
  childrens_home: "Children's home",
  residential_special_school: "Residential special school",
  secure_childrens_home: "Secure children's home",
  foster_care_in_house: "Foster care (in-house)",
  foster_care_ifa: "Foster care (IFA)",
  parent_and_child: "Parent and child",
  supported_accommodation: "Supported accommodation",
  supported_lodgings: "Supported lodgings",
  short_breaks: "Short breaks",
};

const NEED_NAMES = { semh: "SEMH", uasc: "UASC", cse_risk: "CSE risk", cce_risk: "CCE risk" };

const state = { footprints: [], footprint: null, polls: 0, timer: null, generation: 0, last: {}, links: null };
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

// The token's claims (role, authority_code …), read only to choose what to show: every service
// checks the token itself.
function claims() {
  try {
    const part = token().split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch (_) {
    return {};
  }
}

async function api(path) {
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${token()}`, Accept: "application/json" },
    cache: "no-store",
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.json();
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function say(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function share(figures) {
  if (!figures || figures.occupied === 0) return "–";
  return `${Math.round((100 * figures.occupied_by_others) / figures.occupied)}%`;
}

function shareValue(figures) {
  return figures.occupied === 0 ? 0 : figures.occupied_by_others / figures.occupied;
}

// Set a cell's text; mark it (briefly) when a live update changed it. Returns whether it changed.
function setText(node, text) {
  if (node.textContent === text) return false;
  const first = node.textContent === "";
  node.textContent = text;
  if (!first) {
    node.classList.add("changed");
    setTimeout(() => node.classList.remove("changed"), 4000);
  }
  return !first;
}

// A small inline SVG sparkline of `values` (one point per history point), with a text alternative.
function sparkline(values, label) {
  const ns = "http://www.w3.org/2000/svg";
  const width = 120, height = 28, pad = 3;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  const title = document.createElementNS(ns, "title");
  if (values.length === 0) {
    title.textContent = `${label}: no history yet`;
    svg.append(title);
    return svg;
  }
  const low = Math.min(...values), high = Math.max(...values);
  const span = high - low || 1;
  const step = values.length > 1 ? (width - 2 * pad) / (values.length - 1) : 0;
  const points = values.map((v, i) => [pad + i * step, height - pad - ((v - low) / span) * (height - 2 * pad)]);
  if (values.length === 1) points.push([width - pad, points[0][1]]);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "));
  const dot = document.createElementNS(ns, "circle");
  const [lx, ly] = points[points.length - 1];
  dot.setAttribute("cx", lx.toFixed(1)); dot.setAttribute("cy", ly.toFixed(1)); dot.setAttribute("r", "2.5");
  const fmt = (v) => (Number.isInteger(v) ? String(v) : `${Math.round(v * 100)}%`);
  title.textContent = `${label}: from ${fmt(values[0])} to ${fmt(values[values.length - 1])}, lowest ${fmt(low)}, highest ${fmt(high)} (${values.length} points)`;
  svg.setAttribute("aria-label", title.textContent);
  svg.append(title, line, dot);
  return svg;
}

function putSparkline(container, values, label) {
  container.replaceChildren(sparkline(values, label));
}

// --- the footprint picker ---------------------------------------------------------------------

async function loadFootprints() {
  state.footprints = await api("/v1/footprints");
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
  const remembered = sessionStorage.getItem(FOOTPRINT_KEY);
  const byId = (id) => state.footprints.find((f) => f.footprint_id === id);
  const chosen = byId(remembered) || homeFootprint(claims().authority_code)
    || state.footprints.find((f) => f.kind === "collaborative") || state.footprints[0];
  if (!chosen) throw new ApiError(403, "this token may read no footprint");
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
  sessionStorage.setItem(FOOTPRINT_KEY, footprint.footprint_id);
  $("footprint-name").textContent = footprint.name;
  document.title = `${footprint.name} – NearHome`;
  $("councils").tBodies[0].replaceChildren();
  $("flows").tBodies[0].replaceChildren();
  $("by-type").replaceChildren();
  for (const node of document.querySelectorAll("#summary [data-figure], #summary [data-trend]")) node.replaceChildren();
  $("main").hidden = false;
  poll();
}

// --- rendering --------------------------------------------------------------------------------

function councilsOf(footprint) {
  return footprint.member_councils.length ? footprint.member_councils
    : [{ authority_code: footprint.footprint_id, name: footprint.name }];
}

function councilRow(council) {
  const row = el("tr", { "data-council": council.authority_code });
  row.append(el("th", { scope: "row" }, council.name));
  for (const [figure] of FIGURES) row.append(el("td", { class: "num", "data-figure": figure }));
  row.append(el("td", { class: "num", "data-figure": "share_by_others" }));
  row.append(el("td", { "data-trend": "offered" }));
  return row;
}

function renderCouncil(code, name, capacity) {
  const body = $("councils").tBodies[0];
  let row = body.querySelector(`tr[data-council="${code}"]`);
  if (!row) { row = councilRow({ authority_code: code, name }); body.append(row); }
  const changed = [];
  for (const [figure, label] of FIGURES) {
    if (setText(row.querySelector(`[data-figure="${figure}"]`), String(capacity.totals[figure]))) changed.push(label.toLowerCase());
  }
  setText(row.querySelector('[data-figure="share_by_others"]'), share(capacity.totals));
  renderByType(code, name, capacity);
  return changed.length ? `${name}: ${changed.join(", ")}` : null;
}

function renderByType(code, name, capacity) {
  const holder = $("by-type");
  let table = holder.querySelector(`table[data-council="${code}"]`);
  if (!table) {
    const head = el("tr", {}, el("th", { scope: "col" }, "Placement type"));
    for (const [, label] of FIGURES) head.append(el("th", { scope: "col", class: "num" }, label));
    head.append(el("th", { scope: "col", class: "num" }, "Taken by other councils"));
    table = el("table", { "data-council": code },
      el("caption", {}, `${name}: live capacity by placement type`), el("thead", {}, head), el("tbody"));
    const details = el("details", { "data-council": code }, el("summary", {}, name), el("div", { class: "scroll" }, table));
    holder.append(details);
  }
  const body = table.tBodies[0];
  const types = Object.keys(capacity.by_type);
  if (types.length === 0) {
    if (!body.querySelector(".empty")) body.replaceChildren(el("tr", {}, el("td", { colspan: "8", class: "empty" }, "No settings registered.")));
    return;
  }
  body.querySelector(".empty")?.closest("tr").remove();
  for (const type of types) {
    let row = body.querySelector(`tr[data-type="${type}"]`);
    if (!row) {
      row = el("tr", { "data-type": type }, el("th", { scope: "row" }, TYPE_NAMES[type] || type));
      for (const [figure] of FIGURES) row.append(el("td", { class: "num", "data-figure": figure }));
      row.append(el("td", { class: "num", "data-figure": "share_by_others" }));
      body.append(row);
    }
    for (const [figure] of FIGURES) setText(row.querySelector(`[data-figure="${figure}"]`), String(capacity.by_type[type][figure]));
    setText(row.querySelector('[data-figure="share_by_others"]'), share(capacity.by_type[type]));
  }
  for (const row of body.querySelectorAll("tr[data-type]")) if (!(row.dataset.type in capacity.by_type)) row.remove();
}

function renderSummary(capacity) {
  const summary = $("summary");
  for (const figure of ["offered", "open_referrals", "stale_vacancies"]) {
    setText(summary.querySelector(`[data-figure="${figure}"]`), String(capacity.totals[figure]));
  }
  setText(summary.querySelector('[data-figure="share_by_others"]'), share(capacity.totals));
  $("as-of").textContent = new Date(capacity.as_of).toLocaleString("en-GB");
  $("as-of").setAttribute("datetime", capacity.as_of);
}

function renderFlows(flows) {
  const body = $("flows").tBodies[0];
  const rows = flows.flows.map((flow) => {
    const types = Object.entries(flow.by_type).map(([t, n]) => `${TYPE_NAMES[t] || t}: ${n}`).join("; ");
    return el("tr", { "data-placing-council": flow.placing_authority_code },
      el("th", { scope: "row" }, flow.placing_authority_name),
      el("td", {}, flow.own ? "Within the footprint" : "Elsewhere"),
      el("td", { class: "num", "data-figure": "beds" }, String(flow.beds)),
      el("td", {}, types));
  });
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "4", class: "empty" }, "No beds occupied yet.")));
  const signature = JSON.stringify(flows.flows);
  if (state.last.flows !== signature) { body.replaceChildren(...rows); state.last.flows = signature; }
}

function renderHistory(footprintHistory, councilHistories) {
  const summary = $("summary");
  const totals = footprintHistory.points.map((p) => p.totals);
  for (const figure of ["offered", "open_referrals", "stale_vacancies"]) {
    const label = summary.querySelector(`[data-summary="${figure}"] dt`).textContent;
    putSparkline(summary.querySelector(`[data-trend="${figure}"]`), totals.map((t) => t[figure]), label);
  }
  putSparkline(summary.querySelector('[data-trend="share_by_others"]'), totals.map(shareValue), "Share taken by other councils");
  for (const [code, history] of councilHistories) {
    const cell = $("councils").querySelector(`tr[data-council="${code}"] [data-trend="offered"]`);
    if (cell) putSparkline(cell, history.points.map((p) => p.totals.offered), `${history.name}, beds offered`);
  }
}

// --- a council's own referrals and their alerts ------------------------------------------------

function words(value) { return value.replace(/_/g, " "); } // requires_improvement → requires improvement
function needName(need) { return NEED_NAMES[need] || words(need); }

function alertText(alert) {
  const where = `${alert.distance_miles.toFixed(1)} miles${alert.local ? ", local" : ""}`;
  const beds = alert.beds === 1 ? "1 bed" : `${alert.beds} beds`;
  return `${TYPE_NAMES[alert.placement_type] || alert.placement_type} in ${alert.postcode_district} (${where}), `
    + `rated ${words(alert.ofsted_rating)}, ${beds}`;
}

function referralRow(referral, alerts) {
  const fitting = alerts.length
    ? el("ul", { class: "alerts" }, ...alerts.map((a) => el("li", { "data-alert": a.alert_id, "data-vacancy": a.vacancy_id }, alertText(a))))
    : el("span", { class: "empty" }, "None yet");
  return el("tr", { "data-referral": referral.referral_id },
    el("th", { scope: "row" }, referral.reference),
    el("td", { class: "num" }, String(referral.age)),
    el("td", {}, referral.placement_types.map((t) => TYPE_NAMES[t] || t).join(", ")),
    el("td", {}, referral.needs.map(needName).join(", ") || "none"),
    el("td", {}, referral.needed_by),
    el("td", {}, referral.urgency),
    el("td", {}, referral.search_scope),
    el("td", { class: "num", "data-figure": "alerts" }, String(alerts.length)),
    el("td", {}, fitting));
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
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "9", class: "empty" }, "No open referrals.")));
  const signature = JSON.stringify([ordered.map((r) => [r.referral_id, r.version]), alerts.map((a) => a.alert_id)]);
  if (state.last.referrals !== signature) { $("referrals").tBodies[0].replaceChildren(...rows); state.last.referrals = signature; }
  const alerted = ordered.reduce((count, r) => count + (byReferral.get(r.referral_id) || []).length, 0);
  $("referrals-status").textContent = `${referrals.length} open referral${referrals.length === 1 ? "" : "s"}, `
    + `${alerted} open alert${alerted === 1 ? "" : "s"}.`;
  $("referrals-status").classList.remove("error");
}

// Failing here (the authority or alerting service away) leaves the capacity figures alone.
async function pollReferrals(generation) {
  const section = $("council-referrals");
  if (claims().role !== "authority" || !state.links) { section.hidden = true; return; }
  section.hidden = false;
  try {
    const [referrals, alerts] = await Promise.all([
      api(`${state.links.authority_url}/v1/referrals?status=open`),
      api(`${state.links.alerting_url}/v1/alerts?status=open&limit=1000`),
    ]);
    if (generation === state.generation) renderReferrals(referrals, alerts);
  } catch (error) {
    if (generation !== state.generation) return;
    $("referrals-status").textContent = error instanceof ApiError
      ? `Could not read the referrals or their alerts: ${error.message} (HTTP ${error.status}).`
      : "Could not reach the authority or alerting service; trying again.";
    $("referrals-status").classList.add("error");
  }
}

async function loadLinks() {
  try {
    const response = await fetch("/dashboard/links.json", { cache: "no-store" });
    state.links = response.ok ? await response.json() : null;
  } catch (_) {
    state.links = null;
  }
}

// --- polling ----------------------------------------------------------------------------------

async function poll() {
  clearTimeout(state.timer);
  const generation = state.generation;
  const footprint = state.footprint;
  if (!footprint || !token()) return;
  const councils = councilsOf(footprint);
  const id = encodeURIComponent(footprint.footprint_id);
  const withHistory = state.polls % HISTORY_EVERY === 0;
  const referrals = pollReferrals(generation);
  try {
    const [capacity, flows, ...perCouncil] = await Promise.all([
      api(`/v1/capacity/${id}`),
      api(`/v1/capacity/${id}/flows`),
      ...councils.map((c) => api(`/v1/capacity/${encodeURIComponent(c.authority_code)}`)),
    ]);
    let histories = null;
    if (withHistory) {
      histories = await Promise.all([
        api(`/v1/capacity/${id}/history`),
        ...councils.map((c) => api(`/v1/capacity/${encodeURIComponent(c.authority_code)}/history`)),
      ]);
    }
    await referrals;
    if (generation !== state.generation) return; // the footprint changed meanwhile
    renderSummary(capacity);
    const changes = councils.map((c, i) => renderCouncil(c.authority_code, c.name, perCouncil[i])).filter(Boolean);
    renderFlows(flows);
    if (histories) renderHistory(histories[0], councils.map((c, i) => [c.authority_code, histories[i + 1]]));
    state.polls += 1;
    const time = new Date().toLocaleTimeString("en-GB");
    say(changes.length && state.polls > 1 ? `Updated at ${time}. Changed: ${changes.join("; ")}.` : `Updated at ${time}.`);
    document.body.dataset.polls = String(state.polls);
  } catch (error) {
    if (generation !== state.generation) return;
    if (error instanceof ApiError && error.status === 401) {
      say(`The token was refused (${error.message}). Enter another token.`, true);
      return;
    }
    say(error instanceof ApiError ? `Could not read capacity: ${error.message} (HTTP ${error.status}). Retrying…`
      : "Could not reach the ledger. Retrying…", true);
  }
  state.timer = setTimeout(poll, POLL_MS);
}

async function start() {
  if (!token()) { say("Enter a token to see capacity."); return; }
  say("Loading footprints…");
  try {
    await loadLinks();
    await loadFootprints();
  } catch (error) {
    const message = error instanceof ApiError ? `${error.message} (HTTP ${error.status})` : "the ledger did not answer";
    say(`Could not load footprints: ${message}.`, true);
    $("main").hidden = true;
    $("picker").hidden = true;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    $("token").placeholder = "token in use";
    start();
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(FOOTPRINT_KEY);
    clearTimeout(state.timer);
    state.generation += 1;
    $("main").hidden = true;
    $("picker").hidden = true;
    $("token").placeholder = "";
    say("Token forgotten. Enter a token to see capacity.");
  });
  $("footprint").addEventListener("change", (event) => {
    const chosen = state.footprints.find((f) => f.footprint_id === event.target.value);
    if (chosen) choose(chosen);
  });
  if (token()) $("token").placeholder = "token in use";
  start();
});
