// The provider workspace: a provider's homes and their beds, its vacancies (stale ones stand
// out), the councils' requests for its beds (offer, decline, start the placement) and the
// children living in its homes. Live by the alerting service's stream of notices to the provider
// (`placement.requested`, `request.withdrawn`, `offer.accepted`).
import {
  $, el, api, ApiError, stream, links, startIdentity, howToStart, onSubmit, say, when, words, startGovuk, readUntil,
} from "/static/common/nearhome.js";
import { NEEDS, PLACEMENT_TYPES, RATINGS, SEXES, without } from "/static/common/words.js";

// A vacancy not confirmed for this long stands out as stale (docs/domain.md: 72 hours).
const STALE_AFTER_MS = 72 * 3600 * 1000;
const DAY_MS = 24 * 3600 * 1000;
// How often the page reads everything again without being told (offers expire, vacancies go
// stale): unchanged rows are left as they are, so nobody's focus or half-filled form is lost.
const QUIET_REFRESH_MS = 60 * 1000;
// The hold choices for an offer (the API takes `hold_hours`, 1 to 672), 24 hours by default.
const HOLD_HOURS = [4, 12, 24, 48, 72, 168, 336];
const DEFAULT_HOLD_HOURS = 24;

const LABELS = {
  placement_type: PLACEMENT_TYPES,
  rating: RATINGS,
  sex: SEXES,
  // Homes say which needs they meet; an emergency is not one of them.
  need: without(NEEDS, "emergency"),
  decline: {
    needs_cannot_be_met: "Needs cannot be met",
    matching_risk: "Matching risk with the children living there",
    staffing: "Staffing",
    location_risk: "Location risk",
    bed_no_longer_available: "Bed no longer available",
    other: "Other",
  },
  withdraw: {
    filled: "Filled through NearHome",
    filled_elsewhere: "Filled elsewhere",
    no_longer_available: "No longer available",
    other: "Other",
  },
  end: {
    planned_move: "Planned move",
    returned_home: "Returned home",
    adoption: "Adoption",
    special_guardianship: "Special guardianship",
    turned_18: "Turned 18",
    unplanned_ending: "Unplanned ending",
    other: "Other",
  },
  urgency: { emergency: "Emergency", planned: "Planned" },
  request_withdrawal: {
    withdrawn_by_council: "by the council",
    referral_placed: "the child was placed elsewhere",
    referral_closed: "the referral was closed",
  },
  offer_withdrawal: {
    request_withdrawn: "the council withdrew the request",
    vacancy_withdrawn: "the vacancy was withdrawn",
    vacancy_expired: "the vacancy expired",
    setting_closed: "the home closed",
    withdrawn_by_provider: "withdrawn by you",
  },
};

const label = (kind, value) => (value == null ? "" : (LABELS[kind] && LABELS[kind][value]) || words(value));
const listOf = (kind, values) => (values && values.length ? values.map((v) => label(kind, v)).join(", ") : "None");

// --- state -----------------------------------------------------------------------------------------

const state = {
  base: "", // this origin: the provider API
  alerting: null,
  councils: {},
  settings: [],
  vacancies: [],
  requests: [],
  placements: [],
  stopStream: null,
  timer: null,
  rendered: false, // after the first render, changed rows are marked as new
};

const status = () => $("status");
const councilName = (code) => (state.councils[code] ? `${state.councils[code]} (${code})` : code);
const councilShort = (code) => state.councils[code] || code;
const settingOf = (id) => state.settings.find((s) => s.setting_id === id);
const homeName = (id) => {
  const setting = settingOf(id);
  if (!setting) return "A home";
  return setting.name || `${label("placement_type", setting.placement_type)} in ${setting.postcode_district}`;
};

// --- dates -----------------------------------------------------------------------------------------

function today() {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

// A calendar date ("2026-11-27") as "27 Nov 2026", with no time-zone shift.
function day(iso) {
  if (!iso) return "";
  const [y, m, d] = iso.split("-").map(Number);
  return new Date(y, m - 1, d).toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric" });
}

function holdLabel(hours) {
  const until = new Date(Date.now() + hours * 3600 * 1000);
  const at = until.toLocaleString("en-GB", { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  const span = hours % 24 === 0 ? `${hours / 24} day${hours === 24 ? "" : "s"}` : `${hours} hours`;
  return `${at} (${span})`;
}

function staleness(vacancy) {
  const age = Date.now() - Date.parse(vacancy.last_confirmed_at);
  return { stale: age > STALE_AFTER_MS, days: Math.floor(age / DAY_MS) };
}

// --- building blocks -------------------------------------------------------------------------------

let uid = 0;
const nextId = (prefix) => `${prefix}-${++uid}`;

function options(kind, { blank } = {}) {
  const list = Object.entries(LABELS[kind]).map(([value, text]) => el("option", { value }, text));
  return blank ? [el("option", { value: "" }, blank), ...list] : list;
}

function selectGroup(name, text, kind, { blank, prefix = name } = {}) {
  const id = nextId(prefix);
  return el("div", { class: "govuk-form-group" },
    el("label", { class: "govuk-label", for: id }, text),
    el("select", { class: "govuk-select", id, name }, options(kind, { blank })));
}

function dateGroup(name, text, value, prefix = name) {
  const id = nextId(prefix);
  return el("div", { class: "govuk-form-group" },
    el("label", { class: "govuk-label", for: id }, text),
    el("input", { class: "govuk-input govuk-input--width-10", id, name, type: "date", value }));
}

const num = (value) => el("td", { class: "govuk-table__cell nearhome-num" }, String(value));
function cell(children, extra = "") {
  return el("td", { class: `govuk-table__cell ${extra}`.trim() }, children);
}

function tag(text, colour) {
  return el("strong", { class: `govuk-tag${colour ? ` govuk-tag--${colour}` : ""}` }, text);
}

function summary(rows) {
  return el("dl", { class: "govuk-summary-list govuk-summary-list--no-border provider-summary" },
    rows.filter(Boolean).map(([key, value, id]) =>
      el("div", { class: "govuk-summary-list__row" },
        el("dt", { class: "govuk-summary-list__key" }, key),
        el("dd", { class: "govuk-summary-list__value", id }, value))));
}

// A whole number field must be digits only, else it is not sent as one (NaN would be null).
function checkNumbers(form) {
  const problems = [];
  for (const field of form.querySelectorAll("[data-type=int]")) {
    const value = field.value.trim();
    if (value !== "" && !/^\d+$/.test(value)) problems.push({ field: field.name, message: "Enter a whole number, like 2" });
  }
  if (problems.length) throw new ApiError(422, problems.map((p) => p.message).join("; "), problems);
}

function act(form, action) {
  onSubmit(form, async (values) => {
    checkNumbers(form);
    await action(values);
  });
}

// Keeps `container`'s children in the order of `items`, each keyed by `key`: an item whose
// signature has not changed keeps its element (and so the focus in it and any half-filled form);
// a new or changed one is rendered again and, after the first render, marked as new.
function reconcile(container, items, key, signature, render) {
  const existing = new Map();
  for (const child of container.children) existing.set(child.dataset.key, child);
  const changed = [];
  let position = 0;
  for (const item of items) {
    const id = key(item);
    const sig = signature(item);
    let node = existing.get(id);
    if (!node || node.dataset.sig !== sig) {
      const fresh = render(item);
      fresh.dataset.key = id;
      fresh.dataset.sig = sig;
      if (node) node.replaceWith(fresh);
      if (state.rendered) {
        fresh.classList.add("nearhome-new");
        changed.push(fresh);
      }
      node = fresh;
    }
    existing.delete(id);
    if (container.children[position] !== node) container.insertBefore(node, container.children[position] || null);
    position += 1;
  }
  for (const gone of existing.values()) gone.remove();
  return changed;
}

// After an action redraws the part it was in, the keyboard's place is kept: focus goes to what
// took the old element's place (or the section's heading).
function focusAfter(selector, fallback) {
  const target = document.querySelector(selector) || $(fallback);
  if (target) target.focus();
}

// --- your homes ------------------------------------------------------------------------------------

function renderHome(setting) {
  const details = [
    setting.postcode_district,
    label("rating", setting.ofsted_rating),
    setting.ofsted_urn ? `Ofsted URN ${setting.ofsted_urn}` : null,
    `ages ${setting.age_min} to ${setting.age_max}`,
  ].filter(Boolean).join(" · ");
  const closed = setting.status === "closed";
  return el("tr", { class: "govuk-table__row", "data-setting-id": setting.setting_id },
    el("th", { scope: "row", class: "govuk-table__header" },
      el("span", {}, homeName(setting.setting_id)),
      closed ? [" ", tag("Closed", "grey")] : null,
      el("span", { class: "govuk-body-s provider-secondary" }, details)),
    cell(label("placement_type", setting.placement_type)),
    num(setting.registered_places),
    num(setting.beds_occupied),
    num(setting.beds_held),
    num(setting.beds_vacant));
}

function renderHomes() {
  const list = [...state.settings].sort((a, b) => (a.status === b.status ? 0 : a.status === "open" ? -1 : 1));
  reconcile($("homes"), list, (s) => s.setting_id, JSON.stringify, renderHome);
  $("homes-table").parentElement.hidden = list.length === 0;
  $("homes-empty").hidden = list.length > 0;

  // The vacancy form's homes: the open ones, keeping the choice made.
  const select = $("vacancy-setting");
  const chosen = select.value;
  const open = state.settings.filter((s) => s.status === "open");
  const choices = JSON.stringify(open.map((s) => [s.setting_id, homeName(s.setting_id)]));
  if (select.dataset.choices === choices) return; // untouched while someone may be choosing
  select.dataset.choices = choices;
  select.replaceChildren(
    el("option", { value: "" }, open.length ? "Choose a home" : "Register a home first"),
    ...open.map((s) => el("option", { value: s.setting_id }, homeName(s.setting_id))));
  if (open.some((s) => s.setting_id === chosen)) select.value = chosen;
  else if (open.length === 1) select.value = open[0].setting_id;
}

// --- vacancies -------------------------------------------------------------------------------------

function renderVacancy(vacancy) {
  const { stale, days } = staleness(vacancy);
  const home = homeName(vacancy.setting_id);
  const confirm = el("form", { class: "provider-inline-form", novalidate: true },
    el("button", {
      type: "submit",
      class: stale ? "govuk-button govuk-button--warning" : "govuk-button govuk-button--secondary",
      "data-module": "govuk-button",
    }, stale ? "Still available" : ["Confirm", el("span", { class: "govuk-visually-hidden" }, ` the vacancy at ${home}`)]));
  act(confirm, async () => {
    await api(state.base, `/v1/vacancies/${vacancy.vacancy_id}/confirm`, { method: "POST" });
    say(status(), `Confirmed the vacancy at ${home} as still available.`);
    await refresh(["vacancies"]);
    focusAfter(`[data-vacancy-id="${vacancy.vacancy_id}"] button`, "vacancies-heading");
  });
  const withdraw = el("form", { class: "provider-inline-form", novalidate: true },
    selectGroup("reason", "Reason for withdrawing", "withdraw", { blank: "Choose a reason", prefix: "withdraw-reason" }),
    el("button", { type: "submit", class: "govuk-button govuk-button--secondary", "data-module": "govuk-button" }, "Withdraw"));
  act(withdraw, async (values) => {
    await api(state.base, `/v1/vacancies/${vacancy.vacancy_id}/withdraw`, { method: "POST", body: values });
    say(status(), `Withdrew the vacancy at ${home}.`);
    await refresh(["vacancies", "settings"]);
    focusAfter(`[data-vacancy-id="${vacancy.vacancy_id}"] button`, "vacancies-heading");
  });
  const narrowed = [
    vacancy.age_min != null || vacancy.age_max != null ? `ages ${vacancy.age_min ?? "…"} to ${vacancy.age_max ?? "…"}` : null,
    vacancy.sexes_accepted ? listOf("sex", vacancy.sexes_accepted).toLowerCase() : null,
    vacancy.needs_met ? `needs: ${listOf("need", vacancy.needs_met).toLowerCase()}` : null,
  ].filter(Boolean).join(" · ");
  return el("tr", {
    class: `govuk-table__row${stale ? " nearhome-stale" : ""}`,
    "data-vacancy-id": vacancy.vacancy_id,
    "data-stale": String(stale),
  },
    el("th", { scope: "row", class: "govuk-table__header" },
      el("span", {}, home),
      narrowed ? el("span", { class: "govuk-body-s provider-secondary" }, `Only for ${narrowed}`) : null),
    num(vacancy.beds),
    num(vacancy.beds_held),
    cell(day(vacancy.available_from)),
    cell([
      el("span", {}, when(vacancy.last_confirmed_at)),
      stale ? el("span", { class: "provider-block" }, tag(`Not confirmed for ${days} days`, "orange")) : null,
      el("span", { class: "govuk-body-s provider-secondary" }, `Expires ${when(vacancy.expires_at)} unless confirmed`),
    ]),
    cell(el("div", { class: "nearhome-actions provider-row-actions" }, confirm, withdraw)));
}

function renderVacancies() {
  // Stale ones first: they need doing.
  const open = state.vacancies.filter((v) => v.status === "open")
    .sort((a, b) => Number(staleness(b).stale) - Number(staleness(a).stale));
  // The signature holds the staleness, so a vacancy that went stale is drawn again.
  reconcile($("vacancies"), open, (v) => v.vacancy_id,
    (v) => JSON.stringify([v, staleness(v).stale, staleness(v).days, homeName(v.setting_id)]), renderVacancy);
  $("vacancies-table").parentElement.hidden = open.length === 0;
  $("vacancies-empty").hidden = open.length > 0;
  const stale = open.filter((v) => staleness(v).stale).length;
  $("vacancies-count").textContent = open.length
    ? `(${open.length} open${stale ? `, ${stale} not confirmed for 3 days or more` : ""})` : "";
}

// --- requests --------------------------------------------------------------------------------------

function stateText(request) {
  switch (request.status) {
    case "requested": return ["New request", "blue"];
    case "offered": return [`Offered until ${when(request.offer_expires_at)}`, "light-blue"];
    case "accepted": return ["Offer accepted", "green"];
    case "placed": return ["Placed", "grey"];
    case "declined": return [`Declined: ${label("decline", request.decline_reason)}`, "grey"];
    case "offer_expired": return ["Offer expired", "grey"];
    case "offer_withdrawn": return [`Offer withdrawn: ${label("offer_withdrawal", request.offer_withdrawal_reason)}`, "grey"];
    case "withdrawn": return [`Withdrawn: ${label("request_withdrawal", request.withdrawal_reason)}`, "grey"];
    default: return [words(request.status), "grey"];
  }
}

const ORDER = { requested: 0, accepted: 1, offered: 2 };

function renderRequest(request) {
  const home = homeName(request.setting_id);
  const council = councilShort(request.authority_code);
  const setting = settingOf(request.setting_id);
  const headingId = nextId("request-heading");
  const stateId = nextId("request-state");
  const requestedId = nextId("request-time");
  const [text, colour] = stateText(request);
  // Named by its heading, state and time: two requests for one home from one council differ.
  const card = el("section", {
    class: "nearhome-card provider-request",
    "data-request-id": request.request_id,
    "data-state": request.status,
    "aria-labelledby": `${headingId} ${stateId} ${requestedId}`,
  },
    el("h3", { class: "govuk-heading-m", id: headingId, tabindex: "-1" }, `${home}: request from ${council}`),
    el("p", { class: "govuk-body provider-state", id: stateId }, tag(text, colour)),
    summary([
      ["Age", String(request.age)],
      ["Sex", label("sex", request.sex)],
      request.sibling_group_size > 1 ? ["Sibling group", `${request.sibling_group_size} children`] : null,
      ["Needs", listOf("need", request.needs)],
      ["Placement type", setting ? label("placement_type", setting.placement_type) : "—"],
      ["Needed by", day(request.needed_by)],
      ["Urgency", label("urgency", request.urgency)],
      ["Lives in", request.home_postcode_district],
      ["Council", councilName(request.authority_code)],
      ["Requested", when(request.requested_at), requestedId],
      request.offered_beds ? ["Beds offered", String(request.offered_beds)] : null,
      request.weekly_fee_gbp != null ? ["Weekly fee", `£${Number(request.weekly_fee_gbp).toLocaleString("en-GB")}`] : null,
    ]));

  if (request.status === "requested") card.append(answerForms(request, home, council));
  if (request.status === "accepted") card.append(startForm(request, home, council));
  return card;
}

function answerForms(request, home, council) {
  const holdId = nextId("hold-hours");
  const feeId = nextId("weekly-fee");
  const offer = el("form", { class: "provider-answer", novalidate: true },
    el("p", { class: "govuk-body govuk-!-font-weight-bold" }, "Offer the bed"),
    el("div", { class: "govuk-form-group" },
      el("label", { class: "govuk-label", for: holdId }, "Hold the bed until"),
      el("select", { class: "govuk-select", id: holdId, name: "hold_hours", "data-type": "int", "data-hold": true },
        HOLD_HOURS.map((hours) => el("option", { value: hours, selected: hours === DEFAULT_HOLD_HOURS }, holdLabel(hours))))),
    el("div", { class: "govuk-form-group" },
      el("label", { class: "govuk-label", for: feeId }, "Weekly fee (optional)"),
      el("div", { class: "govuk-input__wrapper" },
        el("div", { class: "govuk-input__prefix", "aria-hidden": "true" }, "£"),
        el("input", { class: "govuk-input govuk-input--width-5", id: feeId, name: "weekly_fee_gbp", type: "text", inputmode: "decimal", spellcheck: "false" }))),
    el("button", { type: "submit", class: "govuk-button", "data-module": "govuk-button" }, "Offer"));
  onSubmit(offer, async (values) => {
    const body = { hold_hours: values.hold_hours };
    if (values.weekly_fee_gbp !== undefined) {
      const fee = Number(values.weekly_fee_gbp.replace(/[£,\s]/g, ""));
      if (!Number.isFinite(fee)) throw new ApiError(422, "fee", [{ field: "weekly_fee_gbp", message: "Enter the weekly fee in pounds, like 4500" }]);
      body.weekly_fee_gbp = fee;
    }
    const answered = await api(state.base, `/v1/requests/${request.request_id}/offer`, { method: "POST", body });
    say(status(), `Offered ${home} to ${council}, held until ${when(answered.offer_expires_at)}.`);
    await refresh(["requests", "settings", "vacancies"]);
    focusAfter(`[data-request-id="${request.request_id}"] h3`, "requests-heading");
  });

  const decline = el("form", { class: "provider-answer", novalidate: true },
    el("p", { class: "govuk-body govuk-!-font-weight-bold" }, "Or decline"),
    selectGroup("reason", "Reason for declining", "decline", { blank: "Choose a reason", prefix: "decline-reason" }),
    el("button", { type: "submit", class: "govuk-button govuk-button--secondary", "data-module": "govuk-button" }, "Decline"));
  onSubmit(decline, async (values) => {
    await api(state.base, `/v1/requests/${request.request_id}/decline`, { method: "POST", body: values });
    say(status(), `Declined ${council}’s request for ${home}.`);
    await refresh(["requests"]);
    focusAfter(`[data-request-id="${request.request_id}"] h3`, "requests-heading");
  });
  return el("div", { class: "provider-answers" }, offer, decline);
}

function startForm(request, home, council) {
  const form = el("form", { class: "provider-answer provider-start", novalidate: true },
    el("p", { class: "govuk-body" }, `${council} accepted your offer: the bed stays held for them. Start the placement when the child moves in.`),
    dateGroup("start_date", "Start date", today(), "start-date"),
    el("button", { type: "submit", class: "govuk-button", "data-module": "govuk-button" }, "Start placement"));
  onSubmit(form, async (values) => {
    await api(state.base, "/v1/placements", { method: "POST", body: { request_id: request.request_id, ...values } });
    say(status(), `Started the placement at ${home} for ${council}.`);
    await refresh(["requests", "settings", "vacancies", "placements"]);
    focusAfter(`[data-request-id="${request.request_id}"] h3`, "requests-heading");
  });
  return form;
}

function renderRequests() {
  const list = [...state.requests].sort((a, b) =>
    (ORDER[a.status] ?? 9) - (ORDER[b.status] ?? 9) || b.requested_at.localeCompare(a.requested_at));
  // The home's name is part of the card, so a renamed home draws it again.
  const changed = reconcile($("requests"), list, (r) => r.request_id,
    (r) => JSON.stringify([r, homeName(r.setting_id), settingOf(r.setting_id)?.placement_type]), renderRequest);
  $("requests-empty").hidden = list.length > 0;
  const waiting = list.filter((r) => r.status === "requested").length;
  const accepted = list.filter((r) => r.status === "accepted").length;
  $("requests-count").textContent = [waiting ? `${waiting} new` : "", accepted ? `${accepted} accepted` : ""]
    .filter(Boolean).join(", ").replace(/^(.+)$/, "($1)");
  return changed;
}

// --- placements ------------------------------------------------------------------------------------

function renderPlacement(placement) {
  const home = homeName(placement.setting_id);
  const form = el("form", { class: "provider-inline-form", novalidate: true },
    dateGroup("end_date", "End date", today(), "end-date"),
    selectGroup("reason", "Reason for ending", "end", { blank: "Choose a reason", prefix: "end-reason" }),
    el("button", { type: "submit", class: "govuk-button govuk-button--secondary", "data-module": "govuk-button" }, "End placement"));
  act(form, async (values) => {
    await api(state.base, `/v1/placements/${placement.placement_id}/end`, { method: "POST", body: values });
    say(status(), `Ended the placement at ${home}.`);
    await refresh(["placements", "settings", "vacancies"]);
    focusAfter(`[data-placement-id="${placement.placement_id}"] button`, "placements-heading");
  });
  return el("tr", { class: "govuk-table__row", "data-placement-id": placement.placement_id },
    el("th", { scope: "row", class: "govuk-table__header provider-id" }, placement.placement_id.slice(0, 8)),
    cell(home),
    cell(councilName(placement.placing_authority_code)),
    num(placement.beds),
    cell(day(placement.start_date)),
    cell(el("div", { class: "nearhome-actions provider-row-actions" }, form)));
}

function renderPlacements() {
  const active = state.placements.filter((p) => p.status === "active");
  reconcile($("placements"), active, (p) => p.placement_id,
    (p) => JSON.stringify([p, homeName(p.setting_id)]), renderPlacement);
  $("placements-table").parentElement.hidden = active.length === 0;
  $("placements-empty").hidden = active.length > 0;
}

// --- loading ---------------------------------------------------------------------------------------

const READS = {
  settings: async () => { state.settings = await api(state.base, "/v1/settings"); },
  vacancies: async () => { state.vacancies = await api(state.base, "/v1/vacancies?status=open"); },
  requests: async () => { state.requests = await api(state.base, "/v1/requests"); },
  placements: async () => { state.placements = await api(state.base, "/v1/placements?status=active"); },
};

// Reads the named parts again (all by default) and draws what changed; returns the request cards
// that changed. Reads run one after another, so an older answer never overwrites a newer one.
let queue = Promise.resolve();
function refresh(parts = Object.keys(READS)) {
  const run = queue.then(() => reread(parts));
  queue = run.catch(() => {});
  return run;
}

async function reread(parts) {
  await Promise.all(parts.map((part) => READS[part]()));
  renderHomes();
  renderVacancies();
  const changed = renderRequests();
  renderPlacements();
  state.rendered = true;
  return changed;
}

function setLive(text) {
  $("live").textContent = `Live updates: ${text}`;
}

async function onNotice(event) {
  const data = event.data || {};
  const council = councilShort(data.authority_code);
  const parts = {
    "placement.requested": ["requests"],
    "request.withdrawn": ["requests", "settings", "vacancies"],
    "offer.accepted": ["requests"],
  }[event.type];
  if (!parts) return;
  // The notice and this service's inbox both come from the referral's events, each at its own
  // pace: read again (a few times, waiting longer each time) until the request is as told.
  const expected = { "placement.requested": null, "request.withdrawn": "withdrawn", "offer.accepted": "accepted" }[event.type];
  const arrived = () => state.requests.some((r) => r.request_id === data.request_id && (!expected || r.status === expected));
  try {
    await readUntil(() => refresh(parts), arrived);
  } catch (error) {
    say(status(), `Could not read your requests: ${error.message}`, true);
    return;
  }
  const home = homeName(data.setting_id);
  const message = {
    "placement.requested": `New request from ${council} for ${home}.`,
    "request.withdrawn": `${council} withdrew its request for ${home}.`,
    "offer.accepted": `${council} accepted your offer of ${home}: start the placement when the child moves in.`,
  }[event.type];
  say(status(), message);
  const card = document.querySelector(`[data-request-id="${CSS.escape(data.request_id || "")}"]`);
  if (card) {
    card.classList.remove("nearhome-new");
    void card.offsetWidth; // restart the highlight
    card.classList.add("nearhome-new");
  }
}

function stop() {
  if (state.stopStream) state.stopStream();
  state.stopStream = null;
  clearInterval(state.timer);
  state.timer = null;
}

// `me`: who the token in use is, as the service says (`/page/me`), or null without one.
async function start(me) {
  stop();
  state.rendered = false;
  for (const id of ["homes", "vacancies", "requests", "placements"]) $(id).replaceChildren();
  if (!me) {
    $("workspace").hidden = true;
    $("provider-caption").textContent = howToStart("No provider token in use", "Not signed in as a provider");
    say(status(), howToStart("Enter a provider token to see your homes, vacancies and requests.",
      "Sign in as a provider to see your homes, vacancies and requests."));
    return;
  }
  if (me.refused) {
    $("workspace").hidden = true;
    $("provider-caption").textContent = howToStart("No provider token in use", "Not signed in as a provider");
    say(status(), `This is not a NearHome token this service accepts (${me.refused}): the provider workspace needs a provider token.`, true);
    return;
  }
  if (me.role !== "provider" || !me.provider_id) {
    $("workspace").hidden = true;
    $("provider-caption").textContent = howToStart("No provider token in use", "Not signed in as a provider");
    say(status(), `This is a token for the ${me.role} role: the provider workspace needs a provider token.`, true);
    return;
  }
  $("provider-caption").textContent = `Provider id: ${me.provider_id}`;
  say(status(), "Reading your homes, vacancies and requests…");
  try {
    await refresh();
  } catch (error) {
    $("workspace").hidden = true;
    say(status(), error instanceof ApiError && error.status === 401
      ? "The token was refused: it may have expired. Enter a new one."
      : `Could not read your workspace: ${error.message}`, true);
    return;
  }
  $("workspace").hidden = false;
  const waiting = state.requests.filter((r) => r.status === "requested").length;
  say(status(), `${state.settings.length} home${state.settings.length === 1 ? "" : "s"}, ` +
    `${state.vacancies.length} open vacanc${state.vacancies.length === 1 ? "y" : "ies"}, ` +
    `${waiting} new request${waiting === 1 ? "" : "s"}.`);

  let opened = false;
  state.stopStream = stream(state.alerting, "/v1/alerts/stream", (event) => { onNotice(event); }, (streamState) => {
    if (streamState === "open") {
      setLive("on");
      // Anything missed while the stream was down.
      if (opened) refresh().catch(() => {});
      opened = true;
    } else if (streamState === "reconnecting") {
      setLive("reconnecting…");
    } else if (streamState === "refused") {
      setLive("refused (the token may have expired)");
    }
  });
  state.timer = setInterval(() => {
    refresh().catch((error) => {
      if (error instanceof ApiError && error.status === 401) say(status(), "The token was refused: it may have expired. Enter a new one.", true);
    });
    for (const option of document.querySelectorAll("select[data-hold] option")) {
      option.textContent = holdLabel(Number(option.value));
    }
  }, QUIET_REFRESH_MS);
}

// --- the static forms ------------------------------------------------------------------------------

function fillOptions() {
  for (const container of document.querySelectorAll("[data-options]")) {
    const kind = container.dataset.options;
    if (container.tagName === "SELECT") {
      const blank = { placement_type: "Choose a type", rating: "Choose a rating" }[kind];
      container.replaceChildren(...options(kind, { blank }));
      continue;
    }
    const { name, prefix } = container.dataset;
    container.replaceChildren(...Object.entries(LABELS[kind]).map(([value, text], index) => {
      const id = `${prefix}-${index}`;
      return el("div", { class: "govuk-checkboxes__item" },
        el("input", { class: "govuk-checkboxes__input", id, name, type: "checkbox", value, "data-type": "list" }),
        el("label", { class: "govuk-label govuk-checkboxes__label", for: id }, text));
    }));
  }
}

function staticForms() {
  $("vacancy-available-from").value = today();
  const vacancyForm = $("vacancy-form");
  act(vacancyForm, async (values) => {
    // Empty narrowing terms mean "as the home".
    for (const name of ["sexes_accepted", "needs_met"]) if (!values[name]?.length) delete values[name];
    const posted = await api(state.base, "/v1/vacancies", { method: "POST", body: values });
    say(status(), `Posted ${posted.beds} bed${posted.beds === 1 ? "" : "s"} at ${homeName(posted.setting_id)}.`);
    vacancyForm.reset();
    $("vacancy-available-from").value = today();
    await refresh(["vacancies", "settings"]);
    document.querySelector(`[data-vacancy-id="${posted.vacancy_id}"]`)?.classList.add("nearhome-new");
  });

  const settingForm = $("setting-form");
  act(settingForm, async (values) => {
    if (values.postcode_district) values.postcode_district = values.postcode_district.toUpperCase();
    if (values.ofsted_urn) values.ofsted_urn = values.ofsted_urn.toUpperCase();
    const setting = await api(state.base, "/v1/settings", { method: "POST", body: values });
    settingForm.reset();
    await refresh(["settings"]);
    say(status(), `Registered ${homeName(setting.setting_id)} (${setting.registered_places} places). You can now post a vacancy for it.`);
  });
}

async function main() {
  fillOptions();
  startGovuk();
  staticForms();
  state.base = window.location.origin;
  try {
    const [services, councils] = await Promise.all([
      links(),
      fetch("/static/councils.json").then((r) => r.json()).catch(() => ({})),
    ]);
    state.alerting = services.alerting;
    state.councils = councils;
  } catch (error) {
    say(status(), `Could not read the page's settings: ${error.message}`, true);
    return;
  }
  startIdentity((me) => { start(me); });
}

main();
