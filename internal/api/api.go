// Package api is the HTTP API: huma operations on a chi router, one file per
// resource, and this file, which builds the API and lists every route.
package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/selfprofile"
	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/ui"
	"github.com/telemetry/telemetry/internal/warnlimit"
)

// Version is the API version shown in the OpenAPI document.
const Version = "1.0.0"

var reflectProblem = reflect.TypeOf(Problem{})

// Deps is everything the API needs. Store may be nil when the API is built
// only to print its OpenAPI document.
type Deps struct {
	Store   *store.Store
	Log     *slog.Logger
	Metrics *metrics.Metrics
	Config  config.Config
	// Profiler records the service's own requests as measurements; nil
	// turns self-profiling off.
	Profiler *selfprofile.Profiler
	// Exports lets the caller end the exports still streaming when its
	// shutdown runs out of time (export.go); nil: nobody does.
	Exports *Exports
}

// server carries the dependencies into the handlers.
type server struct {
	st    *store.Store
	log   *slog.Logger
	prom  *metrics.Metrics
	cfg   config.Config
	flows *flowDecoder
	meas  *measurementDecoder
	// dev is the devices API (its handlers and authentication).
	dev *devicesAPI
	// exportSlots holds a token per export streaming (EXPORTS_MAX; nil:
	// no limit), export.go.
	exportSlots chan struct{}
	// exports are the exports in flight, for a shutdown (Deps.Exports).
	exports *Exports
	// warns logs the database's failures at most once per kind and
	// operation every warnlimit.Every.
	warns *warnlimit.Limiter
}

// New builds the router and the huma API on it.
func New(d Deps) (http.Handler, huma.API) {
	installErrorModel()
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = metrics.New()
	}
	s := &server{st: d.Store, log: d.Log, prom: d.Metrics, cfg: d.Config, warns: warnlimit.New(d.Log)}
	if d.Config.ExportsMax > 0 {
		s.exportSlots = make(chan struct{}, d.Config.ExportsMax)
	}
	if s.exports = d.Exports; s.exports == nil {
		s.exports = NewExports()
	}

	mux := chi.NewMux()
	// HEAD is served wherever GET is (RFC 9110 9.1: uptime checks and load
	// balancers probe with it): routed as GET, and net/http sends the
	// headers without the body.
	mux.Use(closeAfterChunked, observe(d.Log, d.Metrics, d.Profiler), recoverer(d.Log), RefuseOtherHosts(d.Config.AllowedHosts), bareQueryKeys, limits(d.Config.ReadTimeout, d.Config.DBTimeout),
		withBasePath(d.Config.BasePath), middleware.GetHead, ignoreUnreadableAccept, refuseCrossOrigin(d.Config.TrustedOrigins))
	notFound := func(w http.ResponseWriter, r *http.Request) {
		detail := fmt.Sprintf("no resource at %s", r.URL.Path)
		if r.URL.Path == "/" {
			// Where a browser lands first (http://localhost:8080 after make run).
			p := basePath(r.Context())
			detail += fmt.Sprintf(": the API is described at %s/docs (Swagger UI) and %s/openapi.json, the dashboard is at %s/ui/", p, p, p)
		}
		writeProblem(w, r, NewProblem(http.StatusNotFound, detail))
	}
	mux.NotFound(notFound)
	mux.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		allowed := allowedMethods(mux, r.URL.Path)
		if len(allowed) == 0 {
			// chi answers a method it does not know (any token but the
			// standard ones) here before it looks at the path: on a path
			// that no method serves, that is a 404, not a 405 with an
			// empty Allow (found by an audit).
			notFound(w, r)
			return
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeProblem(w, r, NewProblem(http.StatusMethodNotAllowed,
			fmt.Sprintf("%s is not supported on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allowed, ", "))))
	})
	mux.Method(http.MethodGet, "/metrics", protectMetrics(d.Config.MetricsToken, d.Metrics.Handler()))
	mux.Method(http.MethodGet, "/docs", staticProblems(docsHandler()))
	mux.Method(http.MethodGet, "/docs/*", staticProblems(docsHandler()))
	// The dashboard (internal/ui): static files, outside the OpenAPI
	// document and AUTH_READS; the API calls it makes carry the token.
	dashboard := staticProblems(ui.Handler())
	mux.Handle("/ui", dashboard)
	mux.Handle("/ui/*", dashboard)

	api := humachi.New(mux, humaConfig())
	serveDocuments(mux, api.OpenAPI())
	documentServer(api.OpenAPI(), d.Config.BasePath)
	budget := newBodyBudget(max(d.Config.BodyMemoryBytes, d.Config.MaxBodyBytes), d.Config.ReadTimeout,
		d.Config.BodyMinRate, d.Metrics.BodyBytesHeld, d.Metrics.BodiesWaiting)
	api.UseMiddleware(negotiate, operationID, requestShape, budget.middleware)

	// Each resource's setup (decoders, authentication), then every route
	// (routes.go), then what the document needs beyond the routes.
	s.registerFlows(api)        // /flows
	s.registerEvents(api)       // /apiv0.1/... (load-test events)
	s.registerDevices(api)      // /mrd
	s.registerMeasurements(api) // /api/measurements, /api/v1/...
	s.registerCollections(api)  // /appmetrics/api/v1/collections
	s.registerRoutes(api)
	s.documentFlows(api)
	s.documentEvents(api)
	s.documentDevices(api)
	s.documentMeasurements(api)
	s.documentCollections(api)
	nullInEnums(api.OpenAPI())
	documentErrorHeaders(api.OpenAPI())
	documentCacheControl(api.OpenAPI())
	s.hideAliases(api) // last: the aliases stay served, out of the document

	return mux, api
}

func humaConfig() huma.Config {
	cfg := huma.DefaultConfig("Telemetry API", Version)
	// No $schema field in bodies and no describedBy Link header: generated
	// clients should see exactly the documented fields.
	cfg.CreateHooks = nil
	cfg.Formats = map[string]huma.Format{"application/json": jsonFormat, "json": jsonFormat}
	// Problems built in handlers learn the request id on the way out.
	cfg.Transformers = append(cfg.Transformers, func(ctx huma.Context, _ string, v any) (any, error) {
		if p, ok := v.(*Problem); ok && p.RequestID == "" {
			p.RequestID = RequestID(ctx.Context())
		}
		return v, nil
	})
	cfg.OnAddOperation = append(cfg.OnAddOperation, idempotentOperation, documentBodyErrors, documentBodyBudget, documentErrors, explicitSecurity, documentExport)
	// A misspelt or unsupported query parameter is a 422 item titled
	// `unknown`, never silently ignored (a filter that does nothing returns
	// every row), and so is one given twice (`duplicate`), listed with
	// the request's other failures: checked for
	// every operation by handle and exportable (strict_query.go), not by
	// huma's RejectUnknownQueryParameters, which answered it alone. The
	// parameters the seeds' clients send beyond the contract are declared
	// hidden where they are taken (measurements_dashboard.go).
	// The default docs page loads its renderer from a CDN; ours is embedded.
	cfg.DocsPath = ""
	// The documents are served by serveDocuments (openapi.go), whose 3.0
	// form differs from huma's in its nullable enums.
	cfg.OpenAPIPath = ""
	cfg.Info.Description = "One service for five kinds of operational data: hourly network flows, " +
		"load-test events, device metrics, request measurements and metrics collections.\n\n" +
		"Errors are RFC 9457 problem details (application/problem+json) whose `errors` items name the " +
		"failed rule (`title`), the field (`source`) and where it is (`location`). Lists are paginated " +
		"with `page` and `size` and answer `{items, total, page, size}` with an RFC 8288 `Link` header.\n\n" +
		"Tokens: the device registry's writes and the metric reports always need a JWT " +
		"(`Authorization: Bearer <JWT>` or a `jwt` cookie). A server started with AUTH_WRITES=true also requires " +
		"one on every other write, and with AUTH_READS=true on every read, except /healthz, /readyz, /mrd/status, " +
		"POST /mrd/token, /docs, the dashboard's files under /ui/ and the OpenAPI documents; those operations list the " +
		"token as optional in their `security`. /metrics takes no JWT: it needs `Authorization: Bearer <METRICS_TOKEN>` " +
		"when METRICS_TOKEN is set, and is open otherwise."
	cfg.Tags = []*huma.Tag{
		{Name: "flows", Description: "Hourly network flows (aggregation_ws)."},
		{Name: "events", Description: "Load-test events from Locust (Metrics-Consumer): register, commit, running and past runs."},
		{Name: "devices", Description: "Device metrics (Concertim metric reporting daemon) under /mrd; writes need a JWT."},
		{Name: "measurements", Description: "Request measurements (flask-profiler), including the service's own requests (app=telemetry)."},
		{Name: "collections", Description: "Metrics collections (appmetrics): windows over the service's own CPU, GC, memory and HTTP figures."},
		{Name: "operations", Description: "Liveness and readiness."},
	}
	return cfg
}

var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions}

// allowedMethods lists the methods some route serves at path (HEAD
// wherever GET is: middleware.GetHead).
func allowedMethods(mux *chi.Mux, path string) []string {
	var allowed []string
	get := false
	for _, m := range methods {
		if (m == http.MethodGet || m == http.MethodHead) && eventsPostOnly(path) {
			continue // the {uuid} route's GET answers 405 there (getEvent)
		}
		if mux.Match(chi.NewRouteContext(), m, path) || m == http.MethodHead && get {
			allowed = append(allowed, m)
			get = get || m == http.MethodGet
		}
	}
	return allowed
}

// recoverer turns a panic into a logged 500 problem instead of a dropped
// connection.
func recoverer(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.ErrorContext(r.Context(), "panic", "value", fmt.Sprint(v), "request_id", RequestID(r.Context()))
					writeProblem(w, r, internalError(r.Context()))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// Spec builds the API without a database, configured with every default,
// and returns its OpenAPI document (whose body limits are the defaults').
func Spec() *huma.OpenAPI {
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		panic("api: the default configuration does not load: " + err.Error())
	}
	_, api := New(Deps{Config: cfg})
	return api.OpenAPI()
}

// bodyLimit is the MaxBodyBytes of the operations that take large bodies:
// MAX_BODY_BYTES is the largest body accepted, and huma refuses a body of
// exactly its limit.
func (s *server) bodyLimit() int64 { return s.cfg.MaxBodyBytes + 1 }

// eventsBodyWeight is how many times an events body counts in
// BODY_MEMORY_BYTES (body_budget.go): parsed into generic values, it takes
// about eight times the memory of a flows or measurements batch of the same
// size (an 8 MB one about 120 MB, against 2 to 2.5 times its size).
const eventsBodyWeight int64 = 8

// eventsBodyLimit is the MaxBodyBytes of the events' register and commit:
// EVENTS_MAX_BODY_BYTES, or MAX_BODY_BYTES when smaller. huma parses such
// a body whole into generic values and the store keeps it as one jsonb:
// a 60 MB body of small values took 1.2 GB of the service's memory and
// 44 s, and PostgreSQL then refused the value (a 500).
func (s *server) eventsBodyLimit() int64 {
	return min(s.cfg.EventsMaxBodyBytes, s.cfg.MaxBodyBytes) + 1
}
