package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

// route is one operation of the API: its method, path and operation id, the
// aliases that serve it too (paths the seeds' clients use: a trailing
// slash, /api/v1), and its handler. What the document says of it
// (summary, description, tags, errors, middlewares) is in its resource's
// file, under the same operation id.
type route struct {
	method, path, id string
	aliases          []alias
	register         func(huma.API, huma.Operation)
}

// alias is another path (and operation id) of a route.
type alias struct{ id, path string }

// handle adapts a typed huma handler to the table.
func handle[I, O any](h func(context.Context, *I) (*O, error)) func(huma.API, huma.Operation) {
	return func(api huma.API, op huma.Operation) { huma.Register(api, op, h) }
}

const (
	get  = http.MethodGet
	post = http.MethodPost
	put  = http.MethodPut
	del  = http.MethodDelete
)

// routes is every route of the API, by resource.
func (s *server) routes() []route {
	return []route{
		// operations.go
		{get, "/healthz", "getHealth", nil, handle(s.getHealth)},
		{get, "/readyz", "getReady", nil, handle(s.getReady)},

		// flows.go
		{post, "/flows", "postFlows", nil, handle(s.postFlows)},
		{get, "/flows", "listFlows", nil, handle(s.listFlows)},

		// events.go (routes still registered by registerEvents)

		// devices.go (routes still registered by registerDevices)

		// measurements.go (routes still registered by registerMeasurements)

		// collections.go (routes still registered by registerCollections)
	}
}

// operationDocs is what the document says of each operation, by id, from
// every resource's file.
func (s *server) operationDocs() map[string]huma.Operation {
	docs := map[string]huma.Operation{}
	for _, part := range []map[string]huma.Operation{
		s.operationsDocs(),
		s.flowsDocs(),
		s.eventsDocs(),
		s.devicesDocs(),
		s.measurementsDocs(),
		s.collectionsDocs(),
	} {
		for id, op := range part {
			docs[id] = op
		}
	}
	return docs
}

// registerRoutes registers every route and its aliases. An alias keeps the
// operation's documentation, with a summary that names the original.
func (s *server) registerRoutes(api huma.API) {
	docs := s.operationDocs()
	for _, r := range s.routes() {
		op, ok := docs[r.id]
		if !ok {
			panic(fmt.Sprintf("api: route %s %s: no documentation for operation %q", r.method, r.path, r.id))
		}
		op.Method, op.Path, op.OperationID = r.method, r.path, r.id
		r.register(api, op)
		for _, a := range r.aliases {
			o := op
			o.OperationID, o.Path = a.id, a.path
			o.Tags = append([]string(nil), op.Tags...)
			o.Errors = append([]int(nil), op.Errors...)
			o.Summary = op.Summary + " (alias of " + r.path + ")"
			o.Description = "Alias of `" + r.method + " " + r.path + "` (" + r.id + "), same parameters and answers.\n\n" + op.Description
			r.register(api, o)
		}
	}
}
