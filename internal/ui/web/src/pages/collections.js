// Collections (appmetrics): open a collection, read its window's CPU, GC,
// memory and per-URL figures, restart its window, delete it.
import { call, get } from "../api.js";
import { ui } from "../paths.js";
import { barChart } from "../charts.js";
import { alertBox, bytes, fmt, h, table, when } from "../dom.js";

const base = "/appmetrics/api/v1/";
const pct = (f) => (typeof f === "number" ? (f * 100).toFixed(2) + " %" : "–");

export default async function collections(q, nav) {
  const id = q.get("id");
  const [list, coll] = await Promise.all([
    get(base + "collections"),
    id !== null ? get(base + "collections/" + encodeURIComponent(id)) : null,
  ]);
  const uris = list.collectionUris || [];
  const status = h("div", { "aria-live": "polite" });
  // act runs a write, then shows the page again (or the error in place).
  const act = async (f, after) => {
    try { after(await f()); } catch (e) { status.replaceChildren(alertBox(e)); }
  };

  const nodes = [
    h("h1", {}, "Collections"),
    h("div", { class: "toolbar" },
      h("button", {
        type: "button", class: "primary",
        onclick: () => act(() => call("POST", base + "collections"), (r) => nav({ id: (r.body.uri || "").split("/").pop() })),
      }, "Open a collection"),
      h("span", { class: "muted" }, "A collection gathers the service's own figures from when it is opened (or restarted).")),
    status,
    uris.length ? h("ul", { "aria-label": "Open collections" }, uris.map((u) => {
      const cid = u.split("/").pop();
      return h("li", {}, h("a", { href: ui("collections") + "?id=" + encodeURIComponent(cid), "aria-current": cid === id ? "true" : null }, u));
    })) : h("p", { class: "muted" }, "No collection is open."),
  ];

  if (coll) {
    const c = coll;
    const urls = c.httpUrls?.data || [];
    const sure = h("button", {
      type: "button", class: "danger", hidden: true,
      onclick: () => act(() => call("DELETE", base + "collections/" + encodeURIComponent(id)), () => nav({ id: null })),
    }, `Yes, delete collection ${c.id}`);
    nodes.push(h("section", { id: "collection", "aria-labelledby": "coll-title" },
      h("h2", { id: "coll-title" }, `Collection ${c.id}`),
      h("p", {}, `Window: ${when(c.time.data.start / 1000)} → ${when(c.time.data.end / 1000)}`),
      h("div", { class: "toolbar" },
        h("button", { type: "button", onclick: () => nav({}, { push: false }) }, "Refresh figures"),
        h("button", {
          type: "button",
          onclick: () => act(() => call("PUT", base + "collections/" + encodeURIComponent(id)), () => nav({}, { push: false })),
        }, "Restart window"),
        h("button", { type: "button", class: "danger", onclick: () => { sure.hidden = false; sure.focus(); } }, "Delete…"),
        sure),
      h("div", { class: "cards" },
        h("section", { class: "card", "aria-label": "CPU" }, h("h3", {}, "CPU"), h("dl", {},
          h("dt", {}, "process mean"), h("dd", {}, pct(c.cpu.data.processMean)),
          h("dt", {}, "process peak"), h("dd", {}, pct(c.cpu.data.processPeak)),
          h("dt", {}, "system mean"), h("dd", {}, pct(c.cpu.data.systemMean)),
          h("dt", {}, "system peak"), h("dd", {}, pct(c.cpu.data.systemPeak)))),
        h("section", { class: "card", "aria-label": "Memory" }, h("h3", {}, "Memory"), h("dl", {},
          h("dt", {}, "heap after GC, peak"), h("dd", {}, bytes(c.memory.data.usedHeapAfterGCPeak)),
          h("dt", {}, "resident, peak"), h("dd", {}, bytes(c.memory.data.usedNativePeak)))),
        h("section", { class: "card", "aria-label": "GC" }, h("h3", {}, "GC"), h("dl", {},
          h("dt", {}, "time in GC"), h("dd", {}, pct(c.gc.data.gcTime))))),
      h("h2", {}, "HTTP requests served in the window"),
      urls.length ? (() => {
        // The ten slowest, so that their labels stay readable.
        const slow = [...urls].sort((a, b) => b.averageResponseTime - a.averageResponseTime).slice(0, 10);
        return barChart("Slowest URLs: average response time (ms)", slow.map((u) => `${u.method} ${u.url}`), slow.map((u) => u.averageResponseTime), { wide: true, yLabel: "ms", xLabel: "URL" });
      })() : null,
      table({
        columns: [
          { key: "url", label: "URL", cell: (u) => u.url },
          { key: "method", label: "Method", cell: (u) => u.method },
          { key: "hits", label: "Hits", num: true },
          { key: "averageResponseTime", label: "Average (ms)", num: true, cell: (u) => fmt(u.averageResponseTime, 3) },
          { key: "longestResponseTime", label: "Longest (ms)", num: true, cell: (u) => fmt(u.longestResponseTime, 3) },
        ],
        rows: urls,
      })));
  }
  return { title: id !== null ? `Collection ${id}` : "Collections", nodes };
}
collections.title = "Collections";
