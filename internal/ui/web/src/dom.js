// Small DOM helpers. Text always goes in as text nodes (never innerHTML), so
// whatever the API returns cannot inject markup.

// h builds an element: h("a", {href: ui("")}, "Overview", child, ...).
// Attributes starting with "on" are listeners; null/undefined/false are skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// fmt formats a number for a table cell: integers with separators, others
// with at most `digits` decimals.
export function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "bigint") return v.toLocaleString("en-US");
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  return v.toLocaleString("en-US", { maximumFractionDigits: digits });
}

// add sums two integer counters exactly: numbers while the sum is safe,
// BigInt past 2^53 (api.js reads such values as BigInt).
export function add(a, b) {
  if (typeof a === "number" && typeof b === "number") {
    const sum = a + b;
    if (Number.isSafeInteger(sum) || !Number.isInteger(a) || !Number.isInteger(b)) return sum;
  }
  const sum = BigInt(a) + BigInt(b);
  return sum >= BigInt(Number.MIN_SAFE_INTEGER) && sum <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(sum) : sum;
}

// count says "1 run", "2 runs", "1,024 keys".
export function count(n, word) {
  return `${fmt(n)} ${word}${n === 1 ? "" : "s"}`;
}

// bytes formats a byte count (1,536 → "1.5 KiB").
export function bytes(n) {
  if (n === null || n === undefined) return "–";
  if (typeof n === "bigint") n = Number(n); // scaled to a unit: a float is exact enough
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

// when formats epoch seconds or an RFC 3339 string as UTC "YYYY-MM-DD HH:MM:SS".
export function when(t) {
  if (t === null || t === undefined || t === "") return "–";
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  if (isNaN(d)) return String(t);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace("Z", " UTC");
}

// table builds a table from columns [{key, label, num, cell(row) → node|text,
// sort: true}] and rows. sortState {key, desc} and onSort(key) make the
// sortable headers buttons (keyboard usable); onRow(row) makes each row's
// first cell a button that opens it.
// A column: key, label, and optionally cell (its content), num (a figure,
// right-aligned), time (a date, kept on one line) and sort.
// opens is the id of the heading of the section a row's action shows: the
// focus moves there once the page has drawn it, so that a keyboard or
// screen reader user is taken to what opened (an audit found it opened
// below, unannounced, the focus left on the row).
// rowLabel names a row's button when its first cell alone is ambiguous
// (two endpoints of one name and different methods).
export function table({ caption, columns, rows, sort, onSort, onRow, selected, opens, rowLabel }) {
  const head = h("tr", {}, columns.map((c) => {
    let label = c.label;
    let ariaSort = null;
    if (c.sort && onSort) {
      const active = sort && sort.key === c.key;
      ariaSort = active ? (sort.desc ? "descending" : "ascending") : "none";
      label = h("button", { type: "button", onclick: () => onSort(c.key) },
        c.label, active ? h("span", { "aria-hidden": "true" }, sort.desc ? " ▼" : " ▲") : "");
    }
    return h("th", { scope: "col", class: c.num ? "num" : null, "aria-sort": ariaSort }, label);
  }));
  const body = rows.map((r) => h("tr", { class: selected && selected(r) ? "selected" : null },
    columns.map((c, i) => {
      let v = c.cell ? c.cell(r) : fmt(r[c.key]);
      if (i === 0 && onRow) {
        v = h("button", {
          type: "button", class: "link", "aria-current": selected && selected(r) ? "true" : null,
          "aria-label": rowLabel ? rowLabel(r) : null,
          onclick: async () => {
            // onRow's render says whether the view was drawn: a refused or
            // superseded one opened nothing to move to.
            const drawn = await onRow(r);
            if (opens && drawn !== false) document.getElementById(opens)?.focus();
          },
        }, v);
      }
      return h("td", { class: c.num ? "num" : c.time ? "time" : null }, v);
    })));
  // In a box of its own that scrolls sideways when the table is wider than
  // the window, rather than the whole page (found by an audit at 600 px).
  return h("div", { class: "table-wrap" }, h("table", { class: "data" }, caption ? h("caption", { class: "muted" }, caption) : null,
    h("thead", {}, head), h("tbody", {}, body.length ? body : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "Nothing here.")))));
}

// submitNow submits a form on a select's change without the browser's
// checks of its fields: a field the new choice no longer uses (the hour of
// "One hour" when "Last 7 days" is chosen) left empty and required would
// otherwise stop it with a bubble while the select shows the new choice
// (found by an audit). The pages read an empty or unreadable bound as its
// default.
export function submitNow(form) {
  form.noValidate = true;
  try { form.requestSubmit(); } finally { form.noValidate = false; }
}

// field wraps a control in its label.
export function field(label, control) {
  return h("label", {}, label, control);
}

// lastApplied is the name of the select whose keyboard change applied last
// (on Enter or when left): the page gives it the focus back when the
// control the focus moved to is gone after the new view (Tab to a bounds
// field the new choice removes sent the focus to the top; found by an
// audit).
let lastApplied = null;
export function takeLastApplied() {
  const n = lastApplied;
  lastApplied = null;
  return n;
}

// pressedAway: the pointer last went down on a link to another page, as a
// plain press (main.js's router follows those; one with a modifier or
// another button opens a new tab and leaves this page as it is), and no
// key was pressed since. A keyboard step held back in a select that this
// press takes the focus from is dropped, not applied: the link's page
// replaces the view anyway. (It started the step's view, whose API calls
// ran for nothing and which, drawn before the link's on a busy machine,
// added a history entry of its own; found by a review and by a test that
// failed under load.) A key clears it, so that a select left by Tab after
// such a press applies its step (the flag stayed set, and dropped it).
let pressedAway = false;
document.addEventListener("pointerdown", (e) => {
  const a = e.target instanceof Element ? e.target.closest("a[href]") : null;
  pressedAway = a !== null && a.pathname !== location.pathname && e.button === 0 &&
    !(e.metaKey || e.ctrlKey || e.shiftKey || e.altKey);
}, true);
document.addEventListener("keydown", () => { pressedAway = false; }, true);

// stepKeys step a closed select through its options.
const stepKeys = new Set(["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Home", "End", "PageUp", "PageDown"]);

// select builds a <select> with options [[value, text]]. A choice made with
// the pointer applies at once (onchange, and the form's change listeners);
// one made with the keyboard, where each arrow key is a change, applies
// when the user leaves the select or presses Enter, so that stepping
// through the options does not load a view per option (found by an audit:
// a view, its API calls and a history entry for each key).
export function select(name, options, value, onchange) {
  let keyed = false;
  let pending = false;
  let applying = false;
  const el = h("select", {
    name,
    onpointerdown: () => { keyed = false; },
    onkeydown: (e) => {
      if (e.key === "Enter" && pending) {
        e.preventDefault();
        apply();
        return;
      }
      // Keys that change a closed select's value; the others (Space,
      // Enter, F4, Alt+arrow) open its list, where a choice is made as with
      // the pointer and applies at once.
      keyed = !e.altKey && (stepKeys.has(e.key) || (e.key.length === 1 && e.key !== " "));
    },
    onchange: (e) => {
      if (keyed && !applying) {
        pending = true;
        e.stopPropagation();
        return;
      }
      pending = false;
      onchange(e.target.value);
    },
    // A select the page has replaced meanwhile applies nothing, nor one
    // left for a link to another page (pressedAway).
    onblur: () => {
      if (!pending || !el.isConnected) return;
      if (pressedAway) {
        pending = false;
        return;
      }
      apply();
    },
  }, options.map(([v, t]) => h("option", { value: v, selected: v === value }, t)));
  // apply sends the change the keyboard made, to this select's listener
  // and the form's.
  function apply() {
    pending = false;
    if (el.value === value) return; // stepped away and back: nothing changed
    lastApplied = name;
    applying = true;
    try { el.dispatchEvent(new Event("change", { bubbles: true })); } finally { applying = false; }
  }
  return el;
}

export function alertBox(err) {
  return h("p", { class: "alert", role: "alert" }, err instanceof Error ? err.message : String(err));
}

// actionButton runs an async action on click (a download): the button is
// disabled meanwhile, and a failure is shown beside it.
export function actionButton(label, action) {
  const status = h("span", { class: "muted", role: "status" });
  const button = h("button", {
    type: "button",
    onclick: async () => {
      button.disabled = true;
      status.replaceChildren();
      try {
        await action();
      } catch (e) {
        status.replaceChildren(h("span", { class: "bad" }, e instanceof Error ? e.message : String(e)));
      } finally {
        button.disabled = false;
      }
    },
  }, label);
  return h("span", { class: "action" }, button, " ", status);
}
