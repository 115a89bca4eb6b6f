// The home finder's workspace: a council's open referrals, the fitting beds it was alerted to
// (best first), its placement requests and the providers' answers, kept live by the alerting
// service's event stream; and a form to open a referral.
import {
  $, el, api, howToStart, links, onSubmit, readUntil, say, startGovuk, startIdentity, stream, when,
  words,
} from "/static/common/nearhome.js";
import { NEEDS as NEED_WORDS, PLACEMENT_TYPES, RATINGS, without } from "/static/common/words.js";

// The referral form offers every need but a sibling group (the page adds it from the group's size).
const NEEDS = without(NEED_WORDS, "sibling_group");

const RETRACTIONS = {
  vacancy_withdrawn: "the vacancy was withdrawn",
  vacancy_expired: "the vacancy expired",
  vacancy_taken: "the bed was taken",
  setting_closed: "the home closed",
  rating_below_minimum: "its rating is now below your lowest",
  no_longer_fits: "it no longer fits the referral",
  referral_closed: "the referral is closed",
  held: "it is held by an offer to a council",
};

const DECLINE_REASONS = {
  needs_cannot_be_met: "the home cannot meet the child’s needs",
  matching_risk: "a risk with the children already living there",
  staffing: "staffing",
  location_risk: "a risk in the home’s location",
  bed_no_longer_available: "the bed is no longer available",
  other: "another reason",
};

const OFFER_WITHDRAWAL_REASONS = {
  request_withdrawn: "the request was withdrawn",
  vacancy_withdrawn: "the vacancy was withdrawn",
  vacancy_expired: "the vacancy expired",
  setting_closed: "the home closed",
  withdrawn_by_provider: "the provider withdrew it",
};

// A vacancy with a request in one of these states is not offered to be requested again.
const REQUESTED_STATES = new Set(["requested", "offered", "accepted", "placed", "declined"]);

const REFRESH_LIST_MS = 10_000;

const status = $("status");
const live = $("live");
const workspace = $("workspace");
const list = $("referrals");
const empty = $("referrals-empty");

let alerting = null; // the alerting service's base URL
let stopStream = () => {};
let refreshTimer = null;
let session = 0; // bumped whenever the token changes: late answers of an old one are dropped

// referral_id -> { referral, card, parts, alerts, requests, shown }
const cards = new Map();

// --- words -----------------------------------------------------------------------------------

function sentence(text) {
  const value = String(text);
  return value.charAt(0).toUpperCase() + value.slice(1);
}

function listOf(values, names) {
  if (!values || !values.length) return "None";
  return values.map((value) => names[value] || sentence(words(value))).join(", ");
}

function homeName(profile) {
  return (profile && profile.name) || "Unnamed home";
}

function miles(distance) {
  return `${Number(distance).toFixed(1)} miles`;
}

function dateOnly(iso) {
  if (!iso) return "";
  return new Date(`${iso}T12:00:00`).toLocaleDateString("en-GB", {
    day: "numeric", month: "long", year: "numeric",
  });
}

function stateText(request) {
  switch (request.status) {
    case "requested": return "Waiting for an answer";
    case "offered": return `Offered until ${when(request.offer_expires_at)}`;
    case "declined":
      return `Declined: ${DECLINE_REASONS[request.decline_reason] || words(request.decline_reason || "no reason given")}`;
    case "expired": return "Offer expired";
    case "accepted": return "Accepted";
    case "placed": return "Placed";
    case "withdrawn": return "Withdrawn";
    case "offer_withdrawn":
      return `Offer withdrawn: ${OFFER_WITHDRAWAL_REASONS[request.offer_withdrawal_reason] || words(request.offer_withdrawal_reason || "no reason given")}`;
    default: return sentence(words(request.status));
  }
}

function stateTag(request) {
  const colour = {
    requested: "govuk-tag--blue",
    offered: "govuk-tag--green",
    accepted: "govuk-tag--turquoise",
    placed: "govuk-tag--turquoise",
    declined: "govuk-tag--red",
    expired: "govuk-tag--grey",
    withdrawn: "govuk-tag--grey",
    offer_withdrawn: "govuk-tag--orange",
  }[request.status] || "govuk-tag--grey";
  return el("strong", { class: `govuk-tag ${colour} nearhome-state`, text: stateText(request) });
}

// --- the form's options ------------------------------------------------------------------------

function checkboxes(container, name, options) {
  Object.entries(options).forEach(([value, label], index) => {
    const id = index === 0 ? name : `${name}-${value}`;
    container.append(el("div", { class: "govuk-checkboxes__item" },
      el("input", {
        class: "govuk-checkboxes__input", id, name, type: "checkbox", value, "data-type": "list",
      }),
      el("label", { class: "govuk-label govuk-checkboxes__label", for: id, text: label })));
  });
}

checkboxes($("placement-types-options"), "placement_types", PLACEMENT_TYPES);
checkboxes($("needs-options"), "needs", NEEDS);
$("needs-options").classList.add("nearhome-columns");
$("placement-types-options").classList.add("nearhome-columns");

// --- tables --------------------------------------------------------------------------------------

// A table wider than the screen scrolls sideways in its own region, which can then take the focus
// (so it can be scrolled with the keyboard); one that fits is not a stop on the way.
function fitScroller(wrapper) {
  const scrolls = wrapper.scrollWidth > wrapper.clientWidth + 1;
  if (scrolls) {
    wrapper.setAttribute("tabindex", "0");
    wrapper.setAttribute("role", "region");
    wrapper.setAttribute("aria-labelledby", wrapper.dataset.labelledBy);
  } else {
    for (const name of ["tabindex", "role", "aria-labelledby"]) wrapper.removeAttribute(name);
  }
}

const scrolls = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const wrapper = entry.target.closest(".nearhome-scroll");
    if (wrapper) fitScroller(wrapper);
  }
});

function table(id, captionText, headings) {
  const captionId = `${id}-caption`;
  const body = el("tbody", { class: "govuk-table__body" });
  const wrapper = el("div", { class: "nearhome-scroll", "data-labelled-by": captionId },
  el("table", { class: "govuk-table nearhome-table", id },
    el("caption", { class: "govuk-table__caption govuk-table__caption--s", id: captionId, text: captionText }),
    el("thead", { class: "govuk-table__head" },
      el("tr", { class: "govuk-table__row" }, headings.map(([text, extra]) => el("th", {
        scope: "col", class: `govuk-table__header ${extra || ""}`.trim(),
      }, text === "" ? el("span", { class: "govuk-visually-hidden", text: "Action" }) : text)))),
    body));
  scrolls.observe(wrapper);
  scrolls.observe(wrapper.firstChild);
  return { wrapper, body, columns: headings.length };
}

// Marks what just changed for a few seconds (nearhome.css fades it out).
function flash(element) {
  element.classList.remove("nearhome-new");
  void element.offsetWidth; // starts the fade again if it was already fading
  element.classList.add("nearhome-new");
  setTimeout(() => element.classList.remove("nearhome-new"), 4500);
}

function cell(content, extra = "") {
  return el("td", { class: `govuk-table__cell ${extra}`.trim() }, content);
}

function emptyRow(part, text) {
  return el("tr", { class: "govuk-table__row" },
    el("td", { class: "govuk-table__cell nearhome-empty", colspan: part.columns, text }));
}

// Replaces a table's rows, keeping focus on the same control if it had it, and marking rows that
// are new or changed since the last time (not on the first fill) with `nearhome-new`.
function fillRows(part, rows, signatures, previous, firstFill) {
  const focused = document.activeElement && part.body.contains(document.activeElement)
    ? document.activeElement.id : null;
  part.body.replaceChildren(...rows);
  const changed = [];
  if (!firstFill) {
    for (const row of rows) {
      const key = row.dataset.key;
      if (key && previous.get(key) !== signatures.get(key)) {
        flash(row);
        changed.push(key);
      }
    }
  }
  if (focused) {
    const again = document.getElementById(focused);
    if (again) again.focus();
  }
  return changed;
}

// Answers of overlapping reads may arrive out of order: only the newest read's answer is shown.
function inOrder() {
  let asked = 0;
  let shown = 0;
  return async (read) => {
    asked += 1;
    const mine = asked;
    const answer = await read();
    if (mine < shown) return { stale: true };
    shown = mine;
    return { answer };
  };
}

// --- one referral's card -----------------------------------------------------------------------

function summary(referral) {
  const rows = [
    ["Age", String(referral.age)],
    ["Sex", sentence(referral.sex)],
    ["Placement types", listOf(referral.placement_types, PLACEMENT_TYPES)],
    ["Needs", listOf(referral.needs, NEED_WORDS)],
    ["Sibling group size", String(referral.sibling_group_size)],
    ["Home postcode district", referral.home_postcode_district],
    ["Needed by", dateOnly(referral.needed_by)],
    ["Urgency", sentence(referral.urgency)],
    ["Lowest Ofsted rating", `${RATINGS[referral.min_ofsted_rating]}${referral.accept_not_yet_inspected ? ", or not yet inspected" : ""}`],
    ["Search", referral.search_scope === "regional"
      ? "The whole region"
      : `Local, widening to the region ${when(referral.widen_at)}`],
  ];
  return el("dl", { class: "govuk-summary-list govuk-summary-list--no-border nearhome-summary" },
    rows.map(([key, value]) => el("div", { class: "govuk-summary-list__row" },
      el("dt", { class: "govuk-summary-list__key", text: key }),
      el("dd", { class: "govuk-summary-list__value", text: value }))));
}

function makeCard(referral) {
  const id = referral.referral_id;
  const headingId = `referral-${id}`;
  const alerts = table(`alerts-${id}`, `Fitting beds for ${referral.reference}, best first`, [
    ["Home"], ["Ofsted URN"], ["Rating"], ["Distance", "govuk-table__header--numeric"],
    ["Local"], ["Beds", "govuk-table__header--numeric"], ["Contact"], [""],
  ]);
  const requests = table(`requests-${id}`, `Requests for ${referral.reference}`, [
    ["Home"], ["Beds", "govuk-table__header--numeric"], ["Requested"], ["State"], [""],
  ]);
  const details = el("div", {}, summary(referral));
  const card = el("section", {
    class: "nearhome-card", "data-referral-id": id, "data-reference": referral.reference,
    "aria-labelledby": headingId,
  },
  el("h3", { class: "govuk-heading-m", id: headingId, tabindex: "-1", text: referral.reference }),
  details, alerts.wrapper, requests.wrapper);
  return {
    referral, card, details, alerts, requests,
    alertRows: [], requestRows: [], alertSigs: new Map(), requestSigs: new Map(),
    alertsShown: false, requestsShown: false, readAlerts: inOrder(), readRequests: inOrder(),
  };
}

function alertRow(entry, alert) {
  const { referral } = entry;
  const profile = alert.setting_profile || {};
  const home = homeName(profile);
  const mine = entry.requestRows.find((request) => request.vacancy_id === alert.vacancy_id
    && REQUESTED_STATES.has(request.status));
  const contact = [profile.referrals_email, profile.referrals_phone].filter(Boolean);
  const buttonId = `request-${referral.referral_id}-${alert.vacancy_id}`;
  const action = mine
    ? el("span", { id: buttonId, tabindex: "-1", class: "nearhome-requested", text: "Requested" })
    : el("button", {
      type: "button", id: buttonId, class: "govuk-button govuk-button--secondary nearhome-row-button",
      "data-module": "govuk-button", onclick: () => requestBed(entry, alert, buttonId),
    }, "Request this bed",
    el("span", { class: "govuk-visually-hidden", text: ` at ${home} for ${referral.reference}` }));
  return el("tr", {
    class: "govuk-table__row", "data-key": alert.vacancy_id,
    "data-vacancy-id": alert.vacancy_id, "data-setting-id": alert.setting_id,
  },
  el("th", { scope: "row", class: "govuk-table__header" }, home,
    profile.description ? el("span", { class: "govuk-body-s nearhome-blurb", text: profile.description }) : null),
  cell(profile.ofsted_urn || "None"),
  cell(RATINGS[alert.ofsted_rating] || words(alert.ofsted_rating)),
  cell(miles(alert.distance_miles), "govuk-table__cell--numeric"),
  cell(alert.local ? "Local" : "Not local"),
  cell(String(alert.beds), "govuk-table__cell--numeric"),
  cell(contact.length ? contact.map((line) => el("span", { class: "nearhome-line", text: line })) : "None given", "nearhome-contact"),
  cell(action, "nearhome-action"));
}

function requestRow(entry, request) {
  const { referral } = entry;
  const home = homeName(request.setting && request.setting.profile);
  const buttonId = `accept-${request.request_id}`;
  const action = request.status === "offered"
    ? el("button", {
      type: "button", id: buttonId, class: "govuk-button nearhome-row-button",
      "data-module": "govuk-button", onclick: () => acceptOffer(entry, request, home),
    }, "Accept offer",
    el("span", { class: "govuk-visually-hidden", text: ` from ${home} for ${referral.reference}` }))
    : "";
  const beds = request.offered_beds ? String(request.offered_beds) : "";
  return el("tr", {
    class: "govuk-table__row", "data-key": request.request_id,
    "data-request-id": request.request_id, "data-state": request.status,
  },
  el("th", { scope: "row", class: "govuk-table__header", text: home }),
  cell(beds, "govuk-table__cell--numeric"),
  cell(when(request.requested_at)),
  cell(stateTag(request)),
  cell(action, "nearhome-action"));
}

function showAlerts(entry, alerts) {
  const previous = entry.alertSigs;
  entry.alertRows = alerts;
  entry.alertSigs = new Map(alerts.map((alert) => [alert.vacancy_id, alert.alert_id]));
  const rows = alerts.length
    ? alerts.map((alert) => alertRow(entry, alert))
    : [emptyRow(entry.alerts, "No fitting beds yet. New ones appear here as soon as they are posted.")];
  const changed = fillRows(entry.alerts, rows, entry.alertSigs, previous, !entry.alertsShown);
  entry.alertsShown = true;
  return changed;
}

function showRequests(entry, requests) {
  const previous = entry.requestSigs;
  entry.requestRows = requests;
  entry.requestSigs = new Map(requests.map((request) => [request.request_id, request.status]));
  const rows = requests.length
    ? requests.map((request) => requestRow(entry, request))
    : [emptyRow(entry.requests, "No beds requested yet.")];
  const changed = fillRows(entry.requests, rows, entry.requestSigs, previous, !entry.requestsShown);
  entry.requestsShown = true;
  return changed;
}

async function loadAlerts(entry) {
  const id = entry.referral.referral_id;
  const { answer: alerts, stale } = await entry.readAlerts(
    () => api(alerting, `/v1/alerts?referral_id=${encodeURIComponent(id)}&status=open`));
  return stale ? [] : showAlerts(entry, alerts);
}

async function loadRequests(entry) {
  const id = entry.referral.referral_id;
  const { answer: requests, stale } = await entry.readRequests(
    () => api("", `/v1/referrals/${encodeURIComponent(id)}/requests`));
  if (stale) return [];
  requests.sort((a, b) => b.requested_at.localeCompare(a.requested_at));
  const changed = showRequests(entry, requests);
  // Which beds show "Requested" depends on the requests.
  if (entry.alertsShown) showAlerts(entry, entry.alertRows);
  return changed;
}

// --- actions ---------------------------------------------------------------------------------

async function requestBed(entry, alert, buttonId) {
  const home = homeName(alert.setting_profile);
  const button = $(buttonId);
  if (button) button.disabled = true;
  try {
    await api("", `/v1/referrals/${encodeURIComponent(entry.referral.referral_id)}/requests`, {
      method: "POST", body: { vacancy_id: alert.vacancy_id },
    });
    await loadRequests(entry);
    say(status, `Requested the bed at ${home} for ${entry.referral.reference}. Its provider has been told.`);
    $(buttonId)?.focus();
  } catch (error) {
    if (button) button.disabled = false;
    say(status, `Could not request the bed at ${home} for ${entry.referral.reference}: ${error.message}`, true);
  }
}

async function acceptOffer(entry, request, home) {
  const button = $(`accept-${request.request_id}`);
  if (button) button.disabled = true;
  try {
    await api("", `/v1/requests/${encodeURIComponent(request.request_id)}/accept`, { method: "POST" });
    await loadRequests(entry);
    say(status, `Accepted the offer from ${home} for ${entry.referral.reference}. The provider can now start the placement.`);
    entry.card.querySelector(`tr[data-request-id="${CSS.escape(request.request_id)}"] th`)?.setAttribute("tabindex", "-1");
    entry.card.querySelector(`tr[data-request-id="${CSS.escape(request.request_id)}"] th`)?.focus();
  } catch (error) {
    if (button) button.disabled = false;
    say(status, `Could not accept the offer from ${home} for ${entry.referral.reference}: ${error.message}`, true);
    await loadRequests(entry).catch(() => {});
  }
}

// --- the list of open referrals ----------------------------------------------------------------

async function loadEntry(entry) {
  await Promise.all([loadRequests(entry), loadAlerts(entry)]);
}

// Re-reads the open referrals: new ones get a card, closed ones leave. Returns the new entries.
const readList = inOrder();

const OUTCOMES = {
  placed: "placed",
  withdrawn: "withdrawn",
  no_longer_needed: "closed as no longer needed",
};

// Says why a referral left the list (it was open when the page last read it).
async function sayClosed(referral) {
  let outcome = "closed";
  try {
    const now = await api("", `/v1/referrals/${encodeURIComponent(referral.referral_id)}`);
    outcome = OUTCOMES[now.outcome] || outcome;
  } catch {
    // Said without the outcome.
  }
  say(status, `${referral.reference} is no longer open: ${outcome}.`);
}

async function refreshList(mine = session) {
  const { answer: referrals, stale } = await readList(() => api("", "/v1/referrals?status=open"));
  if (stale || mine !== session) return [];
  referrals.sort((a, b) => a.opened_at.localeCompare(b.opened_at));
  const open = new Set(referrals.map((referral) => referral.referral_id));
  for (const [id, entry] of cards) {
    if (!open.has(id)) {
      const hadFocus = entry.card.contains(document.activeElement);
      entry.card.remove();
      cards.delete(id);
      if (hadFocus) $("referrals-heading").focus();
      sayClosed(entry.referral);
    }
  }
  const added = [];
  for (const referral of referrals) {
    let entry = cards.get(referral.referral_id);
    if (!entry) {
      entry = makeCard(referral);
      cards.set(referral.referral_id, entry);
      added.push(entry);
    } else if (entry.referral.version !== referral.version) {
      entry.referral = referral;
      entry.details.replaceChildren(summary(referral));
    }
  }
  // In the order opened; a card is moved only when out of place (moving one restarts its fade).
  referrals.forEach((referral, index) => {
    const { card } = cards.get(referral.referral_id);
    if (list.children[index] !== card) list.insertBefore(card, list.children[index] || null);
  });
  empty.hidden = cards.size > 0;
  await Promise.all(added.map((entry) => loadEntry(entry).catch((error) => {
    say(status, `Could not read ${entry.referral.reference}: ${error.message}`, true);
  })));
  return added;
}

// --- the stream ----------------------------------------------------------------------------------

const NOTICE_WORDS = {
  "placement.offered": (home, request) => `${home} offered the bed, held until ${when(request?.offer_expires_at)}`,
  "placement.declined": (home, request) => `${home} declined: ${DECLINE_REASONS[request?.decline_reason] || "no reason given"}`,
  "offer.expired": (home) => `the offer from ${home} expired`,
  "offer.withdrawn": (home, request) => `${home} withdrew its offer: ${OFFER_WITHDRAWAL_REASONS[request?.offer_withdrawal_reason] || "no reason given"}`,
};

// The state each notice leaves its request in, as the authority will tell once it has heard.
const NOTICE_STATES = {
  "placement.offered": "offered",
  "placement.declined": "declined",
  "offer.expired": "expired",
  "offer.withdrawn": "offer_withdrawn",
};

function noticeText(type, reference, home, request) {
  return `${reference}: ${NOTICE_WORDS[type](home, request)}.`;
}

async function onEvent(event) {
  const data = event.data || {};
  const referralId = data.referral_id;
  if (!referralId) return;
  let entry = cards.get(referralId);
  if (!entry) {
    await refreshList().catch(() => {});
    entry = cards.get(referralId);
    if (!entry) return;
  }
  const reference = entry.referral.reference;
  try {
    if (event.type === "alert.raised" || event.type === "alert.retracted") {
      await loadAlerts(entry);
      if (event.type === "alert.retracted") {
        const home = homeName(data.setting_profile);
        say(status, `${reference}: the bed at ${home} is no longer offered (${RETRACTIONS[data.reason] || words(data.reason || "withdrawn")}).`);
      }
      if (event.type === "alert.raised") {
        const home = homeName(data.setting_profile);
        say(status, `New fitting bed for ${reference}: ${home}, ${miles(data.distance_miles)}, ${data.local ? "local" : "not local"}.`);
      }
    } else if (NOTICE_WORDS[event.type]) {
      await readUntil(() => loadRequests(entry), () => entry.requestRows.some(
        (each) => each.request_id === data.request_id && each.status === NOTICE_STATES[event.type]));
      const request = entry.requestRows.find((each) => each.request_id === data.request_id);
      const home = homeName(request && request.setting && request.setting.profile);
      say(status, noticeText(event.type, reference, home, request));
      await refreshList().catch(() => {});
    }
  } catch (error) {
    say(status, `Could not update ${reference}: ${error.message}`, true);
  }
}

function onStreamState(state) {
  live.hidden = false;
  if (state === "open") {
    live.textContent = "Live: new beds and providers’ answers appear here as they happen.";
    live.classList.remove("nearhome-live--off");
  } else if (state === "reconnecting") {
    live.textContent = "Live updates paused: connecting again…";
    live.classList.add("nearhome-live--off");
    // Whatever happened while disconnected is read again once connected.
  } else if (state === "refused") {
    live.textContent = "Live updates refused for this token.";
    live.classList.add("nearhome-live--off");
  }
}

// --- the token ---------------------------------------------------------------------------------

function clearWorkspace() {
  session += 1;
  stopStream();
  stopStream = () => {};
  if (refreshTimer) clearInterval(refreshTimer);
  refreshTimer = null;
  cards.clear();
  list.replaceChildren();
  workspace.hidden = true;
  live.hidden = true;
  $("council-caption").textContent = "Your council’s workspace";
  $("council").textContent = howToStart(
    "Use a council’s access token to see its open referrals, the fitting beds it has been alerted to, and the providers’ answers.",
    "Sign in as a council’s home finder to see its open referrals, the fitting beds it has been alerted to, and the providers’ answers.");
}

// `me`: who the token in use is, as the service says (`/page/me`), or null without one.
async function start(me) {
  clearWorkspace();
  if (!me) {
    say(status, howToStart("Enter a council’s access token to start.", "Sign in as a council’s home finder to start."));
    return;
  }
  if (me.refused) {
    say(status, `The token was refused: ${me.refused}.`, true);
    return;
  }
  if (me.role !== "authority" || !me.authority_code) {
    say(status, "This token is not a council’s (authority) token: the home finder needs one.", true);
    return;
  }
  const mine = session;
  $("council-caption").textContent = `Council ${me.authority_code}`;
  $("council").textContent = `Council ${me.authority_code}: your open referrals, the fitting beds you have been alerted to, best first, and the providers’ answers.`;
  say(status, "Reading your open referrals…");
  try {
    alerting = (await links()).alerting;
    workspace.hidden = false;
    await refreshList(mine);
    if (mine !== session) return;
    say(status, cards.size
      ? `${cards.size} open referral${cards.size === 1 ? "" : "s"}.`
      : "You have no open referrals.");
  } catch (error) {
    say(status, `Could not read your referrals: ${error.message}`, true);
    if (error.status === 401 || error.status === 403) return;
  }
  let connectedBefore = false;
  stopStream = stream(alerting, "/v1/alerts/stream", (event) => {
    if (mine === session) onEvent(event);
  }, (state) => {
    if (mine !== session) return;
    onStreamState(state);
    // After a reconnection, catch up on what the stream could not tell while it was down.
    if (state === "open" && connectedBefore) {
      for (const entry of cards.values()) loadEntry(entry).catch(() => {});
    }
    if (state === "open") connectedBefore = true;
  });
  refreshTimer = setInterval(() => {
    if (mine === session) refreshList(mine).catch(() => {});
  }, REFRESH_LIST_MS);
}

// --- opening a referral ------------------------------------------------------------------------

const REQUIRED = {
  reference: "Enter your own reference for the child",
  age: "Enter the child’s age in years",
  sex: "Select the child’s sex",
  placement_types: "Select at least one placement type",
  home_postcode_district: "Enter the first part of the child’s home postcode",
  needed_by: "Enter the date a home is needed by",
  urgency: "Select how urgent it is",
};

// The API's words for a bad field, as a person would say them.
function plainly({ field, message }) {
  let text = String(message);
  if (REQUIRED[field] && (/^Field required/.test(text) || /at least 1 item/.test(text))) {
    text = REQUIRED[field];
  }
  text = text
    .replace(/^Value error, /, "")
    .replace(/^Input should be a valid integer.*/, "Enter a whole number")
    .replace(/^Input should be a valid number.*/, "Enter a number")
    .replace(/^Input should be a valid date.*/, "Enter a real date")
    .replace(/^Input should be less than or equal to /, "Must be no more than ")
    .replace(/^Input should be greater than or equal to /, "Must be at least ")
    .replace(/^Input should be greater than /, "Must be more than ")
    .replace(/^Extra inputs are not permitted/, "This field is not allowed");
  return { field, message: sentence(text) };
}

const form = $("referral-form");
onSubmit(form, async (values) => {
  let referral;
  try {
    referral = await api("", "/v1/referrals", { method: "POST", body: values });
  } catch (error) {
    if (Array.isArray(error.problems)) error.problems = error.problems.map(plainly);
    throw error;
  }
  form.reset();
  const added = await refreshList();
  const entry = cards.get(referral.referral_id) || added[0];
  say(status, `Opened referral ${referral.reference}. Fitting beds appear under it as they are found.`);
  if (entry) {
    flash(entry.card);
    entry.card.querySelector("h3").focus();
  }
});

startGovuk();
startIdentity(start);
