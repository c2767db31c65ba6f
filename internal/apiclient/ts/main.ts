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
type Client = ReturnType<typeof createClient<paths, "application/json">>;
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
  const p = res.error as Problem | undefined;
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

const checks: Record<string, (c: Client) => Promise<string>> = { measurementWindow, unknownParameter, flows };

async function main(): Promise<void> {
  const client = createClient<paths, "application/json">({ baseUrl: process.argv[2] });
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
