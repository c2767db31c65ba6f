// Bundles the dashboard into ../dist (run by `make ui`). The bundle records
// the SHA-256 of its sources (dist/SOURCES.sha256, computed as
// internal/ui/ui_test.go does), so a test tells when dist is stale.
import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const out = process.argv[2] || join(here, "..", "dist");

// Every file of web/ except node_modules, by path, as bytes.
function sources(dir = here, acc = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== "node_modules") sources(p, acc);
    } else acc.push(relative(here, p).split("\\").join("/"));
  }
  return acc.sort();
}
const h = createHash("sha256");
for (const f of sources()) {
  h.update(f + "\0");
  h.update(readFileSync(join(here, f)));
  h.update("\0");
}
const digest = h.digest("hex");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await esbuild.build({
  entryPoints: { app: join(here, "src/main.js"), style: join(here, "src/app.css") },
  outdir: out,
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020"],
  legalComments: "eof",
  banner: { js: `/* telemetry dashboard, sources sha256 ${digest} */`, css: `/* telemetry dashboard, sources sha256 ${digest} */` },
  logLevel: "warning",
});
copyFileSync(join(here, "src/index.html"), join(out, "index.html"));
copyFileSync(join(here, "node_modules/uplot/LICENSE"), join(out, "LICENSE.uplot"));
writeFileSync(join(out, "SOURCES.sha256"), digest + "\n");
console.log(`wrote ${out} (sources sha256 ${digest})`);
