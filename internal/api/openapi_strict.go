package api

import "github.com/danielgtaylor/huma/v2"

// What keeps the document exact for generated clients and linters
// (Redocly's recommended ruleset, internal/apiclient/ts/redocly.yaml): every
// operation states its security, and the document names its server.

// explicitSecurity runs for every operation as it is added: one that
// needs no token (the probes, /mrd/status, POST /mrd/token) says so with an
// empty requirement, rather than leaving security unstated.
func explicitSecurity(_ *huma.OpenAPI, op *huma.Operation) {
	if len(op.Security) == 0 {
		op.Security = []map[string][]string{{}}
	}
}

// documentServer sets the document's one server: BASE_PATH, the prefix a
// reverse proxy serves the API under, or / (the document's own origin).
// Swagger UI sends its requests there; generated clients take it as their
// default base.
func documentServer(oapi *huma.OpenAPI, basePath string) {
	url := basePath
	if url == "" {
		url = "/"
	}
	oapi.Servers = []*huma.Server{{URL: url, Description: "This service (BASE_PATH when it is served under a prefix)."}}
}
