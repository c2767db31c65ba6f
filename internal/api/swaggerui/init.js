// Swagger UI for the Telemetry API, served from the binary (no CDN).
window.ui = SwaggerUIBundle({
  // Relative to the page (/docs), so a path prefix added by a reverse proxy
  // is kept; the document's servers entry (BASE_PATH) is where "Try it out"
  // sends requests.
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  tryItOutEnabled: true,
  // The bearer token entered under Authorize survives a reload.
  persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
