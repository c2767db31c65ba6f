// Charts, drawn by uPlot on a canvas. Each chart's container says how many
// points it drew (data-points), which the browser tests read.
import uPlot from "uplot";
import { fmt, h, when } from "./dom.js";

const palette = ["#1f5fbf", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0b7285"];

function width(wide) {
  const main = document.getElementById("page");
  const avail = Math.max(320, (main ? main.clientWidth : 900) - 40);
  return wide ? Math.min(1100, avail) : Math.min(540, avail);
}

// drawn are the charts on the page with their width rule: a resize of the
// window sizes them again (they kept the width they were drawn at; found
// by an audit), once it has settled.
const drawn = new Set();
let resizing = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizing);
  resizing = setTimeout(() => {
    for (const c of drawn) {
      if (!c.u.root.isConnected) {
        drawn.delete(c);
        c.u.destroy();
        continue;
      }
      c.u.setSize({ width: width(c.wide), height: 240 });
    }
  }, 150);
});

function keep(u, wide) {
  drawn.add({ u, wide });
  return u;
}

function frame(title, points) {
  return h("figure", { class: "chart", "data-chart": title, "data-points": points, "aria-label": title },
    h("figcaption", { class: "muted" }, title));
}

// dataOf is a chart's text alternative: its points as a table, folded
// under "Data" (a canvas says nothing to a screen reader, and a device's
// history or the timeseries is nowhere else on the page; found by an
// audit). heads are the columns' names, rows their cells.
function dataOf(title, heads, rows) {
  return h("details", { class: "chart-data" }, h("summary", {}, "Data"),
    h("table", { class: "points" }, h("caption", { class: "muted" }, title),
      h("thead", {}, h("tr", {}, heads.map((c, i) => h("th", { scope: "col", class: i ? "num" : null }, c)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => h("td", { class: i ? "num" : null }, c)))))));
}

const utc = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");

// timeChart draws series over time: xs in epoch seconds, series
// [{label, values}]. Times are shown in UTC, like the tables.
export function timeChart(title, xs, series, { wide = true, yLabel = "" } = {}) {
  const fig = frame(title, xs.length);
  keep(new uPlot({
    width: width(wide), height: 240, tzDate: utc,
    // One point alone would sit on a zero-width scale: centre it in an hour.
    scales: { x: xs.length === 1 ? { time: true, auto: false, range: [xs[0] - 1800, xs[0] + 1800] } : { time: true } },
    series: [{}, ...series.map((s, i) => ({
      label: s.label, stroke: palette[i % palette.length], width: 2,
      fill: series.length === 1 ? "rgba(31,95,191,0.08)" : undefined, points: { show: xs.length < 60, fill: palette[i % palette.length] },
    }))],
    axes: [{}, { label: yLabel, size: 60, values: (u, splits) => splits.map(compact) }],
  }, [xs, ...series.map((s) => s.values)], fig), wide);
  fig.append(dataOf(title, ["Time (UTC)", ...series.map((s) => s.label)],
    xs.map((x, i) => [when(x), ...series.map((s) => fmt(s.values[i]))])));
  return fig;
}

// barChart draws one bar per category: labels and their values.
// xLabel names the categories (the first column of its "Data" table).
export function barChart(title, labels, values, { wide = false, yLabel = "", xLabel = "Category" } = {}) {
  const fig = frame(title, labels.length);
  const xs = labels.map((_, i) => i);
  keep(new uPlot({
    width: width(wide), height: 240,
    // Bars start at zero, or their heights would mislead.
    scales: {
      x: { time: false, range: () => [-0.5, Math.max(0.5, labels.length - 0.5)] },
      y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
    },
    series: [
      { label: "", value: (u, i) => (i === null ? "" : labels[i] ?? "") },
      { label: yLabel || title, fill: palette[0], stroke: palette[0], width: 0, paths: uPlot.paths.bars({ size: [0.6, 80] }), points: { show: false } },
    ],
    axes: [
      { splits: () => xs, values: (u, splits) => splits.map((i) => shorten(labels[i] ?? "")), gap: 4, size: 40 },
      { label: yLabel, size: 60, values: (u, splits) => splits.map(compact) },
    ],
    legend: { show: false },
  }, [xs, values], fig), wide);
  fig.append(dataOf(title, [xLabel, yLabel || title], labels.map((l, i) => [l, fmt(values[i])])));
  return fig;
}

// compact writes an axis value in a few characters (1.2k, 34M, 5.1G): the
// 60-pixel axis cut the leading digits of billions, so that a flows chart
// read "000,000,000" (found by an audit).
export function compact(v) {
  const a = Math.abs(v);
  for (const [d, s] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
    if (a >= d) return +(v / d).toFixed(a / d < 10 ? 1 : 0) + s;
  }
  return String(+v.toFixed(3));
}

function shorten(s) {
  return s.length > 16 ? s.slice(0, 15) + "…" : s;
}
