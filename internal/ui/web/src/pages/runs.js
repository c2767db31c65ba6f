// Runs: load-test runs (state filter), newest first; one run's requestStats
// as a table and a chart.
import { get } from "../api.js";
import { barChart } from "../charts.js";
import { count, field, fmt, h, select, table, when } from "../dom.js";
import { pager } from "./measurements.js";

const states = [["", "Any state"], ["running", "Running"], ["committed", "Committed"]];

export default async function runs(q, nav) {
  const state = ["running", "committed"].includes(q.get("state")) ? q.get("state") : "";
  const page = Math.max(1, parseInt(q.get("page") || "1", 10) || 1);
  const uuid = q.get("run");
  const [list, run] = await Promise.all([
    get("/apiv0.1/states", { state, page, size: 50 }),
    uuid ? get("/apiv0.1/events/" + encodeURIComponent(uuid)) : null,
  ]);

  const nodes = [
    h("h1", {}, "Load-test runs"),
    h("form", { class: "filters", "aria-label": "Filters", onsubmit: (e) => e.preventDefault() },
      field("State", select("state", states, state, (v) => nav({ state: v, page: null })))),
    table({
      caption: `${count(list.total, "run")}, newest first`,
      columns: [
        { key: "uuid", label: "Run", cell: (r) => r.uuid },
        { key: "host", label: "Host", cell: (r) => r.host },
        { key: "targetHost", label: "Target", cell: (r) => r.targetHost ?? "–" },
        { key: "state", label: "State", cell: (r) => r.state },
        { key: "startedAt", label: "Started", time: true, cell: (r) => when(r.startedAt) },
        { key: "duration", label: "Duration (s)", num: true },
        { key: "clients", label: "Clients", num: true },
      ],
      rows: list.items || [],
      onRow: (r) => nav({ run: r.uuid }),
      selected: (r) => r.uuid === uuid,
      opens: "run-title",
    }),
    pager(list, page, (p) => nav({ page: p }), "runs"),
  ];

  if (run) {
    const stats = Array.isArray(run.requestStats?.stats) ? run.requestStats.stats : [];
    const label = (s) => `${s.method ?? ""} ${s.name ?? ""}`.trim();
    // Locust's total row, named "Aggregated" by recent versions and "Total"
    // by older ones, has no method: not an endpoint.
    const endpoints = stats.filter((s) => !["Total", "Aggregated"].includes(s.name) || s.method);
    nodes.push(h("section", { id: "run", "aria-labelledby": "run-title" },
      h("h2", { id: "run-title", tabindex: -1 }, `Run ${run.uuid} on ${run.host}`),
      h("p", {}, `${run.state}, ${when(run.startedAt)} → ${when(run.endedAt)}`,
        run.requestStats?.total_rps !== undefined ? `, ${fmt(run.requestStats.total_rps)} requests/s in total` : ""),
      stats.length ? [
        table({
          caption: "Request statistics per endpoint (response times in ms)",
          columns: [
            { key: "name", label: "Endpoint", cell: label },
            { key: "num_requests", label: "Requests", num: true },
            { key: "num_failures", label: "Failures", num: true },
            { key: "median_response_time", label: "Median", num: true },
            { key: "avg_response_time", label: "Average", num: true },
            { key: "min_response_time", label: "Min", num: true },
            { key: "max_response_time", label: "Max", num: true },
            { key: "current_rps", label: "Requests/s", num: true },
          ],
          rows: stats,
        }),
        barChart("Average response time per endpoint (ms)", endpoints.map(label),
          endpoints.map((s) => (typeof s.avg_response_time === "number" ? s.avg_response_time : null)), { wide: true, yLabel: "ms", xLabel: "Endpoint" }),
      ] : h("p", { class: "muted" }, run.state === "running" ? "Still running: no statistics yet." : "No request statistics in the commit.")));
  }
  return { title: uuid ? `Run ${uuid}` : "Runs", nodes };
}
runs.title = "Runs";
