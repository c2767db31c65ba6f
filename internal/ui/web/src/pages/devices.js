// Devices: the registered devices, one device's current metrics (the API
// applies each metric's TTL), and a metric's history chart with a bucket
// choice.
import { allPages, get } from "../api.js";
import { timeChart } from "../charts.js";
import { count, field, fmt, h, select, table, when } from "../dom.js";
import { pager } from "./measurements.js";

const buckets = [["", "Raw points"], ["1m", "1 minute"], ["5m", "5 minutes"], ["1h", "1 hour"], ["1d", "1 day"]];
const spans = [["hour", "Last hour"], ["day", "Last day"], ["week", "Last week"]];
const spanSeconds = { hour: 3600, day: 86400, week: 7 * 86400 };

export default async function devices(q, nav) {
  const page = Math.max(1, parseInt(q.get("page") || "1", 10) || 1);
  // The device's current metrics in pages of 100 (the API's largest): a
  // device may report more names than one page (an audit found the rest
  // dropped without a word).
  const cpage = Math.max(1, parseInt(q.get("cpage") || "1", 10) || 1);
  const device = q.get("device");
  const metric = q.get("metric");
  // "raw" in the URL is the empty bucket (raw points); unset is 5 minutes.
  const bq = q.get("bucket");
  const bucket = bq === "raw" ? "" : buckets.some(([b]) => b && b === bq) ? bq : "5m";
  const span = spanSeconds[q.get("span")] ? q.get("span") : "day";
  const now = Date.now();
  const iso = (ms) => new Date(ms).toISOString();

  const [list, current, history] = await Promise.all([
    get("/mrd/devices", { page, size: 50 }),
    device ? get(`/mrd/devices/${encodeURIComponent(device)}/metrics`, { page: cpage, size: 100 }) : null,
    device && metric ? allPages(`/mrd/devices/${encodeURIComponent(device)}/metrics/${encodeURIComponent(metric)}/history`,
      { from: iso(now - spanSeconds[span] * 1000), to: iso(now), bucket }, 10) : null,
  ]);

  const nodes = [h("h1", {}, "Devices"), table({
    caption: count(list.total, "device"),
    columns: [
      { key: "id", label: "Id", cell: (r) => r.id },
      { key: "name", label: "Name", cell: (r) => r.name },
      { key: "createdAt", label: "Registered", time: true, cell: (r) => when(r.createdAt) },
      { key: "updatedAt", label: "Updated", time: true, cell: (r) => when(r.updatedAt) },
    ],
    rows: list.items || [],
    onRow: (r) => nav({ device: r.id, metric: null, cpage: null }),
    selected: (r) => r.id === device,
    opens: "current",
  }), pager(list, page, (p) => nav({ page: p }), "devices")];

  if (current) {
    nodes.push(h("h2", { id: "current", tabindex: -1 }, `Current metrics of ${device}`), table({
      caption: `${count(current.total, "metric")}: the latest value of each whose TTL has not run out`,
      columns: [
        { key: "name", label: "Metric", cell: (r) => r.name },
        { key: "value", label: "Value", num: true, cell: (r) => fmt(r.value) },
        { key: "units", label: "Units", cell: (r) => r.units },
        { key: "type", label: "Type", cell: (r) => r.type },
        { key: "slope", label: "Slope", cell: (r) => r.slope },
        { key: "ttl", label: "TTL (s)", num: true },
        { key: "reportedAt", label: "Reported", time: true, cell: (r) => when(r.reportedAt) },
      ],
      rows: current.items || [],
      onRow: (r) => nav({ metric: r.name }),
      selected: (r) => r.name === metric,
      opens: "history",
    }), pager(current, cpage, (p) => nav({ cpage: p }), "current metrics"));
  }
  if (history) {
    const pts = history.items;
    const xs = pts.map((p) => Date.parse(p.time) / 1000);
    const series = bucket
      ? [{ label: "avg", values: pts.map((p) => p.avg) }, { label: "min", values: pts.map((p) => p.min) }, { label: "max", values: pts.map((p) => p.max) }]
      : [{ label: metric, values: pts.map((p) => p.value) }];
    nodes.push(h("h2", { id: "history", tabindex: -1 }, `History of ${metric}`),
      h("form", { class: "toolbar", "aria-label": "History options", onsubmit: (e) => e.preventDefault() },
        field("Period", select("span", spans, span, (v) => nav({ span: v }))),
        field("Bucket", select("bucket", buckets, bucket, (v) => nav({ bucket: v || "raw" })))),
      timeChart(`${metric} (${bucket ? "per " + bucket : "raw"}, UTC)`, xs, series),
      history.complete ? null : h("p", { class: "muted" }, `Showing the first ${pts.length} of ${history.total} points; choose a larger bucket.`));
  }
  return { title: device ? `Device ${device}` : "Devices", nodes };
}
devices.title = "Devices";
