// A TypeScript client of the Telemetry API: types generated from
// openapi.yaml by openapi-typescript (gen/api.d.ts), calls made with
// openapi-fetch. internal/apiclient/ts_test.go type-checks it (tsc --strict),
// runs it with node against a live test server, and reads the JSON line it
// prints. Each check is one function; add yours to `checks`.
import createClient from "openapi-fetch";
import type { paths, components } from "./gen/api.js";

// Node's globals, without pulling in @types/node.
declare const process: { argv: string[]; exitCode?: number };

// JSON answers only: the list operations also answer text/csv and
// application/x-ndjson (exports), which this client does not ask for.
// Naming both JSON media types makes data the page and error the Problem
// (README, "Generated clients").
type Media = "application/json" | "application/problem+json";
type Client = ReturnType<typeof createClient<paths, Media>>;
type Problem = components["schemas"]["Problem"];

function check(ok: boolean, what: string, got?: unknown): void {
  if (!ok) throw new Error(`${what}: got ${JSON.stringify(got)}`);
}

// A one-hour window finds a measurement posted 10 s earlier: epoch seconds
// are doubles end to end (a float32 parameter is off by up to 128 s).
async function measurementWindow(c: Client): Promise<string> {
  const now = Date.now() / 1000;
  const name = `/ts-window-${Math.floor(now)}`;
  const post = await c.POST("/api/measurements", {
    body: [{ name, method: "GET", startedAt: now - 10, endedAt: now - 9.5 }],
  });
  check(post.response.status === 201 && post.data !== undefined && post.data.ids.length === 1, "post", post.error);
  const list = await c.GET("/api/measurements/", {
    params: { query: { startedAt: now - 3600, endedAt: now, name } },
  });
  const items = list.data?.items ?? [];
  check(items.length === 1 && items[0].name === name, "window query", list.data ?? list.error);
  const startedAt: number = items[0].startedAt; // number, not number | null
  check(Math.abs(startedAt - (now - 10)) < 0.001, "startedAt kept to the microsecond", startedAt);
  return `found ${name}`;
}

// An unknown query parameter is a 422 whose item is titled unknown. The
// generated types refuse app at compile time; the cast sends it anyway.
async function unknownParameter(c: Client): Promise<string> {
  const res = await c.GET("/flows", {
    params: { query: { hour: 1, app: "web" } as { hour: number } },
  });
  const p: Problem | undefined = res.error;
  const item = p?.errors?.[0];
  check(res.response.status === 422 && item?.title === "unknown" && item?.source === "app", "unknown parameter", p);
  return "422 unknown app";
}

// Flows round trip: arrays are arrays (never null) in the generated types.
async function flows(c: Client): Promise<string> {
  const post = await c.POST("/flows", {
    body: [{ src_app: "foo", dest_app: "bar", vpc_id: "vpc-0", bytes_tx: 100, bytes_rx: 300, hour: 7 }],
  });
  check(post.response.status === 201, "post flows", post.error);
  const page = await c.GET("/flows", { params: { query: { hour: 7 } } });
  const items = page.data?.items ?? [];
  check(items.length === 1 && items[0].bytes_rx === 300, "list flows", page.data ?? page.error);
  return `${items.length} flow`;
}

// The parameters flask-profiler's dashboard sends stay accepted though the
// document hides them: limit pages as in flask-profiler.
async function legacyLimit(c: Client): Promise<string> {
  const now = Date.now() / 1000;
  const name = `/ts-limit-${Math.floor(now)}`;
  const body = [0, 1, 2].map((i) => ({ name, method: "GET" as const, startedAt: now - 60 + i, endedAt: now - 59 + i }));
  check((await c.POST("/api/measurements", { body })).response.status === 201, "post");
  const list = await c.GET("/api/measurements/", {
    params: { query: { name, limit: 1 } as { name: string } },
  });
  check(list.data?.items.length === 1 && list.data.total === 3, "limit=1", list.data ?? list.error);
  return "limit=1 gives 1 of 3";
}

// Hours are integers past 2^24 and byte counts up to 2^53 without loss;
// an empty page's items is an array; a run registered with a numeric epoch
// startedAt (a schema now) reads back as that instant.
async function exactTypes(c: Client): Promise<string> {
  const hour = Math.floor(Date.now() / 3600000) - 1;
  const big = 2 ** 53;
  const post = await c.POST("/flows", {
    body: [{ src_app: "ts-exact", dest_app: "b", vpc_id: "v", bytes_tx: big, bytes_rx: 1, hour }],
  });
  check(post.response.status === 201, "post flows", post.error);
  const page = await c.GET("/flows", { params: { query: { hour, src_app: "ts-exact" } } });
  const item = page.data?.items[0];
  check(item?.hour === hour && item.bytes_tx === big, "hour and bytes kept", page.data ?? page.error);
  const empty = await c.GET("/flows", { params: { query: { hour: hour + 2 } } });
  check(Array.isArray(empty.data?.items) && empty.data.items.length === 0, "empty items is []", empty.data);

  const reg = await c.POST("/apiv0.1/events/register", {
    body: { hostname: "ts-locust", startedAt: 1444780800.25, measurement: { fields: {} } },
  });
  check(reg.data !== undefined, "register", reg.error);
  const run = await c.GET("/apiv0.1/events/{uuid}", { params: { path: { uuid: reg.data!.uuid } } });
  check(run.data !== undefined && Date.parse(run.data.startedAt) === 1444780800250, "startedAt", run.data ?? run.error);
  return `hour ${hour}, bytes 2^53, startedAt ${run.data!.startedAt}`;
}

// 150 measurements of one app, more than a page, for the exports.
async function exportFixture(c: Client, kind: string): Promise<{ app: string; from: number; now: number }> {
  const now = Date.now() / 1000;
  const app = `ts-export-${kind}-${Math.floor(now)}`;
  const body = Array.from({ length: 150 }, (_, i) => ({
    name: "/api/items/<id>", method: "GET" as const, app, startedAt: now - 600 + i, endedAt: now - 600 + i + 0.25,
    kwargs: { id: i, q: 'a "quoted", word' },
  }));
  const post = await c.POST("/api/measurements", { body });
  check(post.response.status === 201, "post measurements", post.error);
  return { app, from: now - 3600, now };
}

// The CSV export of a list, read as text: a header row, then every row
// (no page limit), RFC 4180 quoting of the JSON cells.
async function exportCsv(c: Client): Promise<string> {
  const { app, from } = await exportFixture(c, "csv");
  const res = await c.GET("/api/measurements/", {
    params: { query: { app, startedAt: from, sort: "startedAt,asc" } },
    headers: { Accept: "text/csv" },
    parseAs: "text",
  });
  check(res.response.status === 200 && (res.response.headers.get("Content-Type") ?? "").startsWith("text/csv"),
    "CSV status", res.error);
  const text: string = res.data ?? "";
  const lines = text.split("\r\n");
  check(lines[0] === "id,name,method,startedAt,endedAt,elapsed,args,kwargs,context,app", "CSV header", lines[0]);
  check(lines.length === 152 && lines[151] === "", "150 CSV rows and a final CRLF", lines.length);
  // kwargs is one quoted cell, its quotes doubled (jsonb orders the keys).
  check(lines[1].includes(',/api/items/<id>,GET,') && lines[1].includes('""id"":0') &&
    lines[1].includes(',"{""q"":""a \\""quoted\\"", word""'), "CSV row", lines[1]);
  return `${lines.length - 2} rows`;
}

// The NDJSON export read as a stream, line by line as it arrives.
async function exportNdjson(c: Client): Promise<string> {
  const { app, from } = await exportFixture(c, "ndjson");
  const res = await c.GET("/api/measurements/", {
    params: { query: { app, startedAt: from, sort: "startedAt,asc" } },
    headers: { Accept: "application/x-ndjson" },
    parseAs: "stream",
  });
  check(res.response.status === 200 && res.data != null, "NDJSON status", res.error);
  const reader = res.data!.pipeThrough(new TextDecoderStream()).getReader();
  type Measurement = components["schemas"]["Measurement"];
  let rest = "";
  const items: Measurement[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    rest += value;
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      items.push(JSON.parse(rest.slice(0, nl)) as Measurement);
      rest = rest.slice(nl + 1);
    }
  }
  check(rest === "" && items.length === 150, "150 NDJSON lines", items.length);
  check(items.every((m, i) => m.kwargs.id === i && m.app === app && m.name === "/api/items/<id>"), "NDJSON items", items[0]);
  return `${items.length} lines`;
}

// Flows over a range of hours: a filter, the top talkers first, the
// totals per key, and a reversed range refused naming to_hour.
async function flowsFilters(c: Client): Promise<string> {
  const post = await c.POST("/flows", {
    body: [
      { src_app: "web", dest_app: "db", vpc_id: "vpc-0", bytes_tx: 10, bytes_rx: 20, hour: 100 },
      { src_app: "web", dest_app: "cache", vpc_id: "vpc-0", bytes_tx: 500, bytes_rx: 500, hour: 101 },
      { src_app: "batch", dest_app: "db", vpc_id: "vpc-1", bytes_tx: 1, bytes_rx: 1, hour: 101 },
      { src_app: "web", dest_app: "db", vpc_id: "vpc-1", bytes_tx: 7, bytes_rx: 7, hour: 102 },
    ],
  });
  check(post.response.status === 201, "post flows", post.error);
  const top = await c.GET("/flows", {
    params: { query: { from_hour: 100, to_hour: 102, src_app: "web", sort: "bytes,desc" } },
  });
  const items = top.data?.items ?? [];
  check(top.data?.total === 2 && items[0].dest_app === "cache" && items[1].hour === 100, "top talkers", top.data ?? top.error);
  const vpc = await c.GET("/flows", { params: { query: { from_hour: 100, to_hour: 103, vpc_id: "vpc-1", dest_app: "db" } } });
  check(vpc.data?.total === 2, "vpc_id and dest_app filters", vpc.data ?? vpc.error);
  const sum = await c.GET("/flows/summary", { params: { query: { from_hour: 100, to_hour: 103, by: "dest_app" } } });
  const totals = sum.data?.items ?? [];
  check(totals[0]?.key === "cache" && totals[0].bytes === 1000 && totals[1]?.bytes === 46, "summary", sum.data ?? sum.error);
  const bad = await c.GET("/flows/summary", { params: { query: { from_hour: 103, to_hour: 100, by: "src_app" } } });
  const p: Problem | undefined = bad.error;
  check(bad.response.status === 422 && p?.errors?.[0]?.source === "to_hour", "reversed range", p);
  return `top ${items[0].bytes_tx + items[0].bytes_rx} bytes, ${totals.length} destinations`;
}

// Grouped percentiles (within the documented 2.44 %), every timeseries
// bucket width, and a device metric's history buckets with their p95.
async function percentiles(c: Client): Promise<string> {
  const start = 1444780800 + 86400 * 3; // a whole UTC day, apart from the other checks
  const body = Array.from({ length: 100 }, (_, i) => ({
    name: "/ts-p", method: "GET" as const, startedAt: start + (i + 1) * 60, endedAt: start + (i + 1) * 60 + (i + 1) / 100,
    elapsed: (i + 1) / 100,
  }));
  check((await c.POST("/api/measurements", { body })).response.status === 201, "post");
  const window = { startedAt: start, endedAt: start + 86400 };
  const g = await c.GET("/api/measurements/grouped/", { params: { query: { ...window, name: "/ts-p" } } });
  const it = g.data?.items[0];
  const near = (got: number | undefined, exact: number) => got !== undefined && Math.abs(got - exact) <= exact * 0.0244;
  check(near(it?.p50Elapsed, 0.5) && near(it?.p95Elapsed, 0.95) && near(it?.p99Elapsed, 0.99), "p50/p95/p99", it);
  const counts: string[] = [];
  const buckets = [["5m", 288], ["15m", 96], ["1h", 24], ["6h", 4], ["1d", 1]] as const;
  for (const [bucket, n] of buckets) {
    const ts = await c.GET("/api/measurements/timeseries/", { params: { query: { ...window, bucket } } });
    const serie = ts.data?.serie ?? {};
    const keys = Object.keys(serie).length;
    const total = Object.values(serie).reduce((a, b) => a + b, 0);
    check(keys >= n && keys <= n + 1 && total === 100, `bucket ${bucket}`, ts.data ?? ts.error);
    counts.push(`${bucket}:${keys}`);
  }

  const tok = await c.POST("/mrd/token", { body: {} });
  check(tok.data !== undefined, "token", tok.error);
  const headers = { Authorization: `Bearer ${tok.data!.token}` };
  const dev = await c.POST("/mrd/devices", { body: { id: "ts-node", name: "TS node" }, headers });
  check(dev.response.status === 201, "device", dev.error);
  for (let v = 1; v <= 20; v++) {
    const put = await c.PUT("/mrd/{device_id}/metrics", {
      params: { path: { device_id: "ts-node" } },
      body: { name: "cpu_temp", value: v, units: "C", type: "float", slope: "both", ttl: 60 },
      headers,
    });
    check(put.response.status === 200, `report ${v}`, put.error);
  }
  const from = new Date(Date.now() - 3600000).toISOString();
  const hist = await c.GET("/mrd/devices/{id}/metrics/{name}/history", {
    params: { path: { id: "ts-node", name: "cpu_temp" }, query: { from, bucket: "24h" } },
    headers,
  });
  // An item is a raw point or a bucket (HistoryPoint is their union): once
  // narrowed, every field of its shape is there (number, not
  // number | undefined), which tsc --strict checks here.
  type Bucket = components["schemas"]["HistoryBucket"];
  const hb: Bucket[] = (hist.data?.items ?? []).filter((b): b is Bucket => "p95" in b);
  const count: number = hb.reduce((a, b) => a + b.count, 0);
  check(hb.length >= 1 && hb.length === hist.data?.items.length && count === 20, "history buckets with p95",
    hist.data ?? hist.error);
  check(hb.length > 1 || hb[0].p95 === 19, "p95 of 1..20 is 19", hb);
  const raw = await c.GET("/mrd/devices/{id}/metrics/{name}/history", {
    params: { path: { id: "ts-node", name: "cpu_temp" }, query: { from } },
    headers,
  });
  const values: number[] = (raw.data?.items ?? []).map((p) => ("value" in p ? p.value : NaN));
  check(values.length === 20 && values.every((v, i) => v === i + 1), "raw points", raw.data ?? raw.error);
  return `grouped p95 ${it!.p95Elapsed}, ${counts.join(" ")}, history p95 ${hb[hb.length - 1].p95}`;
}

// Behind a reverse proxy serving the API under /telemetry (BASE_PATH): a
// client whose base URL has the prefix works, the pagination links and
// the served document's server carry it.
async function basePath(_: Client): Promise<string> {
  const base = `${process.argv[2]}/telemetry`;
  const c = createClient<paths, Media>({ baseUrl: base });
  const post = await c.POST("/flows", {
    body: ["a", "b", "c"].map((d) => ({ src_app: "bp", dest_app: d, vpc_id: "v", bytes_tx: 1, bytes_rx: 1, hour: 300 })),
  });
  check(post.response.status === 201, "post through the prefix", post.error);
  const page = await c.GET("/flows", { params: { query: { hour: 300, size: 1 } } });
  const link = page.response.headers.get("Link") ?? "";
  const next = /<([^>]*)>;\s*rel="next"/.exec(link)?.[1] ?? "";
  check(page.data?.total === 3 && next.startsWith("/telemetry/flows?"), "Link under the prefix", link);
  const second = await fetch(new URL(next, base));
  const body = (await second.json()) as components["schemas"]["PageFlow"];
  check(body.page === 2 && body.items.length === 1, "following next", body);
  const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { servers?: { url: string }[] };
  check(doc.servers?.[0]?.url === "/telemetry", "document servers", doc.servers);
  return `next ${next}`;
}

const checks: Record<string, (c: Client) => Promise<string>> = {
  measurementWindow, unknownParameter, flows, legacyLimit, exactTypes, exportCsv, exportNdjson, flowsFilters,
  percentiles, basePath,
};

async function main(): Promise<void> {
  const client = createClient<paths, Media>({ baseUrl: process.argv[2] });
  const results: Record<string, string> = {};
  for (const [name, run] of Object.entries(checks)) {
    results[name] = await run(client);
  }
  console.log(JSON.stringify(results));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
