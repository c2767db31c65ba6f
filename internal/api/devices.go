package api

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"

	"github.com/telemetry/telemetry/internal/auth"
	"github.com/telemetry/telemetry/internal/store"
)

// Device metrics: the Concertim metric reporting daemon's API under /mrd
// (reporters PUT one metric per request), plus a device registry and
// read-back of current and historic values. docs/devices.md has the details.

// devicesAPI carries what the /mrd handlers and their middlewares need
// beyond the server. registerDevices builds it before the routes are
// registered (the routes table and devicesDocs use it).
type devicesAPI struct {
	*server
	auth *auth.Authenticator
	now  func() time.Time
	// authn requires a token; reportMiddlewares also refuse an empty body.
	authn, reportMiddlewares huma.Middlewares
	// reports decodes report bodies (devices_report.go).
	reports reportParser
}

// Device is a registered device.
type Device struct {
	ID        string    `json:"id" example:"node01" doc:"Device id, as used in /mrd/{device_id}/metrics."`
	Name      string    `json:"name" example:"Compute node 1" doc:"Human-readable name."`
	CreatedAt time.Time `json:"createdAt" doc:"When the device was registered (RFC 3339, UTC)."`
	UpdatedAt time.Time `json:"updatedAt" doc:"When the device was last renamed (RFC 3339, UTC)."`
}

func deviceOf(d store.Device) Device {
	return Device{ID: d.ID, Name: d.Name, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
}

// NewDevice is the body that registers a device.
type NewDevice struct {
	ID   string `json:"id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9._-]+$" example:"node01" doc:"Device id: 1 to 64 of A-Z a-z 0-9 . _ -; not devices, . or .. (reserved)."`
	Name string `json:"name" minLength:"1" maxLength:"255" example:"Compute node 1" doc:"Human-readable name."`

	faults []error // strings that cannot be stored, repeated names
}

// UnmarshalJSON decodes with json v2 and checks the body's strings
// (textcheck.go); Resolve reports what it found.
func (b *NewDevice) UnmarshalJSON(data []byte) error {
	type plain NewDevice
	b.faults, _ = checkBodyText(data)
	return unmarshalBody(data, (*plain)(b))
}

type createDeviceInput struct {
	Body NewDevice
}

// Resolve reports the body's faults, and a reserved id, with huma's own
// checks.
func (in *createDeviceInput) Resolve(huma.Context) []error {
	id := in.Body.ID
	switch {
	case reservedDeviceIDs[id]:
		return append(in.Body.faults, &ProblemItem{Title: "reserved", Source: "id", Location: "body.id", Value: id,
			Detail: fmt.Sprintf("id %q is reserved: /mrd/%s/metrics is another route", id, id)})
	case dotSegment(id):
		return append(in.Body.faults, &ProblemItem{Title: "reserved", Source: "id", Location: "body.id", Value: id,
			Detail: fmt.Sprintf("id %q is reserved: as a URL path segment clients remove it (/mrd/devices/%s/metrics is not a path to it)", id, id)})
	}
	return in.Body.faults
}

// dotSegment reports whether s is a URL path's dot segment: clients and
// browsers remove "." and ".." from a path (RFC 3986, 5.2.4), escaped or
// not, so a device or metric of that name could never be read back.
func dotSegment(s string) bool { return s == "." || s == ".." }

type deviceOutput struct {
	Body Device
}

type createDeviceOutput struct {
	Location string `header:"Location" doc:"The device's URL (under BASE_PATH when the service is served under one)."`
	Body     Device
}

type deviceIDInput struct {
	ID string `path:"id" example:"node01" doc:"Device id."`
}

// DeviceUpdate is the body that renames a device.
type DeviceUpdate struct {
	Name string `json:"name" minLength:"1" maxLength:"255" example:"Compute node 1" doc:"New name."`

	faults []error // strings that cannot be stored, repeated names
}

// UnmarshalJSON decodes with json v2 and checks the body's strings.
func (b *DeviceUpdate) UnmarshalJSON(data []byte) error {
	type plain DeviceUpdate
	b.faults, _ = checkBodyText(data)
	return unmarshalBody(data, (*plain)(b))
}

type updateDeviceInput struct {
	ID   string `path:"id" example:"node01" doc:"Device id."`
	Body DeviceUpdate
}

// Resolve reports the body's faults with huma's own checks.
func (in *updateDeviceInput) Resolve(huma.Context) []error { return in.Body.faults }

type listDevicesInput struct {
	PageQuery
}

// MrdStatus is the daemon's success answer.
type MrdStatus struct {
	Status int `json:"status" example:"200" doc:"Always 200."`
}

type statusOutput struct {
	Body MrdStatus
}

type putMetricInput struct {
	DeviceID    string `path:"device_id" example:"node01" doc:"Id of a registered device."`
	RawBody     []byte
	contentType string
}

// Resolve captures the Content-Type, which putMetric checks (huma does not
// for a raw body).
func (in *putMetricInput) Resolve(ctx huma.Context) []error {
	in.contentType = ctx.Header("Content-Type")
	return nil
}

// CurrentMetric is a device's latest report of one metric.
type CurrentMetric struct {
	Name       string      `json:"name" example:"ct.ipmi.temperature" doc:"Metric name."`
	Value      MetricValue `json:"value" doc:"The value, in its JSON type (string or number)."`
	Units      string      `json:"units" example:"degrees C" doc:"Units."`
	Type       string      `json:"type" example:"int32" enum:"string,int8,uint8,int16,uint16,int32,uint32,float,double" doc:"Declared type."`
	Slope      string      `json:"slope" example:"both" enum:"zero,positive,negative,both,derivative" doc:"Declared slope."`
	TTL        int32       `json:"ttl" example:"180" doc:"Seconds after reportedAt at which the metric goes stale."`
	ReportedAt time.Time   `json:"reportedAt" doc:"When the report was received (RFC 3339, UTC)."`
}

type currentMetricsInput struct {
	ID string `path:"id" example:"node01" doc:"Device id."`
	PageQuery
}

// MetricSummary is one metric name reported now, across devices.
type MetricSummary struct {
	Name    string   `json:"name" example:"ct.ipmi.temperature" doc:"Metric name."`
	Devices int64    `json:"devices" example:"12" doc:"Devices whose latest report of this metric is not stale."`
	Min     *float64 `json:"min" nullable:"true" example:"31" doc:"Smallest current value; null when the values are strings."`
	Max     *float64 `json:"max" nullable:"true" example:"58" doc:"Largest current value; null when the values are strings."`
}

type currentNamesInput struct {
	PageQuery
}

// HistoryPoint is a raw point (time, value) or, with bucket, a bucket's
// aggregates (time is the bucket start; avg, min, max, p95, count). The
// handlers fill one of the two sets of fields; the document describes it
// as exactly one of HistoryRawPoint and HistoryBucket (TransformSchema),
// so that generated clients get the fields each shape always has as
// required rather than seven optional ones.
type HistoryPoint struct {
	Time  time.Time `json:"time" doc:"When the value was reported, or the start of the bucket (RFC 3339, UTC)."`
	Value *float64  `json:"value,omitempty" example:"42" doc:"The value (raw points only)."`
	Avg   *float64  `json:"avg,omitempty" example:"41.5" doc:"Average over the bucket (with bucket only)."`
	Min   *float64  `json:"min,omitempty" example:"39" doc:"Smallest value in the bucket (with bucket only)."`
	Max   *float64  `json:"max,omitempty" example:"44" doc:"Largest value in the bucket (with bucket only)."`
	P95   *float64  `json:"p95,omitempty" format:"double" example:"43.5" doc:"95th percentile of the bucket's values, exact and nearest-rank (a value of the bucket, as percentile_disc) (with bucket only)."`
	Count *int64    `json:"count,omitempty" example:"10" doc:"Points in the bucket (with bucket only)."`
}

// HistoryRawPoint is a history item without bucket, as the document
// describes it (HistoryPoint is what the handlers write).
type HistoryRawPoint struct {
	Time  time.Time `json:"time" example:"2024-05-01T10:00:07Z" doc:"When the value was reported (RFC 3339, UTC)."`
	Value float64   `json:"value" example:"42" doc:"The value."`
}

// HistoryBucket is a history item with bucket, as the document describes
// it (HistoryPoint is what the handlers write).
type HistoryBucket struct {
	Time  time.Time `json:"time" example:"2024-05-01T10:05:00Z" doc:"Start of the bucket (RFC 3339, UTC), aligned to the Unix epoch."`
	Avg   float64   `json:"avg" example:"41.5" doc:"Average over the bucket."`
	Min   float64   `json:"min" example:"39" doc:"Smallest value in the bucket."`
	Max   float64   `json:"max" example:"44" doc:"Largest value in the bucket."`
	P95   float64   `json:"p95" example:"43.5" doc:"95th percentile of the bucket's values, exact and nearest-rank (a value of the bucket, as percentile_disc)."`
	Count int64     `json:"count" minimum:"1" example:"10" doc:"Points in the bucket (empty buckets are left out)."`
}

// TransformSchema documents a HistoryPoint as one of its two shapes: a raw
// point {time, value} without bucket, a bucket {time, avg, min, max, p95,
// count} with it. Each refuses the other's fields, so an item matches
// exactly one.
func (HistoryPoint) TransformSchema(r huma.Registry, _ *huma.Schema) *huma.Schema {
	return &huma.Schema{
		Description: "Without bucket, a raw point (HistoryRawPoint: time, value); with bucket, a bucket's aggregates " +
			"(HistoryBucket: time, avg, min, max, p95, count).",
		OneOf: []*huma.Schema{
			r.Schema(reflect.TypeFor[HistoryRawPoint](), true, ""),
			r.Schema(reflect.TypeFor[HistoryBucket](), true, ""),
		},
	}
}

type historyInput struct {
	ID     string `path:"id" example:"node01" doc:"Device id."`
	Name   string `path:"name" maxLength:"255" example:"ct.ipmi.temperature" doc:"Metric name (a reported name has at most 255 characters)."`
	From   string `query:"from" format:"date-time" example:"2024-05-01T10:00:00Z" doc:"Start of the window, inclusive (RFC 3339). Default: 24 hours before to."`
	To     string `query:"to" format:"date-time" example:"2024-05-01T11:00:00Z" doc:"End of the window, exclusive (RFC 3339). Default: now."`
	Bucket string `query:"bucket" example:"5m" doc:"Aggregate per bucket of this width (a duration such as 30s, 5m, 1h; at least 1s), aligned to the Unix epoch. Without it: raw points."`
	PageQuery
	// query and width are the series, window and bucket width (0: raw
	// points) Resolve read from the parameters.
	query store.HistoryQuery
	width time.Duration
}

// Resolve checks the window and the bucket, with the other parameters'
// rules (one 422 lists them all).
func (in *historyInput) Resolve(huma.Context) []error {
	to, toOK := time.Now().Truncate(time.Microsecond), true
	if in.To != "" {
		to, toOK = parseDateTime(in.To) // else huma reports its format
	}
	from, fromOK := to.Add(-24*time.Hour), toOK
	if in.From != "" {
		from, fromOK = parseDateTime(in.From)
	}
	var errs []error
	if fromOK && toOK && !from.Before(to) {
		errs = append(errs, &ProblemItem{Title: "range", Detail: "from must be before to", Source: "from",
			Location: "query.from", Value: from.Format(time.RFC3339Nano)})
	}
	if in.Bucket != "" {
		width, err := time.ParseDuration(in.Bucket)
		if err != nil || width < time.Second || width > maxBucket {
			errs = append(errs, &ProblemItem{Title: "format",
				Detail: "bucket must be a duration from 1s to 8784h, such as 30s, 5m or 1h", Source: "bucket",
				Location: "query.bucket", Value: in.Bucket})
		}
		in.width = width
	}
	// Cut to the microsecond, now holds the same stored rows and can be
	// written exactly in the page links (pinned); a bound given finer
	// is rounded up (ceilMicro).
	in.query = store.HistoryQuery{DeviceID: in.ID, Name: in.Name, From: ceilMicro(from), To: ceilMicro(to)}
	return errs
}

// pinned are the bounds the request left to their default, as the page
// links give them (newPage).
func (in *historyInput) pinned() url.Values {
	v := url.Values{}
	if in.From == "" {
		v.Set("from", in.query.From.UTC().Format(time.RFC3339Nano))
	}
	if in.To == "" {
		v.Set("to", in.query.To.UTC().Format(time.RFC3339Nano))
	}
	return v
}

// errHostNotFound is the seed's 404 for an unknown device, whose id the
// path parameter param holds (device_id on the report's route, id on
// /mrd/devices/{id} and below).
func errHostNotFound(param, id string) *Problem {
	// The id as the path gave it, cut as every echoed text is: a path of
	// a megabyte is not answered three times over.
	id = shownText(id)
	detail := "Unknown host: " + id
	return NewProblem(http.StatusNotFound, detail, &ProblemItem{
		Title: "Host Not Found", Detail: detail, Source: param, Location: "path." + param, Value: id,
	})
}

// formAsJSON reads a body sent as application/x-www-form-urlencoded as
// JSON: the daemon's document gets a token with `curl -X POST .../token
// -d '{}'`, and curl's -d says the body is a form. Any other type that is
// not JSON stays a 415.
func formAsJSON(ctx huma.Context, next func(huma.Context)) {
	if r, _ := humachi.Unwrap(ctx); r != nil {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "application/x-www-form-urlencoded" {
			r.Header.Set("Content-Type", "application/json")
		}
	}
	next(ctx)
}

// reservedDeviceIDs cannot be registered: PUT /mrd/devices/metrics is the
// device registry's PUT /mrd/devices/{id}, not a report of device "devices".
var reservedDeviceIDs = map[string]bool{"devices": true}

// registerDevices builds the devices API (authentication and its
// middlewares) and documents the two ways to send a token.
func (s *server) registerDevices(api huma.API) {
	a := auth.New(s.cfg.JWTSecret).AcceptPrevious(s.cfg.JWTPreviousSecret)
	a.OnPrevious = s.prom.JWTPrevious.Inc
	d := &devicesAPI{server: s, auth: a, now: time.Now}
	d.authn = huma.Middlewares{requireToken(api, d.auth)}
	d.reportMiddlewares = huma.Middlewares{requireToken(api, d.auth), requireBody(api)}
	s.dev = d
	documentSecurity(api)
}

// devicesDocs documents the devices operations by id (routes.go lists them).
func (s *server) devicesDocs() map[string]huma.Operation {
	d := s.dev
	tags := []string{"devices"}
	readErrors := []int{http.StatusNotAcceptable, http.StatusUnprocessableEntity, http.StatusInternalServerError, http.StatusServiceUnavailable}
	return map[string]huma.Operation{
		"getMrdStatus": {
			Summary:     "Daemon status (no token needed)",
			Description: "Answers `{\"status\": 200}` while the service runs, as the Concertim daemon's /status did.",
			Tags:        tags,
		},
		"putDeviceMetric": {
			Summary: "Report a metric of a device",
			Description: "Stores one metric report of a registered device. The 200 means the report is committed. " +
				"Errors use the Concertim daemon's shapes inside the service's problem model: 400 with " +
				"`errors[0].title` \"error parsing JSON body\" when the body is not a JSON object; 422 listing every " +
				"failed rule (title = rule: required, notblank, reserved, type, validtype, excludesall, oneof, min, max; " +
				"source = field) in the order name, value, units, type, slope, ttl, then `unicode` for a string " +
				"anywhere in the body with a NUL, invalid UTF-8 or a lone UTF-16 surrogate and `duplicate` for a " +
				"repeated name (each at its field's place when in one of the six); 404 with " +
				"`errors[0].title` \"Host Not Found\" for an unregistered device; 415 for a Content-Type other " +
				"than JSON (none is accepted).",
			Tags:         tags,
			Security:     deviceSecurity,
			Middlewares:  d.reportMiddlewares,
			MaxBodyBytes: 1 << 20,
			Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusNotAcceptable,
				http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity,
				http.StatusServiceUnavailable},
		},
		"createMrdToken": {
			Summary: "Get a token (development only)",
			Description: "Answers `{\"status\": 200, \"token\": \"...\"}` with a token valid for `expires_in` seconds " +
				"(default 86400), like the Concertim daemon's /token. Only when ENABLE_TOKEN_ENDPOINT=true " +
				"(`make run` sets it); otherwise 404. In production use `telemetry token`. The body is read as JSON " +
				"when sent as a form too (`curl -d '{}'`, the daemon's documented call, says application/x-www-form-urlencoded).",
			Tags:        tags,
			Errors:      []int{http.StatusBadRequest, http.StatusNotFound, http.StatusNotAcceptable, http.StatusUnprocessableEntity},
			Middlewares: huma.Middlewares{formAsJSON},
		},
		"createDevice": {
			Summary:       "Register a device",
			Description:   "Registers a device so that it may report metrics. 409 when the id is taken.",
			Tags:          tags,
			Security:      deviceSecurity,
			Middlewares:   d.authn,
			DefaultStatus: http.StatusCreated,
			Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusConflict, http.StatusNotAcceptable,
				http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
		},
		"listDevices": {
			Summary:     "List devices",
			Description: "Registered devices ordered by id.",
			Tags:        tags,
			Errors:      readErrors,
		},
		"getDevice": {
			Summary: "Get a device",
			Tags:    tags,
			Errors:  append([]int{http.StatusNotFound}, readErrors...),
		},
		"updateDevice": {
			Summary:     "Rename a device",
			Tags:        tags,
			Security:    deviceSecurity,
			Middlewares: d.authn,
			Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusNotAcceptable,
				http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
		},
		"deleteDevice": {
			Summary: "Delete a device and its metrics",
			Description: "Deletes the device and every metric it reported (current and history), in one " +
				"transaction. Reports in flight for it either commit before the delete (and are deleted with it) " +
				"or answer 404 after it.",
			Tags:          tags,
			Security:      deviceSecurity,
			Middlewares:   d.authn,
			DefaultStatus: http.StatusNoContent,
			Errors:        []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusNotAcceptable, http.StatusServiceUnavailable},
		},
		"listCurrentDeviceMetrics": {
			Summary: "A device's current metrics",
			Description: "The latest report of each metric of the device, ordered by name, leaving out stale ones " +
				"(reportedAt + ttl in the past).",
			Tags:   tags,
			Errors: append([]int{http.StatusNotFound}, readErrors...),
		},
		"getDeviceMetricHistory": {
			Summary: "History of a numeric metric",
			Description: "Every numeric report of the metric in [from, to), oldest first (points of the same time by value), or with `bucket` the " +
				"average, minimum, maximum, 95th percentile and count per bucket (empty buckets are left out). String metrics " +
				"have no numeric history: their list is empty.",
			Tags:   tags,
			Errors: append([]int{http.StatusNotFound}, readErrors...),
		},
		"listCurrentMetricNames": {
			Summary: "Metrics reported now, across devices",
			Description: "Each metric name with at least one current (not stale) report: how many devices report " +
				"it and the smallest and largest current value. Ordered by name.",
			Tags:   tags,
			Errors: readErrors,
		},
	}
}

// documentDevices completes the document after registration: the report's
// body is read raw (RawBody makes huma document an octet-stream body), but
// it is JSON, documented by MetricReport.
func (s *server) documentDevices(api huma.API) {
	put := api.OpenAPI().Paths["/mrd/{device_id}/metrics"].Put
	if put == nil {
		return
	}
	delete(put.RequestBody.Content, "application/octet-stream")
	put.RequestBody.Description = "One metric report. Fields other than these six are ignored."
	put.RequestBody.Content["application/json"] = &huma.MediaType{
		Schema: api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[MetricReport](), true, "MetricReport"),
		Example: map[string]any{"name": "my-metric", "value": 12, "units": "my-units", "type": "uint32",
			"slope": "both", "ttl": 180},
	}
	// Its 400 is the daemon's (errParse), not the other operations' "json".
	if r := put.Responses["400"]; r != nil && r.Content["application/problem+json"] != nil {
		ex := errParse("unexpected end of JSON input")
		ex.RequestID = problemExample(http.StatusBadRequest).RequestID
		r.Content["application/problem+json"].Example = ex
	}
}

// requireBody answers an empty body with the seed's 400 (huma's own answer
// would lack the errors item).
func requireBody(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		if r, _ := humachi.Unwrap(ctx); r != nil && r.ContentLength == 0 {
			p := errParse("the body is empty; send a JSON object")
			_ = huma.WriteErr(api, ctx, p.Status, p.Detail, p.Errors[0])
			return
		}
		next(ctx)
	}
}

func (d *devicesAPI) getStatus(context.Context, *struct{}) (*statusOutput, error) {
	out := &statusOutput{}
	out.Body.Status = http.StatusOK
	return out, nil
}

func (d *devicesAPI) putMetric(ctx context.Context, in *putMetricInput) (*statusOutput, error) {
	// A JSON Content-Type or none (the Concertim daemon may send none).
	if err := checkContentType(in.contentType); err != nil {
		return nil, err
	}
	row, err := d.reports.parse(in.RawBody)
	if err != nil {
		return nil, err
	}
	row.DeviceID, row.Time = in.DeviceID, d.now()
	out := &statusOutput{}
	out.Body.Status = http.StatusOK
	body, _, err := keyedWrite(ctx, d.server, in.RawBody, http.StatusOK,
		func(ctx context.Context) (any, error) { return nil, d.st.Devices.Report(ctx, row) },
		func(any) MrdStatus { return out.Body })
	if err != nil {
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, errHostNotFound("device_id", in.DeviceID)
		case errors.Is(err, store.ErrClosed):
			return nil, NewProblem(http.StatusServiceUnavailable, "the server is shutting down; retry").
				WithHeader("Retry-After", "1")
		}
		return nil, d.storeError(ctx, "report device metric", err)
	}
	out.Body = body
	return out, nil
}

func (d *devicesAPI) createDevice(ctx context.Context, in *createDeviceInput) (*createDeviceOutput, error) {
	dev, err := d.st.Devices.Create(ctx, in.Body.ID, in.Body.Name)
	if errors.Is(err, store.ErrConflict) {
		return nil, NewProblem(http.StatusConflict, fmt.Sprintf("device %q already exists", in.Body.ID))
	}
	if err != nil {
		return nil, d.storeError(ctx, "create device", err)
	}
	// Under the proxy's prefix, as the lists' links are (the id's
	// characters need no escaping: pattern).
	return &createDeviceOutput{Location: basePath(ctx) + "/mrd/devices/" + dev.ID, Body: deviceOf(dev)}, nil
}

func (d *devicesAPI) listDevices(ctx context.Context, in *listDevicesInput) (*PageOutput[Device], error) {
	page, err := d.st.Devices.List(ctx, store.PageRequest{Limit: in.Size, Offset: in.Offset()})
	if err != nil {
		return nil, d.storeError(ctx, "list devices", err)
	}
	items := make([]Device, len(page.Items))
	for i, dev := range page.Items {
		items[i] = deviceOf(dev)
	}
	return newPage(ctx, in.PageQuery, items, page.Total), nil
}

// deviceError answers a store error of a device's operation: the seed's
// 404 for an unknown device.
func (d *devicesAPI) deviceError(ctx context.Context, op, id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errHostNotFound("id", id)
	}
	return d.storeError(ctx, op, err)
}

func (d *devicesAPI) getDevice(ctx context.Context, in *deviceIDInput) (*deviceOutput, error) {
	dev, err := d.st.Devices.Get(ctx, in.ID)
	if err != nil {
		return nil, d.deviceError(ctx, "get device", in.ID, err)
	}
	return &deviceOutput{Body: deviceOf(dev)}, nil
}

func (d *devicesAPI) updateDevice(ctx context.Context, in *updateDeviceInput) (*deviceOutput, error) {
	dev, err := d.st.Devices.Rename(ctx, in.ID, in.Body.Name)
	if err != nil {
		return nil, d.deviceError(ctx, "update device", in.ID, err)
	}
	return &deviceOutput{Body: deviceOf(dev)}, nil
}

func (d *devicesAPI) deleteDevice(ctx context.Context, in *deviceIDInput) (*struct{}, error) {
	if err := d.st.Devices.Delete(ctx, in.ID); err != nil {
		return nil, d.deviceError(ctx, "delete device", in.ID, err)
	}
	return nil, nil
}

func (d *devicesAPI) listCurrentMetrics(ctx context.Context, in *currentMetricsInput) (*PageOutput[CurrentMetric], error) {
	page, err := d.st.Devices.Current(ctx, in.ID, d.now(), store.PageRequest{Limit: in.Size, Offset: in.Offset()})
	if err != nil {
		return nil, d.deviceError(ctx, "list current device metrics", in.ID, err)
	}
	items := make([]CurrentMetric, len(page.Items))
	for i, m := range page.Items {
		items[i] = CurrentMetric{Name: m.Name, Value: MetricValue{Str: m.Text, Num: m.Num}, Units: m.Units,
			Type: m.Type, Slope: m.Slope, TTL: m.TTL, ReportedAt: m.ReportedAt}
	}
	return newPage(ctx, in.PageQuery, items, page.Total), nil
}

func (d *devicesAPI) listCurrentNames(ctx context.Context, in *currentNamesInput) (*PageOutput[MetricSummary], error) {
	page, err := d.st.Devices.CurrentNames(ctx, d.now(), store.PageRequest{Limit: in.Size, Offset: in.Offset()})
	if err != nil {
		return nil, d.storeError(ctx, "list current metric names", err)
	}
	items := make([]MetricSummary, len(page.Items))
	for i, m := range page.Items {
		items[i] = MetricSummary{Name: m.Name, Devices: m.Devices, Min: m.Min, Max: m.Max}
	}
	return newPage(ctx, in.PageQuery, items, page.Total), nil
}

// maxBucket bounds bucket widths (a year is plenty for any chart).
const maxBucket = 366 * 24 * time.Hour

func (d *devicesAPI) history(ctx context.Context, in *historyInput) (*PageOutput[HistoryPoint], error) {
	q, width := in.query, in.width
	p := store.PageRequest{Limit: in.Size, Offset: in.Offset()}
	var items []HistoryPoint
	var total int64
	if width == 0 {
		page, err := d.st.Devices.History(ctx, q, p)
		if err != nil {
			return nil, d.deviceError(ctx, "metric history", in.ID, err)
		}
		items, total = make([]HistoryPoint, len(page.Items)), page.Total
		for i, pt := range page.Items {
			items[i] = historyPoint(pt)
		}
	} else {
		page, err := d.st.Devices.HistoryBuckets(ctx, q, width, p)
		if err != nil {
			return nil, d.deviceError(ctx, "metric history", in.ID, err)
		}
		items, total = make([]HistoryPoint, len(page.Items)), page.Total
		for i, b := range page.Items {
			items[i] = historyBucket(b)
		}
	}
	return newPage(ctx, in.PageQuery, items, total, in.pinned()), nil
}

func historyPoint(pt store.HistoryPoint) HistoryPoint {
	return HistoryPoint{Time: pt.Time, Value: &pt.Value}
}

func historyBucket(b store.HistoryBucket) HistoryPoint {
	return HistoryPoint{Time: b.Start, Avg: &b.Avg, Min: &b.Min, Max: &b.Max, P95: &b.P95, Count: &b.Count}
}
