// The time window of the measurements page: last hour, day or week, or a
// custom range, read from and written to the query string. Custom bounds are
// UTC, as datetime-local strings (YYYY-MM-DDTHH:MM).
import { field, h, select } from "../dom.js";

export const windows = [["hour", "Last hour"], ["day", "Last day"], ["week", "Last week"], ["custom", "Custom (UTC)"]];
const seconds = { hour: 3600, day: 86400, week: 7 * 86400 };

export const toLocal = (t) => new Date(t * 1000).toISOString().slice(0, 16);
// localMillis reads a datetime-local value (YYYY-MM-DDTHH:MM, UTC) as
// milliseconds since the epoch, null for anything else: Chromium parses
// ":00Z" alone as 2000-01-01, which made an empty custom bound that day
// instead of the default (found by an audit).
export function localMillis(s) {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(s)) return null;
  const t = Date.parse(s + ":00Z");
  return isNaN(t) ? null : t;
}
const fromLocal = (s) => {
  const t = localMillis(s);
  return t === null ? null : Math.floor(t / 1000);
};

// bounds gives {win, startedAt, endedAt} in epoch seconds.
export function bounds(q, def = "day") {
  const win = (seconds[q.get("window")] || q.get("window") === "custom") ? q.get("window") : def;
  const now = Math.floor(Date.now() / 1000);
  if (win === "custom") {
    const from = fromLocal(q.get("from") || "");
    const to = fromLocal(q.get("to") || "");
    return { win, startedAt: from ?? now - 86400, endedAt: to ?? now };
  }
  return { win, startedAt: now - seconds[win], endedAt: now };
}

// controls are the window select and, for a custom window, its bounds.
export function windowControls(b) {
  return [
    field("Window", select("window", windows, b.win, () => {})),
    b.win === "custom" ? [
      field("From (UTC)", h("input", { type: "datetime-local", name: "from", value: toLocal(b.startedAt), required: true })),
      field("To (UTC)", h("input", { type: "datetime-local", name: "to", value: toLocal(b.endedAt), required: true })),
    ] : null,
  ];
}
