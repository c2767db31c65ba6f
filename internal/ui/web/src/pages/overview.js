// Overview: per resource, what arrived in the last hour and day (the totals
// of the API's own lists), with links, and the service's health (/readyz).
import { get } from "../api.js";
import { api, ui } from "../paths.js";
import { timeChart } from "../charts.js";
import { fmt, h } from "../dom.js";

const HOUR = 3600;

// settle turns a promise into its value or an Error, so one failing
// resource does not hide the others.
const settle = (p) => p.then((v) => v, (e) => (e instanceof Error ? e : new Error(String(e))));

function card(title, href, rows) {
  return h("section", { class: "card", "aria-label": title },
    h("h3", {}, h("a", { href }, title)),
    h("dl", {}, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-figure": k },
      v instanceof Error ? h("span", { class: "bad" }, "error") : fmt(v))])),
    // The reasons in words, not in a tooltip only a mouse reaches (found
    // by an audit).
    errorsOf(rows));
}

// errorsOf says why the card's figures that failed did.
function errorsOf(rows) {
  const failed = rows.filter(([, v]) => v instanceof Error);
  return failed.length ? h("p", { class: "bad small" }, failed.map(([k, v]) => `${k}: ${v.message}`).join("; ")) : null;
}

export default async function overview() {
  const now = Math.floor(Date.now() / 1000);
  const hourNow = Math.floor(now / HOUR);
  const iso = (t) => new Date(t * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  const total = (path, params) => settle(get(path, { ...params, page: 1, size: 1 }).then((r) => r.total));

  // Flows are hourly totals per key: a range's total counts (key, hour) pairs.
  const [ready, series, mHour, mDay, rHour, rDay, running, devices, metrics, colls, fHour, fDay] = await Promise.all([
    settle(fetch(api("/readyz"), { headers: { Accept: "application/json" } }).then(async (r) => ({ ok: r.ok, body: await r.json() }))),
    settle(get("/api/measurements/timeseries/", { startedAt: now - 24 * HOUR, endedAt: now, bucket: "1h" })),
    total("/api/measurements/", { startedAt: now - HOUR, endedAt: now }),
    total("/api/measurements/", { startedAt: now - 24 * HOUR, endedAt: now }),
    total("/apiv0.1/states", { from: iso(now - HOUR) }),
    total("/apiv0.1/states", { from: iso(now - 24 * HOUR) }),
    settle(get("/apiv0.1/events/isrunning").then((m) => Object.keys(m).length)),
    total("/mrd/devices"),
    total("/mrd/metrics/current"),
    settle(get("/appmetrics/api/v1/collections").then((r) => (r.collectionUris || []).length)),
    total("/flows", { from_hour: hourNow, to_hour: hourNow + 1 }),
    total("/flows", { from_hour: hourNow - 23, to_hour: hourNow + 1 }),
  ]);

  let health;
  if (ready instanceof Error) health = h("p", { class: "bad" }, "Unreachable: ", ready.message);
  else health = h("p", { id: "health" },
    h("span", { class: ready.ok ? "ok" : "bad" }, ready.ok ? "Ready" : "Not ready"),
    ` · status ${ready.body.status ?? "?"}`,
    ready.body.mode ? ` · storage ${ready.body.mode}` : "",
    ready.body.schemaVersion ? ` · schema version ${ready.body.schemaVersion}` : "",
    ready.body.detail ? ` · ${ready.body.detail}` : "");

  return {
    title: "Overview",
    nodes: [
      h("h1", {}, "Overview"),
      h("h2", {}, "Service health"), health,
      h("h2", {}, "Arrived recently"),
      h("div", { class: "cards" },
        card("Measurements", ui("measurements"), [["last hour", mHour], ["last day", mDay]]),
        card("Flows", ui("flows"), [["keys this hour", fHour], ["hourly totals, last 24 hours", fDay]]),
        card("Runs", ui("runs"), [["started last hour", rHour], ["started last day", rDay], ["running", running]]),
        card("Devices", ui("devices"), [["devices", devices], ["metric names reported now", metrics]]),
        card("Collections", ui("collections"), [["open", colls]])),
      h("p", { class: "muted" }, "Counts are the totals of the API's lists over windows ending now (UTC)."),
      h("h2", {}, "Measurements over the last day"),
      series instanceof Error ? h("p", { class: "bad" }, series.message) : (() => {
        const keys = Object.keys(series.serie || {}).sort();
        return timeChart("Measurements per hour (UTC)", keys.map((k) => Date.parse(k.replace(" ", "T") + ":00:00Z") / 1000),
          [{ label: "measurements", values: keys.map((k) => series.serie[k]) }], { yLabel: "measurements" });
      })(),
    ],
  };
}
overview.title = "Overview";
