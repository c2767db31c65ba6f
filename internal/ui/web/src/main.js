// The dashboard: one page per resource under /ui/, chosen by the path; the
// query string carries each page's state (filters, window, selection), so a
// view can be shared. Navigation inside /ui/ uses the History API.
import { alertBox, h, takeLastApplied } from "./dom.js";
import { setToken, token, whenUnauthorized } from "./api.js";
import { absoluteLinks, ui, uiRoot } from "./paths.js";
import overview from "./pages/overview.js";
import measurements from "./pages/measurements.js";
import devices from "./pages/devices.js";
import flows from "./pages/flows.js";
import runs from "./pages/runs.js";
import collections from "./pages/collections.js";

const pages = { "": overview, measurements, devices, flows, runs, collections };

// pageName is the path under the dashboard's root ("" for the overview).
function pageName(p = location.pathname) {
  return (p.startsWith(uiRoot) ? p.slice(uiRoot.length) : p).replace(/\/+$/, "");
}

// nav changes the query string (null or "" removes a key) and renders again;
// push adds a history entry (a new view), otherwise the entry is replaced,
// once the view is drawn (render).
function nav(changes, { push = true, path } = {}) {
  // On the view of this page being loaded, when there is one: a second
  // control used before the first's view arrives adds to it (it dropped
  // the first change; found by an audit). Another page being loaded (a
  // link) is not this control's.
  const pending = loading && new URL(loading, location.href).pathname === location.pathname ? loading : null;
  const base = new URL(pending || location.pathname + location.search, location.href);
  const q = path ? new URLSearchParams() : new URLSearchParams(base.search);
  for (const [k, v] of Object.entries(changes || {})) {
    if (v === null || v === undefined || v === "") q.delete(k);
    else q.set(k, String(v));
  }
  const s = q.toString();
  const url = (path || base.pathname) + (s ? "?" + s : "");
  return render(url, push ? "pushState" : "replaceState");
}

let generation = 0;
let renders = 0;
// shown is the page whose view is on screen (null when none is); loading
// the path and query of the view the latest render is loading (null when
// none is).
let shown = null;
let loading = null;

// render draws the view of target (a path and query; the current URL by
// default) and then records it in the history as how says ("pushState",
// "replaceState", or nothing: the current entry is already target's; "pop"
// when the browser moved to it, Back or Forward). A push of the URL already
// shown replaces it instead (no duplicate entry). A
// render started later wins: an older one still waiting for the API leaves
// the page and the history alone. Resolves true when target's view was
// drawn, false when it was refused or superseded (what follows a render,
// moving the focus, is then not done).
async function render(target = location.pathname + location.search, how = null) {
  const gen = ++generation;
  const url = new URL(target, location.href);
  const name = pageName(url.pathname);
  const path = url.pathname + url.search;
  if (how === "pushState" && path === location.pathname + location.search) how = "replaceState";
  loading = path;
  for (const a of document.querySelectorAll("header nav a")) {
    if (a.getAttribute("href") === ui(name)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.body.dataset.state = "loading";
  const root = document.getElementById("page");
  const page = pages[name];
  let title = page ? page.title : "Not found";
  let nodes;
  let failed = null;
  try {
    if (!page) nodes = [h("h1", {}, title), h("p", {}, "No dashboard page at ", url.pathname, ".")];
    else ({ title, nodes } = await page(new URLSearchParams(url.search), nav));
  } catch (e) {
    failed = e;
  }
  if (gen !== generation) return false;
  loading = null;
  const focused = focusKey(root);
  // Back or Forward: the browser's entry is already the URL, so a refused
  // view cannot keep the one on screen under it; it is drawn as a refused
  // link's (found by an audit: the URL said one view, the screen another).
  const popped = how === "pop";
  if (popped) how = null;
  if (failed && shown === name && !popped) {
    // The API refused this view (a reversed custom window, say) or failed:
    // the page stays as it was, with the controls as the user left them to
    // correct, under the reason. The URL stays the view on screen's (it is
    // recorded once a view is drawn), so that its rows, pagers and links
    // act on it, not on the refused one, and the history gets no entry
    // for it (found by two audits).
    root.querySelector(":scope > .view-error")?.remove();
    root.prepend(h("div", { class: "view-error" }, alertBox(failed),
      h("p", { class: "muted" }, "The figures below are still those of the view before; change the controls to try again.")));
  } else if (failed) {
    if (how) history[how](null, "", path);
    // Nothing of this page on screen yet (a shared link whose view the API
    // refuses): the reason, and the page with its defaults.
    root.replaceChildren(h("h1", {}, title), alertBox(failed),
      h("p", {}, h("a", { href: ui(name) }, `Open ${title.toLowerCase()} with its defaults`)));
    document.title = title + " · Telemetry";
    shown = null;
  } else {
    if (how) history[how](null, "", path);
    root.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
    document.title = title + " · Telemetry";
    shown = page ? name : null;
  }
  const applied = takeLastApplied();
  if (focused) refocus(root, focused, applied);
  renders++;
  document.body.dataset.renders = String(renders);
  document.body.dataset.state = "ready";
  if (renders === 1) performance.mark("rendered");
  return !failed;
}

// A control of the page that changes the view (a select, a sort header, a
// row, a pager button) renders the page again, which replaces the control:
// focusKey says which one had the focus and refocus gives it to its
// replacement, or to the page when it is gone, so that a keyboard user goes
// on from there (an audit found the focus back on <body> after every such
// control, and a select left after its first keystroke).
// The key is the control's tag, name or label, and its place among the
// controls of the same key (the second of two pagers' "Next"; an audit
// found the focus on the first one's).
function focusKey(root) {
  const el = document.activeElement;
  if (!el || el === root || !root.contains(el)) return null;
  const key = { tag: el.tagName, name: el.getAttribute("name"), text: label(el) };
  key.index = alike(root, key).indexOf(el);
  return key;
}

// label is a control's accessible name as the page sets it: its aria-label,
// or its text without the sort arrow its header adds.
function label(el) {
  return el.getAttribute("aria-label") || el.textContent.replace(/[▲▼]/g, "").trim();
}

function alike(root, { tag, name, text }) {
  return [...root.querySelectorAll(tag)].filter((e) => (name ? e.getAttribute("name") === name : label(e) === text));
}

// refocus focuses the key's control, or the page when it is gone or
// disabled (the last page's "Next": focus() on it did nothing, leaving the
// focus on <body>).
function refocus(root, key, applied) {
  const all = alike(root, key);
  const same = all[key.index] || all[0];
  const select = applied && root.querySelector(`select[name="${CSS.escape(applied)}"]`);
  (same && !same.disabled ? same : select || root).focus({ preventScroll: true });
}

// focusAfterToken moves the focus, once the token form has been replaced,
// to the page its token opened, or back to the form when it was refused.
function focusAfterToken(drawn) {
  const to = drawn ? document.getElementById("page") : document.getElementById("token-input") || document.getElementById("page");
  to.focus({ preventScroll: true });
}

// The token form: shown when the API answers 401, and while a token is kept.
function tokenForm(message) {
  const box = document.getElementById("token");
  // Rebuilt on every 401: the focus in it stays in it (it fell to <body>).
  const hadFocus = box.contains(document.activeElement);
  if (!message && !token()) { box.replaceChildren(); return; }
  const input = h("input", { type: "password", name: "token", id: "token-input", autocomplete: "off", size: 40 });
  box.replaceChildren(h("form", {
    onsubmit: (e) => {
      e.preventDefault();
      setToken(input.value.trim());
      tokenForm();
      // The form is replaced: the focus goes to the page it opens.
      render().then(focusAfterToken);
    },
  },
  message ? h("p", { role: "alert" }, message) : h("span", { class: "muted" }, "A token is kept for this browser session."),
  h("label", { for: "token-input" }, "API token (JWT)", input),
  h("button", { type: "submit", class: "primary" }, "Use token"),
  token() ? h("button", { type: "button", onclick: () => {
    setToken("");
    tokenForm();
    render().then(focusAfterToken);
  } }, "Forget token") : null));
  if (hadFocus) input.focus({ preventScroll: true });
}

whenUnauthorized((problem) => tokenForm(
  "The API wants a token" + (problem && problem.detail ? ": " + problem.detail : "") + ". Paste one (telemetry token) to go on."));

document.addEventListener("click", (e) => {
  const a = e.target.closest("a");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(uiRoot)) return;
  e.preventDefault();
  render(url.pathname + url.search, "pushState").then((drawn) => drawn && document.getElementById("page").focus({ preventScroll: true }));
});
window.addEventListener("popstate", () => render(undefined, "pop"));

absoluteLinks();
tokenForm();
render();
