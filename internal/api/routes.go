package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"

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

// handle adapts a typed huma handler to the table (exportable, export.go,
// adapts a list handler that also streams CSV and NDJSON). The handler's context
// carries the request's DB_TIMEOUT, counted from here: the body has been
// read (limits.go).
func handle[I, O any](h func(context.Context, *I) (*O, error)) func(huma.API, huma.Operation) {
	return func(api huma.API, op huma.Operation) {
		query := withQueryNames[I](&op)
		huma.Register(api, op, func(ctx context.Context, in *I) (*O, error) {
			if err := query.check(ctx); err != nil {
				return nil, err
			}
			ctx, cancel := withDBDeadline(ctx)
			defer cancel()
			return h(ctx, in)
		})
	}
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
		{get, "/flows", "listFlows", nil, exportable(s, s.listFlows, s.exportFlows)},
		{get, "/flows/summary", "getFlowSummary", nil, exportable(s, s.flowSummary, s.exportFlowSummary)},

		// events.go
		{post, eventsPrefix + "/events/register", "registerEvent", nil, handle(s.registerEvent)},
		{post, eventsPrefix + "/events/commit", "commitEvent", nil, handle(s.commitEvent)},
		{get, eventsPrefix + "/events/isrunning", "listRunningEvents", nil, handle(s.listRunningEvents)},
		{get, eventsPrefix + "/events/{uuid}", "getEvent", nil, handle(s.getEvent)},
		{get, eventsPrefix + "/states", "listStates", nil, exportable(s, s.listStates, s.exportStates)},
		{get, eventsPrefix + "/ping", "eventsPing", nil, handle(s.eventsPing)},

		// devices.go
		{get, "/mrd/status", "getMrdStatus", nil, handle(s.dev.getStatus)},
		{put, "/mrd/{device_id}/metrics", "putDeviceMetric", nil, handle(s.dev.putMetric)},
		{post, "/mrd/token", "createMrdToken", nil, handle(s.dev.issueToken)},
		{post, "/mrd/devices", "createDevice", nil, handle(s.dev.createDevice)},
		{get, "/mrd/devices", "listDevices", nil, exportable(s, s.dev.listDevices, s.dev.exportDevices)},
		{get, "/mrd/devices/{id}", "getDevice", nil, handle(s.dev.getDevice)},
		{put, "/mrd/devices/{id}", "updateDevice", nil, handle(s.dev.updateDevice)},
		{del, "/mrd/devices/{id}", "deleteDevice", nil, handle(s.dev.deleteDevice)},
		{get, "/mrd/devices/{id}/metrics", "listCurrentDeviceMetrics", nil, exportable(s, s.dev.listCurrentMetrics, s.dev.exportCurrentMetrics)},
		{get, "/mrd/devices/{id}/metrics/{name}/history", "getDeviceMetricHistory", nil, exportable(s, s.dev.history, s.dev.exportHistory)},
		{get, "/mrd/metrics/current", "listCurrentMetricNames", nil, exportable(s, s.dev.listCurrentNames, s.dev.exportCurrentNames)},

		// measurements.go
		{post, "/api/measurements", "postMeasurements", []alias{
			{"postMeasurementsSlash", "/api/measurements/"},
		}, handle(s.postMeasurements)},
		{get, "/api/measurements/", "listMeasurements", []alias{
			{"listMeasurementsNoSlash", "/api/measurements"},
		}, exportable(s, s.listMeasurements, s.exportMeasurements)},
		{get, "/api/measurements/filter/", "filterMeasurements", []alias{
			{"filterMeasurementsNoSlash", "/api/measurements/filter"},
		}, exportable(s, s.listMeasurements, s.exportMeasurements)},
		{get, "/api/measurements/grouped/", "listMeasurementGroups", []alias{
			{"listMeasurementGroupsNoSlash", "/api/measurements/grouped"},
			{"listMeasurementGroupsV1", "/api/v1/measurements/grouped/"},
			{"listMeasurementGroupsV1NoSlash", "/api/v1/measurements/grouped"},
		}, exportable(s, s.groupMeasurements, s.exportMeasurementGroups)},
		{get, "/api/measurements/methodDistribution/", "getMethodDistribution", []alias{
			{"getMethodDistributionNoSlash", "/api/measurements/methodDistribution"},
			{"getMethodDistributionV1", "/api/v1/methodDistribution/"},
			{"getMethodDistributionV1NoSlash", "/api/v1/methodDistribution"},
		}, handle(s.methodDistribution)},
		{get, "/api/measurements/timeseries/", "getMeasurementTimeseries", []alias{
			{"getMeasurementTimeseriesNoSlash", "/api/measurements/timeseries"},
			{"getMeasurementTimeseriesV1", "/api/v1/timeseries/"},
			{"getMeasurementTimeseriesV1NoSlash", "/api/v1/timeseries"},
		}, handle(s.measurementTimeseries)},
		{get, "/api/measurements/{id}", "getMeasurement", []alias{
			{"getMeasurementSlash", "/api/measurements/{id}/"},
			{"getMeasurementV1", "/api/v1/measurements/{id}"},
			{"getMeasurementV1Slash", "/api/v1/measurements/{id}/"},
		}, handle(s.getMeasurement)},

		// collections.go
		{get, collectionsPath, "listCollections", nil, handle(s.listCollections)},
		{post, collectionsPath, "createCollection", nil, handle(s.createCollection)},
		{get, collectionsPath + "/{id}", "getCollection", nil, handle(s.getCollection)},
		{put, collectionsPath + "/{id}", "clearCollection", nil, handle(s.clearCollection)},
		{del, collectionsPath + "/{id}", "deleteCollection", nil, handle(s.deleteCollection)},
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

// registerRoutes registers every route and its aliases. An alias is
// registered as a full operation (so every hook that adds behaviour, such
// as idempotency, applies to it too) and then taken out of the document by
// hideAliases: generated clients see each operation once.
func (s *server) registerRoutes(api huma.API) {
	docs := s.operationDocs()
	params := checkParams(api) // params.go: last, after authentication
	for _, r := range s.routes() {
		op, ok := docs[r.id]
		if !ok {
			panic(fmt.Sprintf("api: route %s %s: no documentation for operation %q", r.method, r.path, r.id))
		}
		op.Method, op.Path, op.OperationID = r.method, r.path, r.id
		withReadTimeout(&op, s.cfg.ReadTimeout)
		s.applyAccess(api, &op) // AUTH_WRITES, AUTH_READS (access.go)
		if op.Method != http.MethodGet && !slices.Contains(op.Errors, http.StatusForbidden) {
			// A browser's write from another origin (crossorigin.go).
			op.Errors = append(slices.Clone(op.Errors), http.StatusForbidden)
		}
		if !slices.Contains(op.Errors, http.StatusMisdirectedRequest) {
			// A Host that ALLOWED_HOSTS does not list (hostcheck.go).
			op.Errors = append(slices.Clone(op.Errors), http.StatusMisdirectedRequest)
		}
		op.Middlewares = append(slices.Clip(op.Middlewares), params)
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

// hideAliases removes the aliases from the document once every operation
// is registered; they stay served. Each operation then appears once in
// generated SDKs, under its main path.
func (s *server) hideAliases(api huma.API) {
	paths := api.OpenAPI().Paths
	for _, r := range s.routes() {
		for _, a := range r.aliases {
			item := paths[a.path]
			if item == nil {
				continue
			}
			switch r.method {
			case get:
				item.Get = nil
			case post:
				item.Post = nil
			case put:
				item.Put = nil
			case del:
				item.Delete = nil
			default:
				panic("api: hideAliases: method " + r.method + " not handled")
			}
			if item.Get == nil && item.Post == nil && item.Put == nil && item.Delete == nil &&
				item.Patch == nil && item.Head == nil && item.Options == nil && item.Trace == nil {
				delete(paths, a.path)
			}
		}
	}
}
