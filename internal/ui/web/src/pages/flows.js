// Flows: a range of hours (one hour, the last 24 hours, the last 7 days or a
// custom range), its totals per src_app, dest_app or vpc_id, largest first
// (the API's summary), and its hourly totals with the top talkers first (the
// API's list sorted by bytes). The API does the ordering and paging: the page
// reads one page of each.
import { download, get } from "../api.js";
import { barChart } from "../charts.js";
import { actionButton, add, bytes, count, field, fmt, h, select, submitNow, table, when } from "../dom.js";
import { pager } from "./measurements.js";
import { localMillis } from "./window.js";

const ranges = [["hour", "One hour"], ["day", "Last 24 hours"], ["week", "Last 7 days"], ["custom", "Custom (UTC)"]];
const spans = { day: 24, week: 168 };
const keys = [["src_app", "Source app"], ["dest_app", "Destination app"], ["vpc_id", "VPC"]];
const filterNames = keys.map(([k]) => k);

// Custom bounds are UTC datetime-local strings (YYYY-MM-DDTHH:MM), cut to the
// hour; the end is exclusive, like the API's to_hour.
const toLocal = (hour) => new Date(hour * 3600000).toISOString().slice(0, 16);
const fromLocal = (s) => {
  const t = localMillis(s);
  return t === null ? null : Math.floor(t / 3600000);
};

// hours reads the range from the query string: {range, from, to} in hours
// since the Unix epoch, [from, to). A bare ?hour=N (the older links) is one
// hour; nothing is the last 24 hours.
export function hours(q, current = Math.floor(Date.now() / 3600000)) {
  const parsed = parseInt(q.get("hour") || "", 10);
  let range = q.get("range");
  if (!ranges.some(([r]) => r === range)) range = Number.isFinite(parsed) ? "hour" : "day";
  if (range === "hour") {
    const hour = Number.isFinite(parsed) && parsed >= 0 ? parsed : current;
    return { range, from: hour, to: hour + 1 };
  }
  if (range === "custom") {
    const from = fromLocal(q.get("from") || "");
    const to = fromLocal(q.get("to") || "");
    return { range, from: from ?? current - 23, to: to ?? current + 1 };
  }
  return { range, from: current + 1 - spans[range], to: current + 1 };
}

export default async function flows(q, nav) {
  const r = hours(q);
  const by = filterNames.includes(q.get("by")) ? q.get("by") : "src_app";
  const filters = Object.fromEntries(filterNames.map((k) => [k, q.get(k) || ""]));
  const page = Math.max(1, parseInt(q.get("page") || "1", 10) || 1);
  const spage = Math.max(1, parseInt(q.get("spage") || "1", 10) || 1);
  const range = { from_hour: r.from, to_hour: r.to, ...filters };

  const [summary, list] = await Promise.all([
    get("/flows/summary", { ...range, by, page: spage, size: 25 }),
    get("/flows", { ...range, sort: "bytes,desc", page, size: 25 }),
  ]);
  const totals = summary.items || [];
  const rows = (list.items || []).map((f) => ({ ...f, total: add(f.bytes_tx, f.bytes_rx) }));
  const byLabel = keys.find(([k]) => k === by)[1];
  const top = spage === 1 ? totals.slice(0, 12) : [];

  // Another range: previous and next move by the range's length.
  const shift = (n) => {
    const len = r.to - r.from;
    if (r.range === "hour") return nav({ range: "hour", hour: r.from + n, from: null, to: null, page: null, spage: null });
    return nav({ range: "custom", hour: null, from: toLocal(r.from + n * len), to: toLocal(r.to + n * len), page: null, spage: null });
  };
  const form = h("form", {
    class: "filters", "aria-label": "Range and filters",
    onsubmit: (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      const v = (k) => (f.get(k) || "").toString().trim();
      const range = v("range");
      // Into one hour from a longer range: its last hour; into a custom range: the one shown.
      nav({
        range, hour: range === "hour" ? v("hour") || r.to - 1 : null,
        from: range === "custom" ? v("from") || toLocal(r.from) : null, to: range === "custom" ? v("to") || toLocal(r.to) : null,
        by: v("by"), src_app: v("src_app"), dest_app: v("dest_app"), vpc_id: v("vpc_id"), page: null, spage: null,
      });
    },
    onchange: (e) => { if (e.target.tagName === "SELECT") submitNow(e.currentTarget); },
  },
  field("Range", select("range", ranges, r.range, () => {})),
  r.range === "hour" ? field("Hour (since the Unix epoch)", h("input", { type: "number", name: "hour", min: 0, value: r.from, required: true })) : null,
  r.range === "custom" ? [
    field("From (UTC)", h("input", { type: "datetime-local", name: "from", step: 3600, value: toLocal(r.from), required: true })),
    field("To (UTC, exclusive)", h("input", { type: "datetime-local", name: "to", step: 3600, value: toLocal(r.to), required: true })),
  ] : null,
  field("Totals per", select("by", keys, by, () => {})),
  keys.map(([k, label]) => field(label, h("input", { name: k, value: filters[k], placeholder: "any (exact)", size: 12 }))),
  h("button", { type: "submit", class: "primary" }, "Show"),
  h("button", { type: "button", onclick: () => shift(-1) }, r.range === "hour" ? "Previous hour" : "Previous range"),
  h("button", { type: "button", onclick: () => shift(1) }, r.range === "hour" ? "Next hour" : "Next range"));

  const span = r.to - r.from === 1 ? `hour ${r.from}` : `hours ${r.from} to ${r.to}`;
  const filtered = filterNames.filter((k) => filters[k]).map((k) => `${k} ${filters[k]}`);
  // The totals over every key are known when the summary fits one page.
  const all = summary.total <= totals.length && spage === 1;
  const tx = totals.reduce((a, t) => add(a, t.bytes_tx), 0);
  const rx = totals.reduce((a, t) => add(a, t.bytes_rx), 0);

  return {
    title: `Flows, ${span}`,
    nodes: [
      h("h1", {}, "Flows"),
      form,
      h("p", { id: "flows-summary" }, `${when(r.from * 3600)} to ${when(r.to * 3600)} (${count(r.to - r.from, "hour")})`,
        filtered.length ? `, ${filtered.join(", ")}` : "", `: ${count(summary.total, byLabel.toLowerCase().replace("vpc", "VPC"))}, `,
        `${count(list.total, "hourly total")}`,
        all ? `, ${bytes(tx)} sent (${fmt(tx)} B), ${bytes(rx)} received (${fmt(rx)} B)` : ""),
      h("h2", {}, `Totals per ${byLabel.toLowerCase().replace("vpc", "VPC")}`),
      top.length ? barChart(`Largest ${by} (bytes sent + received)`, top.map((t) => t.key), top.map((t) => Number(t.bytes)), { wide: true, yLabel: "bytes", xLabel: byLabel }) : null,
      table({
        caption: `Largest first; a key shows its flows below`,
        columns: [
          { key: "key", label: byLabel, cell: (t) => t.key },
          { key: "bytes_tx", label: "Bytes sent", num: true },
          { key: "bytes_rx", label: "Bytes received", num: true },
          { key: "bytes", label: "Total", num: true },
        ],
        rows: totals,
        onRow: (t) => nav({ [by]: t.key, page: null, spage: null }),
        selected: (t) => filters[by] === t.key,
      }),
      pager(summary, spage, (p) => nav({ spage: p }), "totals"),
      h("h2", { id: "talkers" }, "Top talkers"),
      table({
        caption: "Hourly totals per key, largest first",
        columns: [
          { key: "hour", label: "Hour (UTC)", time: true, cell: (f) => when(f.hour * 3600).replace(":00:00 UTC", ":00") },
          { key: "src_app", label: "Source app", cell: (f) => f.src_app },
          { key: "dest_app", label: "Destination app", cell: (f) => f.dest_app },
          { key: "vpc_id", label: "VPC", cell: (f) => f.vpc_id },
          { key: "bytes_tx", label: "Bytes sent", num: true },
          { key: "bytes_rx", label: "Bytes received", num: true },
          { key: "total", label: "Total", num: true },
        ],
        rows,
      }),
      pager(list, page, (p) => nav({ page: p }), "top talkers"),
      actionButton("Download CSV", () => download("/flows", { ...range, sort: "bytes,desc" }, `flows-${r.from}-${r.to}.csv`)),
    ],
  };
}
flows.title = "Flows";
