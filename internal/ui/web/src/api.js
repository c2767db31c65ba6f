// The API client: the public operations only (the same ones generated
// clients use), with only their declared query parameters. A token, once
// given, is kept for the browser session (sessionStorage) and sent as
// Authorization: Bearer.

import { api } from "./paths.js";

const TOKEN_KEY = "telemetry.token";

export class APIError extends Error {
  constructor(status, problem, path) {
    // The problem's detail, and its items' (a 422's "validation failed"
    // says nothing without them: the flows range over 744 hours, say).
    const items = (problem && problem.errors || []).map((e) => e && e.detail).filter(Boolean);
    // Each text once: a 401's item repeats its detail.
    const detail = problem && [...new Set([problem.detail || problem.title, ...items].filter(Boolean))].join(": ");
    super(`${path}: ${status}${detail ? " " + detail : ""}`);
    this.status = status;
    this.problem = problem;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// query builds "?a=1&b=2" from an object, leaving out empty values: the API
// refuses parameters it does not declare, and empty ones mean "unset".
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

// call sends one request and returns the decoded JSON (null for 204). A 401
// asks for a token (onUnauthorized) and is thrown as an APIError.
// exactKeys are the 64-bit counters of the API's answers (a flow's bytes,
// a run's request counts) whose values may pass 2^53, where a JavaScript
// number is no longer exact: exact reads those from the JSON text as
// BigInt (JSON.parse's source text access), so that they are shown as the
// API wrote them. Smaller values stay numbers.
const exactKeys = new Set(["bytes_tx", "bytes_rx", "bytes", "num_requests", "num_failures"]);

function exact(key, value, context) {
  if (typeof value === "number" && exactKeys.has(key) && !Number.isSafeInteger(value) &&
    context && typeof context.source === "string" && /^-?\d+$/.test(context.source)) {
    return BigInt(context.source);
  }
  return value;
}

// reach is fetch with a network failure (the service down or unreachable)
// said in words, naming the request ("Failed to fetch" alone said neither).
async function reach(method, path, init) {
  try {
    return await fetch(init.url, init);
  } catch (e) {
    throw new Error(`${method} ${path}: the service did not answer (${e.message || e}); is it running and reachable?`);
  }
}

export async function call(method, path, params, body) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await reach(method, path, {
    url: api(path) + query(params),
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin",
  });
  if (res.status === 204) return { status: 204, headers: res.headers, body: null };
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text, exact); } catch { data = { detail: text.slice(0, 200) }; }
  }
  if (!res.ok) {
    if (res.status === 401 && onUnauthorized) onUnauthorized(data);
    throw new APIError(res.status, data, path);
  }
  return { status: res.status, headers: res.headers, body: data };
}

export const get = async (path, params) => (await call("GET", path, params)).body;

let onUnauthorized = null;
export function whenUnauthorized(f) { onUnauthorized = f; }

// allPages reads a paginated list (size 100, the most the API gives): the
// first page tells the total, the others (up to maxPages) are asked for at
// once. Returns {items, total, complete}.
export async function allPages(path, params, maxPages = 20) {
  const first = await get(path, { ...params, page: 1, size: 100 });
  const pages = Math.min(maxPages, Math.ceil(first.total / 100));
  const rest = await Promise.all(Array.from({ length: Math.max(0, pages - 1) }, (_, i) =>
    get(path, { ...params, page: i + 2, size: 100 })));
  const items = [first, ...rest].flatMap((r) => r.items);
  return { items, total: first.total, complete: items.length >= first.total };
}

// download saves a list as CSV: the same operation and parameters with
// Accept: text/csv (every item the filters select; page and size are
// ignored), read with the token and handed to the browser as a file. A
// plain link cannot set Accept or Authorization, hence the fetch.
export async function download(path, params, filename) {
  const headers = { Accept: "text/csv" };
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const res = await reach("GET", path, { url: api(path) + query(params), headers, credentials: "same-origin" });
  if (!res.ok) {
    let data = null;
    try { data = await res.json(); } catch { data = null; }
    if (res.status === 401 && onUnauthorized) onUnauthorized(data);
    throw new APIError(res.status, data, path);
  }
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  // The browser has started the download from the blob; free it afterwards.
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
