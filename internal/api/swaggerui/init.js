// Swagger UI for the Telemetry API, served from the binary (no CDN).
//
// The document is read relative to the page (/docs), so a path prefix added
// by a reverse proxy is kept. Its servers entry is where "Try it out" sends
// requests: BASE_PATH when it is set; when it is not, the document says "/",
// and a page served under a prefix (/telemetry/docs) sends them under that
// prefix instead, where this service is (found by an audit: they went to
// the host's root).
const prefix = location.pathname.replace(/\/docs\/?$/, "");

function start(spec) {
  window.ui = SwaggerUIBundle({
    ...(spec ? { spec } : { url: "openapi.json" }),
    dom_id: "#swagger-ui",
    deepLinking: true,
    tryItOutEnabled: true,
    // The bearer token entered under Authorize survives a reload.
    persistAuthorization: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
}

if (prefix === "") {
  start(null);
} else {
  fetch("openapi.json", { headers: { Accept: "application/json" } })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(r.status))))
    .then((spec) => {
      const servers = spec.servers || [];
      if (servers.length === 1 && servers[0].url === "/") servers[0].url = prefix;
      start(spec);
    })
    .catch(() => start(null)); // Swagger UI then shows why the document did not load
}
