// Where the dashboard and the API are. Every path is relative to where the
// page was served (internal/ui/ui.go writes index.html's links for its
// depth under /ui/), so that the dashboard works behind a reverse proxy
// that serves the service under a prefix (/telemetry/ui/ reads
// /telemetry/api/...), with or without BASE_PATH. The root is read once,
// at load, from the brand link, before any navigation moves the document's
// URL (a relative link resolves against the URL of the moment).

const brand = document.querySelector("header a.brand");

// uiRoot is the dashboard's root path, ending in "/" ("/ui/", "/telemetry/ui/").
export const uiRoot = new URL(brand ? brand.getAttribute("href") : "/ui/", location.href).pathname;

// serviceRoot is the service's root path, ending in "/" ("/", "/telemetry/").
export const serviceRoot = uiRoot.replace(/ui\/$/, "");

// ui is a dashboard page's path: ui("flows") is "/telemetry/ui/flows" under
// that prefix.
export function ui(page) {
  return uiRoot + page;
}

// api is an API path under the service's root: api("/flows") is
// "/telemetry/flows" under that prefix.
export function api(path) {
  return serviceRoot + path.replace(/^\//, "");
}

// absolute makes the static page's relative links absolute, so that they
// keep their target after the History API changes the document's URL.
export function absoluteLinks(root = document) {
  for (const a of root.querySelectorAll("a[href]")) {
    const href = a.getAttribute("href");
    if (href.startsWith("./") || href.startsWith("../")) a.setAttribute("href", new URL(href, location.href).pathname);
  }
}
