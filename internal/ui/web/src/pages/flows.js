// Flows: one hour's totals per (src_app, dest_app, vpc_id), largest first.
// The API lists an hour's keys in key order, so the page reads them all
// (up to a cap) and sorts by bytes here.
import { allPages } from "../api.js";
import { barChart } from "../charts.js";
import { bytes, count, field, fmt, h, table, when } from "../dom.js";

const MAX_PAGES = 50; // 5,000 keys

export default async function flows(q, nav) {
  const current = Math.floor(Date.now() / 3600000);
  const parsed = parseInt(q.get("hour") || "", 10);
  const hour = Number.isFinite(parsed) && parsed >= 0 ? parsed : current;
  const r = await allPages("/flows", { hour }, MAX_PAGES);
  const rows = r.items.map((f) => ({ ...f, total: f.bytes_tx + f.bytes_rx })).sort((a, b) => b.total - a.total);
  const tx = rows.reduce((a, f) => a + f.bytes_tx, 0);
  const rx = rows.reduce((a, f) => a + f.bytes_rx, 0);
  const top = rows.slice(0, 12);

  return {
    title: `Flows, hour ${hour}`,
    nodes: [
      h("h1", {}, "Flows"),
      h("form", {
        class: "filters", "aria-label": "Hour",
        onsubmit: (e) => { e.preventDefault(); nav({ hour: new FormData(e.target).get("hour") }); },
      },
      field("Hour (since the Unix epoch)", h("input", { type: "number", name: "hour", min: 0, value: hour, required: true })),
      h("button", { type: "submit", class: "primary" }, "Show"),
      h("button", { type: "button", onclick: () => nav({ hour: hour - 1 }) }, "Previous hour"),
      h("button", { type: "button", onclick: () => nav({ hour: hour + 1 }) }, "Next hour"),
      h("button", { type: "button", onclick: () => nav({ hour: null }) }, "Current hour")),
      h("p", { id: "flows-summary" }, `${when(hour * 3600)} to ${when((hour + 1) * 3600)}: ${count(r.total, "key")}, `,
        `${bytes(tx)} sent (${fmt(tx)} B), ${bytes(rx)} received (${fmt(rx)} B)`),
      r.complete ? null : h("p", { class: "muted" }, `Only the first ${fmt(rows.length)} keys (in key order) were read and sorted.`),
      top.length ? barChart("Largest keys (bytes sent + received)", top.map((f) => `${f.src_app}→${f.dest_app}`), top.map((f) => f.total), { wide: true, yLabel: "bytes" }) : null,
      table({
        caption: "Totals per key, largest first",
        columns: [
          { key: "src_app", label: "Source app", cell: (f) => f.src_app },
          { key: "dest_app", label: "Destination app", cell: (f) => f.dest_app },
          { key: "vpc_id", label: "VPC", cell: (f) => f.vpc_id },
          { key: "bytes_tx", label: "Bytes sent", num: true },
          { key: "bytes_rx", label: "Bytes received", num: true },
          { key: "total", label: "Total", num: true },
        ],
        rows,
      }),
    ],
  };
}
flows.title = "Flows";
