// Measurements: the grouped table (per name and method) over a window with
// filters, the method distribution and timeseries charts; a row opens that
// endpoint's measurements, and a measurement opens its detail. Every figure
// counts measurements (rows): the service's own requests past
// SELF_PROFILE_DETAIL a second are summary rows, each standing for
// context.count requests, which the page shows and says.
import { download, get } from "../api.js";
import { barChart, timeChart } from "../charts.js";
import { actionButton, count, field, fmt, h, select, submitNow, table, when } from "../dom.js";
import { bounds, toLocal, windowControls } from "./window.js";

const percentiles = [["p50Elapsed", "p50 (s)"], ["p95Elapsed", "p95 (s)"], ["p99Elapsed", "p99 (s)"]];

// The timeseries buckets the API takes, and the one each window starts with
// (a few dozen points at most).
const buckets = [["5m", "5 minutes"], ["15m", "15 minutes"], ["1h", "1 hour"], ["6h", "6 hours"], ["1d", "1 day"]];
const bucketFor = { hour: "5m", day: "1h", week: "6h", custom: "1h" };
const per = { "5m": "per 5 minutes", "15m": "per 15 minutes", "1h": "per hour", "6h": "per 6 hours", "1d": "per day" };

// bucketTime reads a timeseries key ("YYYY-MM-DD", "YYYY-MM-DD HH" or
// "YYYY-MM-DD HH:MM", UTC).
function bucketTime(k) {
  const [d, t] = k.split(" ");
  const [hh, mm] = (t || "00").split(":");
  return Date.parse(`${d}T${hh}:${mm || "00"}:00Z`) / 1000;
}

export default async function measurements(q, nav) {
  const b = bounds(q);
  const filters = { app: q.get("app") || "", method: q.get("method") || "", name: q.get("name") || "" };
  const sort = q.get("sort") || "count,desc";
  const [sortKey, sortDir] = sort.split(",");
  // interval=daily|hourly: the links made before the bucket choice.
  const older = { daily: "1d", hourly: "1h" }[q.get("interval")];
  const bq = q.get("bucket") || older;
  const bucket = buckets.some(([v]) => v === bq) ? bq : bucketFor[b.win];
  const page = Math.max(1, parseInt(q.get("page") || "1", 10) || 1);
  const win = { startedAt: b.startedAt, endedAt: b.endedAt };
  const ep = q.get("ep");
  const epMethod = q.get("epm") || "";
  const rpage = Math.max(1, parseInt(q.get("rpage") || "1", 10) || 1);
  const id = q.get("id");

  const [groups, dist, series, requests, detail] = await Promise.all([
    get("/api/measurements/grouped/", { ...win, ...filters, sort, page, size: 50 }),
    get("/api/measurements/methodDistribution/", win),
    get("/api/measurements/timeseries/", { ...win, bucket }),
    ep ? get("/api/measurements/", { ...win, app: filters.app, name: ep, method: epMethod, sort: "endedAt,desc", page: rpage, size: 20 }) : null,
    id ? get("/api/measurements/" + encodeURIComponent(id)) : null,
  ]);

  const form = h("form", {
    class: "filters", "aria-label": "Filters",
    onsubmit: (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      const v = (k) => (f.get(k) || "").toString().trim();
      // A custom window chosen from the select has no bounds fields yet:
      // it starts from the window on screen, written in the URL, so that a
      // reload or a shared link shows the same (found by an audit: it
      // followed the clock).
      // Another window drops the bounds (they stayed in the URL; found by
      // an audit).
      const custom = v("window") === "custom";
      nav({ window: v("window"), from: custom ? v("from") || toLocal(b.startedAt) : "",
        to: custom ? v("to") || toLocal(b.endedAt) : "", app: v("app"), method: v("method"), name: v("name"),
        bucket: v("bucket"), interval: null, page: null, ep: null, epm: null, rpage: null, id: null });
    },
    onchange: (e) => {
      if (e.target.tagName !== "SELECT") return;
      // Another window starts with its own bucket (a week in 5 minutes is 2,016 points).
      if (e.target.name === "window") e.currentTarget.elements.bucket.value = bucketFor[e.target.value] || "1h";
      submitNow(e.currentTarget);
    },
  },
  windowControls(b),
  field("App", h("input", { name: "app", value: filters.app, placeholder: "any" })),
  field("Method", h("input", { name: "method", value: filters.method, placeholder: "any (GET,POST)", size: 12 })),
  field("Name", h("input", { name: "name", value: filters.name, placeholder: "any (exact)" })),
  field("Timeseries bucket", select("bucket", buckets, bucket, () => {})),
  h("button", { type: "submit", class: "primary" }, "Apply"));

  const items = groups.items || [];
  const cols = [
    { key: "name", label: "Name", sort: true, cell: (r) => r.name },
    { key: "method", label: "Method", cell: (r) => r.method },
    { key: "count", label: "Count", num: true, sort: true },
    { key: "avgElapsed", label: "Avg (s)", num: true, sort: true, cell: (r) => fmt(r.avgElapsed, 4) },
    { key: "minElapsed", label: "Min (s)", num: true, sort: true, cell: (r) => fmt(r.minElapsed, 4) },
    { key: "maxElapsed", label: "Max (s)", num: true, sort: true, cell: (r) => fmt(r.maxElapsed, 4) },
    // Not sortable: the API sorts groups by count, avgElapsed, minElapsed,
    // maxElapsed or name (it computes percentiles for a page's groups only),
    // and a sort by p95 was a 422 that replaced the page (found by an audit).
    ...percentiles.map(([key, label]) =>
      ({ key, label, num: true, cell: (r) => fmt(r[key], 4) })),
  ];
  const grouped = table({
    caption: `${count(groups.total, "endpoint")}, ${when(b.startedAt)} to ${when(b.endedAt)}`,
    columns: cols, rows: items,
    sort: { key: sortKey, desc: sortDir !== "asc" },
    onSort: (k) => nav({ sort: k + "," + (k === sortKey && sortDir !== "asc" ? "asc" : "desc"), page: null }),
    onRow: (r) => nav({ ep: r.name, epm: r.method, rpage: null, id: null }),
    selected: (r) => r.name === ep && r.method === epMethod,
    opens: "requests",
    rowLabel: (r) => `${r.method} ${r.name}`,
  });

  const methods = Object.keys(dist.distribution || {}).sort();
  const keys = Object.keys(series.serie || {}).sort();
  // The API's method distribution and timeseries take a window alone: the
  // charts count every app, method and name, which their titles say when a
  // filter is set (found by an audit: app=shop showed another app's PUTs).
  const all = filters.app || filters.method || filters.name ? ", all apps, methods and names" : "";
  const charts = h("div", { class: "charts" },
    barChart("Measurements per method" + all, methods, methods.map((m) => dist.distribution[m]), { yLabel: "measurements", xLabel: "Method" }),
    timeChart(`Measurements ${per[bucket]} (UTC)${all}`, keys.map(bucketTime),
      [{ label: "measurements", values: keys.map((k) => series.serie[k]) }], { wide: false, yLabel: "measurements" }));

  const nodes = [h("h1", {}, "Measurements"), form,
    // The API takes a reversed window and finds nothing in it: say why the
    // page is empty (found by an audit).
    b.startedAt > b.endedAt ? h("p", { class: "alert", role: "alert" },
      "The window's From is after its To: it holds no measurement.") : null,
    h("p", { class: "muted", id: "rows-note" }, "Counts, means and percentiles are over measurements. The service's own " +
      "requests (app telemetry) past a hundred a second are summary rows, one per endpoint and second, each standing " +
      "for the requests its context.count says and holding their mean elapsed; the Collections page counts them exactly."),
    charts, h("h2", {}, "Endpoints"), grouped,
    pager(groups, page, (p) => nav({ page: p }), "endpoints"),
    actionButton("Download CSV", () => download("/api/measurements/grouped/", { ...win, ...filters, sort }, "measurements-grouped.csv"))];

  if (requests) {
    const rows = requests.items || [];
    const summaries = rows.some((r) => typeof requestsOf(r) === "number");
    nodes.push(h("h2", { id: "requests", tabindex: -1 }, `Measurements of ${epMethod} ${ep}`), table({
      caption: `${count(requests.total, "measurement")}, newest first`,
      columns: [
        { key: "id", label: "Id", cell: (r) => String(r.id) },
        { key: "startedAt", label: "Started", time: true, cell: (r) => when(r.startedAt) },
        { key: "elapsed", label: summaries ? "Elapsed, mean of a summary (s)" : "Elapsed (s)", num: true, cell: (r) => fmt(r.elapsed, 4) },
        ...(summaries ? [{ key: "requests", label: "Requests", num: true, cell: (r) => fmt(requestsOf(r) ?? 1) }] : []),
        { key: "method", label: "Method", cell: (r) => r.method },
        { key: "name", label: "Name", cell: (r) => r.name },
        { key: "app", label: "App", cell: (r) => r.app },
      ],
      rows,
      onRow: (r) => nav({ id: r.id }),
      selected: (r) => String(r.id) === id,
      opens: "detail-title",
    }), pager(requests, rpage, (p) => nav({ rpage: p }), "measurements"),
    actionButton("Download CSV", () => download("/api/measurements/", { ...win, app: filters.app, name: ep, method: epMethod, sort: "endedAt,desc" }, "measurements.csv")));
  }
  if (detail) {
    const m = detail.measurement;
    nodes.push(h("section", { "aria-labelledby": "detail-title", id: "detail" },
      h("h2", { id: "detail-title", tabindex: -1 }, `Measurement ${m.id}: ${m.method} ${m.name}`),
      h("p", {}, `${when(m.startedAt)} → ${when(m.endedAt)}, ${fmt(m.elapsed, 6)} s, app ${m.app || "–"}`,
        typeof requestsOf(m) === "number" ? `; a summary of ${fmt(requestsOf(m))} requests (elapsed is their mean)` : ""),
      h("h3", {}, "args"), h("pre", {}, JSON.stringify(m.args ?? [], null, 2)),
      h("h3", {}, "kwargs"), h("pre", {}, JSON.stringify(m.kwargs ?? {}, null, 2)),
      h("h3", {}, "context"), h("pre", {}, JSON.stringify(m.context ?? {}, null, 2)),
      h("button", { type: "button", onclick: () => nav({ id: null }) }, "Close")));
  }
  return { title: ep ? `Measurements: ${ep}` : "Measurements", nodes };
}
measurements.title = "Measurements";

// requestsOf is how many requests a self-profiling summary row stands for
// (its context.count), undefined for any other measurement (another app's
// context may hold a count of its own).
function requestsOf(m) {
  const n = m.app === "telemetry" && m.context ? m.context.count : undefined;
  return typeof n === "number" ? n : undefined;
}

// pager gives Previous/Next buttons for a page of {total, size}.
// pager pages a list; of names what it pages ("endpoints"), for a screen
// reader where a page has two pagers.
export function pager(r, page, go, of = "") {
  const last = Math.max(1, Math.ceil((r.total || 0) / (r.size || 50)));
  if (last <= 1) return null;
  return h("nav", { class: "pager", "aria-label": of ? `Pages of ${of}` : "Pages" },
    h("button", { type: "button", disabled: page <= 1, onclick: () => go(page - 1) }, "Previous"),
    h("span", {}, `page ${page} of ${last}`),
    h("button", { type: "button", disabled: page >= last, onclick: () => go(page + 1) }, "Next"));
}
