// NearHome pages' shared script (an ES module, no build step): signing in, the token kept in the tab, calls
// to the services' /v1 APIs, their server-sent event streams, GOV.UK error summaries for 422
// answers, and small helpers for building elements without innerHTML.
import { initAll } from "/govuk/govuk-frontend.min.js";

const TOKEN_KEY = "nearhome.token";

export const $ = (id) => document.getElementById(id);

// Start GOV.UK Frontend's components (error summary focus, skip link, checkboxes, tabs …).
export function startGovuk() {
  document.body.classList.add("govuk-frontend-supported", "js-enabled");
  initAll();
}

// An element with attributes and children; text is always set as text, never parsed as HTML.
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") element.textContent = value;
    else if (name === "class") element.className = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

// --- who is using the page ---------------------------------------------------------------------

// A page knows who is using it in one of two ways: signed in with the identity provider
// (authorization code with PKCE, by oidc-client-ts, when `/page/sign-in.json` says how), or, in
// development only, a token pasted into the token box. Either way the bearer token is kept in this
// tab's sessionStorage only, and what it means (role, organisation) is asked of the service
// (`/page/me`): the page never reads a token's claims itself.

let manager = null; // oidc-client-ts's UserManager, when the page signs in
let signedIn = null; // its user (access token, ID token's profile) while signed in
let identity = null; // `/page/me`'s answer for the token in use

// The bearer token in use: the signed-in user's access token, else the token box's.
export const token = {
  get: () => (signedIn && !signedIn.expired ? signedIn.access_token : sessionStorage.getItem(TOKEN_KEY)),
};

// Who the token in use is, as the service maps it: {role, organisation_id, provider_id,
// authority_code, footprints}; {refused} if the service refused it; {} if there is none.
export function who() {
  return identity || {};
}

// What to ask of someone who has not said who they are yet: to sign in where the page can, else
// to enter a token.
export function howToStart(tokenWords, signInWords) {
  return $("sign-in") ? signInWords : tokenWords;
}

async function whoIs(bearer) {
  try {
    const response = await fetch("/page/me", {
      headers: { Authorization: `Bearer ${bearer}`, Accept: "application/json" },
      cache: "no-store",
    });
    const body = await response.json().catch(() => null);
    if (response.ok) return body;
    const reason = body && typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`;
    return { refused: reason, status: response.status };
  } catch (error) {
    return { refused: `the service did not answer (${error.message})`, status: 0 };
  }
}

function organisation(me) {
  if (me.role === "authority") return `council ${me.authority_code}`;
  if (me.role === "provider") return `provider ${me.provider_id}`;
  if (me.role === "collaborative") return `footprints ${(me.footprints || []).join(", ")}`;
  if (me.role === "admin") return "NearHome administration";
  return "no NearHome organisation";
}

// Starts the page's ways of saying who is using it. `onChange(identity)` runs once at the start
// and whenever the token in use changes, with `who()`'s answer, or null when there is no token.
export async function startIdentity(onChange) {
  const panel = $("sign-in");
  const form = $("token-form");
  let generation = 0;
  let notice = "";
  const changed = async () => {
    generation += 1;
    const mine = generation;
    const bearer = token.get();
    const answer = bearer ? await whoIs(bearer) : null;
    if (mine !== generation) return; // the token changed again meanwhile
    identity = answer;
    if (panel) showSignedIn(panel, notice);
    if (form) showTokenInUse(form);
    notice = "";
    onChange(answer);
  };
  const say = (text) => { notice = text; };
  if (form) startTokenBox(form, changed);
  if (panel) {
    try {
      await startSignIn(panel, changed, say);
    } catch (error) {
      say(`Signing in is not available: ${error.message}`);
    }
  }
  await changed();
}

function showTokenInUse(form) {
  form.querySelector("input[name=token]").placeholder = sessionStorage.getItem(TOKEN_KEY) ? "token in use" : "";
}

// The token box: a password field kept in this tab's sessionStorage only (development).
function startTokenBox(form, changed) {
  const input = form.querySelector("input[name=token]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    input.value = "";
    if (manager && signedIn) {
      // One token at a time: the pasted one replaces the signed-in user's (in this tab only).
      signedIn = null;
      await manager.removeUser();
    }
    changed();
  });
  form.querySelector("[data-action=forget-token]").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    changed();
  });
}

function showSignedIn(panel, notice) {
  const line = panel.querySelector("#signed-in");
  const signIn = panel.querySelector("[data-action=sign-in]");
  const signOut = panel.querySelector("[data-action=sign-out]");
  const active = Boolean(signedIn && !signedIn.expired);
  signIn.hidden = active;
  signOut.hidden = !active;
  signIn.disabled = !manager;
  if (active) {
    const profile = signedIn.profile || {};
    const name = profile.name || profile.preferred_username || profile.email || "you";
    line.textContent = identity && identity.refused
      ? `Signed in as ${name}, but this service refused the sign-in: ${identity.refused}.`
      : `Signed in as ${name}, ${organisation(identity || {})}.`;
  } else {
    line.textContent = notice || "Sign in with your organisation’s account to use this page.";
  }
}

// Signing in with the identity provider: the button sends the browser there (authorization code
// with PKCE, S256), which sends it back to this page's origin with a code that oidc-client-ts
// exchanges for tokens (kept in sessionStorage). The access token is renewed before it expires
// with the refresh token where the provider gives one; when it cannot be, the page asks to sign
// in again.
async function startSignIn(panel, changed, say) {
  const config = await fetch("/page/sign-in.json", { cache: "no-store" }).then((r) => r.json());
  if (!config.issuer || !config.client_id) throw new Error("this page has no sign-in settings");
  if (!globalThis.oidc) throw new Error("the sign-in library did not load");
  const { UserManager, WebStorageStateStore } = globalThis.oidc;
  const here = `${window.location.origin}/`;
  manager = new UserManager({
    authority: config.issuer,
    client_id: config.client_id,
    scope: config.scope || "openid",
    redirect_uri: here,
    post_logout_redirect_uri: here,
    response_type: "code",
    userStore: new WebStorageStateStore({ store: window.sessionStorage }),
    stateStore: new WebStorageStateStore({ store: window.sessionStorage }),
    automaticSilentRenew: true,
    loadUserInfo: false,
  });

  // Back from the provider: finish signing in (or out), and take the code out of the address.
  const params = new URLSearchParams(window.location.search);
  if (params.has("state")) {
    try {
      if (params.has("code") || params.has("error")) {
        await manager.signinRedirectCallback();
        sessionStorage.removeItem(TOKEN_KEY);
      } else {
        await manager.signoutRedirectCallback();
        say("You have signed out.");
      }
    } catch (error) {
      say(`Signing in did not finish: ${error.message}. Sign in again.`);
    } finally {
      window.history.replaceState(null, "", "/");
    }
  }

  signedIn = await manager.getUser();
  if (signedIn && signedIn.expired) {
    try {
      signedIn = signedIn.refresh_token ? await manager.signinSilent() : null;
    } catch {
      signedIn = null;
    }
    if (!signedIn) {
      await manager.removeUser();
      say("Your sign-in has ended. Sign in again.");
    }
  }

  manager.events.addUserLoaded((user) => {
    // A renewed access token: the same person, so the page goes on as it is.
    signedIn = user;
  });
  manager.events.addAccessTokenExpired(async () => {
    signedIn = null;
    await manager.removeUser();
    say("Your sign-in has ended. Sign in again.");
    changed();
  });

  panel.querySelector("[data-action=sign-in]").addEventListener("click", async () => {
    try {
      await manager.signinRedirect();
    } catch (error) {
      say(`Could not reach the sign-in service: ${error.message}`);
      showSignedIn(panel, `Could not reach the sign-in service: ${error.message}`);
    }
  });
  panel.querySelector("[data-action=sign-out]").addEventListener("click", async () => {
    signedIn = null;
    try {
      // A state, so that the provider sends one back and the page knows it signed out.
      await manager.signoutRedirect({ state: "signed-out" });
    } catch {
      // The provider has no end-session endpoint (or cannot be reached): signed out here only.
      await manager.removeUser();
      say("You have signed out of this page.");
      changed();
    }
  });
}

// Where the other services are, as this page's origin was told (`/page/links.json`).
export async function links() {
  const response = await fetch("/page/links.json", { cache: "no-store" });
  return response.json();
}

// --- the API -------------------------------------------------------------------------------------

export class ApiError extends Error {
  // `problems`: [{field, message}] for a 422, else one with no field.
  constructor(status, message, problems) {
    super(message);
    this.status = status;
    this.problems = problems;
  }
}

function problemsOf(status, body) {
  const detail = body && body.detail;
  if (Array.isArray(detail)) {
    return detail.map((problem) => {
      const where = (problem.loc || []).filter((part) => part !== "body");
      // pydantic says "Value error, …" of a rule of ours: the words after it are the message.
      const message = String(problem.msg).replace(/^Value error, /, "");
      return { field: where.length ? String(where[0]) : null, message };
    });
  }
  return [{ field: null, message: typeof detail === "string" ? detail : `HTTP ${status}` }];
}

// Calls `base + path` with the token. A write carries a fresh Idempotency-Key, so the services
// answer a retried request with the first answer. Throws ApiError for any answer but 2xx.
export async function api(base, path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${token.get()}`, Accept: "application/json" };
  if (method !== "GET") {
    headers["Idempotency-Key"] = crypto.randomUUID();
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(base + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const problems = problemsOf(response.status, parsed);
    throw new ApiError(response.status, problems.map((p) => p.message).join("; "), problems);
  }
  return parsed;
}

// Reads a server-sent event stream with the token (EventSource cannot send one), calling
// `onEvent({type, id, data})` for each event, and connects again whenever the stream ends, sending
// the last id it was given as `Last-Event-ID` (as EventSource does), so that the service first
// sends what happened while it was away. `onState` hears "open", "reconnecting" and "refused"
// (401/403: it stops). Returns a stopper.
export function stream(base, path, onEvent, onState = () => {}) {
  const controller = new AbortController();
  let delay = 500;
  let lastId = null;
  (async () => {
    while (!controller.signal.aborted) {
      try {
        const headers = { Authorization: `Bearer ${token.get()}`, Accept: "text/event-stream" };
        if (lastId !== null) headers["Last-Event-ID"] = lastId;
        const response = await fetch(base + path, {
          headers,
          signal: controller.signal,
          cache: "no-store",
        });
        if (response.status === 401 || response.status === 403) {
          onState("refused");
          return;
        }
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        onState("open");
        delay = 500;
        await readEvents(response.body, onEvent, (id) => {
          lastId = id;
        });
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  })();
  return () => controller.abort();
}

// Calls `onEvent` for each complete event of the stream, and `onId` with each id the stream gives
// (an event's, or one given alone, which marks where a new stream starts).
async function readEvents(body, onEvent, onId) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { type: "message", id: null, data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, "");
      buffer = buffer.slice(newline + 1);
      if (line === "") {
        if (event.id !== null) onId(event.id);
        if (event.data.length) {
          onEvent({ type: event.type, id: event.id, data: JSON.parse(event.data.join("\n")) });
        }
        event = { type: "message", id: null, data: [] };
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const content = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event.type = content;
        else if (field === "id") event.id = content;
        else if (field === "data") event.data.push(content);
      }
    }
  }
}

// --- forms ---------------------------------------------------------------------------------------

// A form's values as the API takes them: `data-type` on a field says how to read it ("int",
// "bool", "list" for a group of checkboxes, "date"); an empty optional field is left out.
export function valuesOf(form) {
  const values = {};
  for (const field of form.querySelectorAll("[name]")) {
    const { name } = field;
    const kind = field.dataset.type || "text";
    if (kind === "list") {
      values[name] = values[name] || [];
      if (field.checked) values[name].push(field.value);
    } else if (kind === "bool") {
      if (field.type === "checkbox") values[name] = field.checked;
      else if (field.checked || field.tagName === "SELECT") values[name] = field.value === "true";
    } else if (field.type === "radio") {
      if (field.checked) values[name] = field.value;
    } else if (field.value.trim() !== "") {
      values[name] = kind === "int" ? Number(field.value) : field.value.trim();
    }
  }
  return values;
}

export function clearErrors(form) {
  form.querySelector(".govuk-error-summary")?.remove();
  for (const group of form.querySelectorAll(".govuk-form-group--error")) {
    group.classList.remove("govuk-form-group--error");
  }
  for (const message of form.querySelectorAll(".govuk-error-message[data-added]")) {
    message.remove();
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    input.classList.remove("govuk-input--error", "govuk-select--error");
    const described = (input.getAttribute("aria-describedby") || "")
      .split(" ").filter((id) => id && !id.endsWith("-error")).join(" ");
    if (described) input.setAttribute("aria-describedby", described);
    else input.removeAttribute("aria-describedby");
  }
}

// GOV.UK's error summary at the top of `form`, and each problem's message next to its field.
export function showErrors(form, error) {
  clearErrors(form);
  const problems = error instanceof ApiError ? error.problems : [{ field: null, message: String(error) }];
  const items = [];
  for (const { field, message } of problems) {
    const input = field && form.querySelector(`[name="${CSS.escape(field)}"]`);
    const group = input && input.closest(".govuk-form-group");
    if (!group) {
      items.push(el("li", {}, message));
      continue;
    }
    const label = group.querySelector(".govuk-label, .govuk-fieldset__legend");
    const name = label ? label.textContent.trim() : field;
    const errorId = `${input.id}-error`;
    const text = `${name}: ${message}`;
    if (!group.classList.contains("govuk-form-group--error")) {
      group.classList.add("govuk-form-group--error");
      const paragraph = el("p", { id: errorId, class: "govuk-error-message", "data-added": true },
        el("span", { class: "govuk-visually-hidden", text: "Error: " }), text);
      // After the label and hint, before the field (or the group of checkboxes or radios).
      (input.closest(".govuk-checkboxes, .govuk-radios") || input).before(paragraph);
      for (const each of group.querySelectorAll("input, select, textarea")) {
        each.setAttribute("aria-invalid", "true");
        each.setAttribute("aria-describedby",
          [each.getAttribute("aria-describedby"), errorId].filter(Boolean).join(" "));
        if (each.tagName === "SELECT") each.classList.add("govuk-select--error");
        else if (each.type !== "checkbox" && each.type !== "radio") each.classList.add("govuk-input--error");
      }
    }
    items.push(el("li", {}, el("a", { href: `#${input.id}` }, text)));
  }
  const summary = el("div", { class: "govuk-error-summary", "data-module": "govuk-error-summary" },
    el("div", { role: "alert" },
      el("h2", { class: "govuk-error-summary__title", text: "There is a problem" }),
      el("div", { class: "govuk-error-summary__body" },
        el("ul", { class: "govuk-list govuk-error-summary__list" }, items))));
  form.prepend(summary);
  summary.setAttribute("tabindex", "-1");
  summary.focus();
}

// Runs `action` when `form` is submitted, with its button disabled meanwhile; a failure is shown
// as GOV.UK errors on the form.
export function onSubmit(form, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit], button:not([type])");
    if (button) button.disabled = true;
    try {
      await action(valuesOf(form));
      clearErrors(form);
    } catch (error) {
      showErrors(form, error);
    } finally {
      if (button) button.disabled = false;
    }
  });
}

// --- words and times -----------------------------------------------------------------------------

export function words(value) {
  return String(value).replace(/_/g, " ");
}

export function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString("en-GB", {
    day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  });
}

// Tells screen reader users and everyone else what happened, in the page's status line.
export function say(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("nearhome-status--error", isError);
}

// --- wide tables ---------------------------------------------------------------------------------

// Makes each `.nearhome-scroll` box under `root` that is narrower than its table reachable with
// the keyboard (so it can be scrolled with the arrow keys), named after its table's caption (or its
// `data-label`); a box that fits stays out of the tab order. Watches the boxes as they resize and
// as new ones appear.
export function keyboardScroll(root = document.body) {
  const resized = new ResizeObserver((entries) => {
    for (const { target } of entries) {
      if (target.scrollWidth > target.clientWidth + 1) {
        target.setAttribute("tabindex", "0");
        target.setAttribute("role", "region");
        const caption = target.querySelector("caption");
        target.setAttribute("aria-label", target.dataset.label || (caption ? caption.textContent.trim() : "Table"));
      } else if (target.getAttribute("tabindex") === "0") {
        for (const name of ["tabindex", "role", "aria-label"]) target.removeAttribute(name);
      }
    }
  });
  const watch = (node) => {
    if (!(node instanceof Element)) return;
    const boxes = node.matches(".nearhome-scroll") ? [node] : [];
    for (const box of [...boxes, ...node.querySelectorAll(".nearhome-scroll")]) {
      if (!box.dataset.scrollWatched) {
        box.dataset.scrollWatched = "true";
        resized.observe(box);
      }
    }
  };
  watch(root);
  new MutationObserver((changes) => {
    for (const change of changes) for (const node of change.addedNodes) watch(node);
  }).observe(root, { childList: true, subtree: true });
}

// A notice from the stream and the service a page reads both follow the same events, each at its
// own pace: `read` again (up to `tries` times, waiting longer each time) until `arrived()`.
export async function readUntil(read, arrived, tries = 8) {
  for (let attempt = 0, wait = 250; attempt < tries; attempt += 1, wait *= 2) {
    await read();
    if (arrived()) return true;
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
  return false;
}
