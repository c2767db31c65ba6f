package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/auth"
	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/devicemetrics"
	"github.com/telemetry/telemetry/internal/obs"
	"github.com/telemetry/telemetry/internal/store/db"
)

// Device metrics: the Concertim metric reporting daemon's API under /mrd
// (reporters PUT one metric per request), plus a device registry and
// read-back of current and historic values. docs/devices.md has the details.

// NewDeviceMetricsWriter builds the group-commit writer of metric reports
// from the configuration. serve builds one and closes it at shutdown (after
// the HTTP server, before the pool).
func NewDeviceMetricsWriter(pool *pgxpool.Pool, cfg config.Config, m *obs.Metrics) *devicemetrics.Writer {
	opts := devicemetrics.Options{Writers: cfg.DeviceMetricsWriters, MaxBatch: cfg.DeviceMetricsBatch}
	if m != nil {
		batch := m.BatchItems.WithLabelValues("device_metrics")
		opts.Observe = func(n int) { batch.Observe(float64(n)) }
	}
	return devicemetrics.New(pool, opts)
}

// devicesAPI carries what the /mrd handlers need beyond the server.
type devicesAPI struct {
	*server
	auth   *auth.Authenticator
	writer *devicemetrics.Writer
	now    func() time.Time
}

// Device is a registered device.
type Device struct {
	ID        string    `json:"id" example:"node01" doc:"Device id, as used in /mrd/{device_id}/metrics."`
	Name      string    `json:"name" example:"Compute node 1" doc:"Human-readable name."`
	CreatedAt time.Time `json:"createdAt" doc:"When the device was registered (RFC 3339, UTC)."`
	UpdatedAt time.Time `json:"updatedAt" doc:"When the device was last renamed (RFC 3339, UTC)."`
}

func deviceFrom(id, name string, created, updated time.Time) Device {
	return Device{ID: id, Name: name, CreatedAt: created.UTC(), UpdatedAt: updated.UTC()}
}

// NewDevice is the body that registers a device.
type NewDevice struct {
	ID   string `json:"id" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9._-]+$" example:"node01" doc:"Device id: 1 to 64 of A-Z a-z 0-9 . _ -."`
	Name string `json:"name" minLength:"1" maxLength:"255" example:"Compute node 1" doc:"Human-readable name."`
}

type createDeviceInput struct {
	Body NewDevice
}

type deviceOutput struct {
	Body Device
}

type createDeviceOutput struct {
	Location string `header:"Location" doc:"The device's URL."`
	Body     Device
}

type deviceIDInput struct {
	ID string `path:"id" example:"node01" doc:"Device id."`
}

// DeviceUpdate is the body that renames a device.
type DeviceUpdate struct {
	Name string `json:"name" minLength:"1" maxLength:"255" example:"Compute node 1" doc:"New name."`
}

type updateDeviceInput struct {
	ID   string `path:"id" example:"node01" doc:"Device id."`
	Body DeviceUpdate
}

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
	DeviceID string `path:"device_id" example:"node01" doc:"Id of a registered device."`
	RawBody  []byte
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
// aggregates (time is the bucket start; avg, min, max, count).
type HistoryPoint struct {
	Time  time.Time `json:"time" doc:"When the value was reported, or the start of the bucket (RFC 3339, UTC)."`
	Value *float64  `json:"value,omitempty" example:"42" doc:"The value (raw points only)."`
	Avg   *float64  `json:"avg,omitempty" example:"41.5" doc:"Average over the bucket (with bucket only)."`
	Min   *float64  `json:"min,omitempty" example:"39" doc:"Smallest value in the bucket (with bucket only)."`
	Max   *float64  `json:"max,omitempty" example:"44" doc:"Largest value in the bucket (with bucket only)."`
	Count *int64    `json:"count,omitempty" example:"10" doc:"Points in the bucket (with bucket only)."`
}

type historyInput struct {
	ID     string `path:"id" example:"node01" doc:"Device id."`
	Name   string `path:"name" example:"ct.ipmi.temperature" doc:"Metric name."`
	From   string `query:"from" format:"date-time" example:"2024-05-01T10:00:00Z" doc:"Start of the window, inclusive (RFC 3339). Default: 24 hours before to."`
	To     string `query:"to" format:"date-time" example:"2024-05-01T11:00:00Z" doc:"End of the window, exclusive (RFC 3339). Default: now."`
	Bucket string `query:"bucket" example:"5m" doc:"Aggregate per bucket of this width (a duration such as 30s, 5m, 1h; at least 1s), aligned to the Unix epoch. Without it: raw points."`
	PageQuery
}

// errHostNotFound is the seed's 404 for an unknown device.
func errHostNotFound(id string) *Problem {
	detail := "Unknown host: " + id
	return NewProblem(http.StatusNotFound, detail, &ProblemItem{
		Title: "Host Not Found", Detail: detail, Source: "device_id", Location: "path.device_id", Value: id,
	})
}

// reservedDeviceIDs cannot be registered: PUT /mrd/devices/metrics is the
// device registry's PUT /mrd/devices/{id}, not a report of device "devices".
var reservedDeviceIDs = map[string]bool{"devices": true}

func (s *server) registerDevices(api huma.API, writer *devicemetrics.Writer) {
	d := &devicesAPI{server: s, auth: auth.New(s.cfg.JWTSecret), writer: writer, now: time.Now}
	if d.writer == nil && s.pool != nil {
		d.writer = NewDeviceMetricsWriter(s.pool, s.cfg, s.metrics)
	}
	documentSecurity(api)
	authn := huma.Middlewares{requireToken(api, d.auth)}
	tags := []string{"devices"}
	readErrors := []int{http.StatusNotAcceptable, http.StatusUnprocessableEntity, http.StatusInternalServerError, http.StatusServiceUnavailable}

	huma.Register(api, huma.Operation{
		OperationID: "getMrdStatus",
		Method:      http.MethodGet,
		Path:        "/mrd/status",
		Summary:     "Daemon status (no token needed)",
		Description: "Answers `{\"status\": 200}` while the service runs, as the Concertim daemon's /status did.",
		Tags:        tags,
	}, func(ctx context.Context, _ *struct{}) (*statusOutput, error) {
		out := &statusOutput{}
		out.Body.Status = http.StatusOK
		return out, nil
	})

	reportBody := &huma.RequestBody{
		Description: "One metric report. Fields other than these six are ignored.",
		Required:    true,
		Content: map[string]*huma.MediaType{"application/json": {
			Schema: api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[MetricReport](), true, "MetricReport"),
			Example: map[string]any{"name": "my-metric", "value": 12, "units": "my-units", "type": "uint32",
				"slope": "both", "ttl": 180},
		}},
	}
	op := huma.Operation{
		OperationID: "putDeviceMetric",
		Method:      http.MethodPut,
		Path:        "/mrd/{device_id}/metrics",
		Summary:     "Report a metric of a device",
		Description: "Stores one metric report of a registered device. The 200 means the report is committed. " +
			"Errors use the Concertim daemon's shapes inside the service's problem model: 400 with " +
			"`errors[0].title` \"error parsing JSON body\" when the body is not a JSON object; 422 listing every " +
			"failed rule (title = rule: required, notblank, type, validtype, excludesall, oneof, min, max; " +
			"source = field) in the order name, value, units, type, slope, ttl; 404 with " +
			"`errors[0].title` \"Host Not Found\" for an unregistered device.",
		Tags:         tags,
		Security:     deviceSecurity,
		Middlewares:  huma.Middlewares{requireToken(api, d.auth), requireBody(api)},
		MaxBodyBytes: 1 << 20,
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusNotAcceptable,
			http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}
	huma.Register(api, op, d.putMetric)
	// RawBody makes huma document an octet-stream body; the body is JSON.
	if put := api.OpenAPI().Paths["/mrd/{device_id}/metrics"].Put; put != nil {
		delete(put.RequestBody.Content, "application/octet-stream")
		put.RequestBody.Description = reportBody.Description
		put.RequestBody.Content["application/json"] = reportBody.Content["application/json"]
	}

	huma.Register(api, huma.Operation{
		OperationID: "createMrdToken",
		Method:      http.MethodPost,
		Path:        "/mrd/token",
		Summary:     "Get a token (development only)",
		Description: "Answers `{\"status\": 200, \"token\": \"...\"}` with a token valid for `expires_in` seconds " +
			"(default 86400), like the Concertim daemon's /token. Only when ENABLE_TOKEN_ENDPOINT=true " +
			"(`make run` sets it); otherwise 404. In production use `telemetry token`.",
		Tags:   tags,
		Errors: []int{http.StatusBadRequest, http.StatusNotFound, http.StatusNotAcceptable, http.StatusUnprocessableEntity},
	}, d.issueToken)

	huma.Register(api, huma.Operation{
		OperationID:   "createDevice",
		Method:        http.MethodPost,
		Path:          "/mrd/devices",
		Summary:       "Register a device",
		Description:   "Registers a device so that it may report metrics. 409 when the id is taken.",
		Tags:          tags,
		Security:      deviceSecurity,
		Middlewares:   authn,
		DefaultStatus: http.StatusCreated,
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusConflict, http.StatusNotAcceptable,
			http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, d.createDevice)

	huma.Register(api, huma.Operation{
		OperationID: "listDevices",
		Method:      http.MethodGet,
		Path:        "/mrd/devices",
		Summary:     "List devices",
		Description: "Registered devices ordered by id.",
		Tags:        tags,
		Errors:      readErrors,
	}, d.listDevices)

	huma.Register(api, huma.Operation{
		OperationID: "getDevice",
		Method:      http.MethodGet,
		Path:        "/mrd/devices/{id}",
		Summary:     "Get a device",
		Tags:        tags,
		Errors:      append([]int{http.StatusNotFound}, readErrors...),
	}, d.getDevice)

	huma.Register(api, huma.Operation{
		OperationID: "updateDevice",
		Method:      http.MethodPut,
		Path:        "/mrd/devices/{id}",
		Summary:     "Rename a device",
		Tags:        tags,
		Security:    deviceSecurity,
		Middlewares: authn,
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusNotAcceptable,
			http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, d.updateDevice)

	huma.Register(api, huma.Operation{
		OperationID: "deleteDevice",
		Method:      http.MethodDelete,
		Path:        "/mrd/devices/{id}",
		Summary:     "Delete a device and its metrics",
		Description: "Deletes the device and every metric it reported (current and history), in one " +
			"transaction. Reports in flight for it either commit before the delete (and are deleted with it) " +
			"or answer 404 after it.",
		Tags:          tags,
		Security:      deviceSecurity,
		Middlewares:   authn,
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusNotAcceptable, http.StatusServiceUnavailable},
	}, d.deleteDevice)

	huma.Register(api, huma.Operation{
		OperationID: "listCurrentDeviceMetrics",
		Method:      http.MethodGet,
		Path:        "/mrd/devices/{id}/metrics",
		Summary:     "A device's current metrics",
		Description: "The latest report of each metric of the device, ordered by name, leaving out stale ones " +
			"(reportedAt + ttl in the past).",
		Tags:   tags,
		Errors: append([]int{http.StatusNotFound}, readErrors...),
	}, d.listCurrentMetrics)

	huma.Register(api, huma.Operation{
		OperationID: "getDeviceMetricHistory",
		Method:      http.MethodGet,
		Path:        "/mrd/devices/{id}/metrics/{name}/history",
		Summary:     "History of a numeric metric",
		Description: "Every numeric report of the metric in [from, to), oldest first, or with `bucket` the " +
			"average, minimum, maximum and count per bucket (empty buckets are left out). String metrics " +
			"have no numeric history: their list is empty.",
		Tags:   tags,
		Errors: append([]int{http.StatusNotFound}, readErrors...),
	}, d.history)

	huma.Register(api, huma.Operation{
		OperationID: "listCurrentMetricNames",
		Method:      http.MethodGet,
		Path:        "/mrd/metrics/current",
		Summary:     "Metrics reported now, across devices",
		Description: "Each metric name with at least one current (not stale) report: how many devices report " +
			"it and the smallest and largest current value. Ordered by name.",
		Tags:   tags,
		Errors: readErrors,
	}, d.listCurrentNames)
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

func (d *devicesAPI) putMetric(ctx context.Context, in *putMetricInput) (*statusOutput, error) {
	row, err := parseReport(in.RawBody)
	if err != nil {
		return nil, err
	}
	row.DeviceID, row.Time = in.DeviceID, d.now()
	switch err := d.writer.Write(ctx, row); {
	case errors.Is(err, devicemetrics.ErrUnknownDevice):
		return nil, errHostNotFound(in.DeviceID)
	case errors.Is(err, devicemetrics.ErrClosed):
		return nil, NewProblem(http.StatusServiceUnavailable, "the server is shutting down; retry").
			WithHeader("Retry-After", "1")
	case err != nil:
		return nil, dbError(ctx, d.log, "insert device metric", err)
	}
	out := &statusOutput{}
	out.Body.Status = http.StatusOK
	return out, nil
}

func (d *devicesAPI) createDevice(ctx context.Context, in *createDeviceInput) (*createDeviceOutput, error) {
	if reservedDeviceIDs[in.Body.ID] {
		return nil, NewProblem(http.StatusUnprocessableEntity, "validation failed", &ProblemItem{
			Title: "reserved", Detail: fmt.Sprintf("id %q is reserved: /mrd/%s/metrics is another route", in.Body.ID, in.Body.ID),
			Source: "id", Location: "body.id", Value: in.Body.ID,
		})
	}
	dev, err := d.q.CreateDevice(ctx, db.CreateDeviceParams{ID: in.Body.ID, Name: in.Body.Name})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, NewProblem(http.StatusConflict, fmt.Sprintf("device %q already exists", in.Body.ID))
	}
	if err != nil {
		return nil, dbError(ctx, d.log, "create device", err)
	}
	return &createDeviceOutput{
		Location: "/mrd/devices/" + dev.ID,
		Body:     deviceFrom(dev.ID, dev.Name, dev.CreatedAt, dev.UpdatedAt),
	}, nil
}

func (d *devicesAPI) listDevices(ctx context.Context, in *listDevicesInput) (*PageOutput[Device], error) {
	rows, err := d.q.ListDevices(ctx, db.ListDevicesParams{RowLimit: in.Size, RowOffset: in.Offset()})
	if err != nil {
		return nil, dbError(ctx, d.log, "list devices", err)
	}
	var total int64
	if len(rows) > 0 {
		total = rows[0].Total
	} else if in.Page > 1 {
		if total, err = d.q.CountDevices(ctx); err != nil {
			return nil, dbError(ctx, d.log, "count devices", err)
		}
	}
	items := make([]Device, len(rows))
	for i, r := range rows {
		items[i] = deviceFrom(r.ID, r.Name, r.CreatedAt, r.UpdatedAt)
	}
	return newPage(ctx, in.PageQuery, items, total), nil
}

func (d *devicesAPI) getDevice(ctx context.Context, in *deviceIDInput) (*deviceOutput, error) {
	dev, err := d.q.GetDevice(ctx, in.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errHostNotFound(in.ID)
	}
	if err != nil {
		return nil, dbError(ctx, d.log, "get device", err)
	}
	return &deviceOutput{Body: deviceFrom(dev.ID, dev.Name, dev.CreatedAt, dev.UpdatedAt)}, nil
}

func (d *devicesAPI) updateDevice(ctx context.Context, in *updateDeviceInput) (*deviceOutput, error) {
	dev, err := d.q.UpdateDevice(ctx, db.UpdateDeviceParams{ID: in.ID, Name: in.Body.Name})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errHostNotFound(in.ID)
	}
	if err != nil {
		return nil, dbError(ctx, d.log, "update device", err)
	}
	return &deviceOutput{Body: deviceFrom(dev.ID, dev.Name, dev.CreatedAt, dev.UpdatedAt)}, nil
}

func (d *devicesAPI) deleteDevice(ctx context.Context, in *deviceIDInput) (*struct{}, error) {
	n, err := d.q.DeleteDevice(ctx, in.ID)
	if err != nil {
		return nil, dbError(ctx, d.log, "delete device", err)
	}
	if n == 0 {
		return nil, errHostNotFound(in.ID)
	}
	return nil, nil
}

// deviceExists answers the 404 of read endpoints that found no rows.
func (d *devicesAPI) deviceExists(ctx context.Context, id string) error {
	ok, err := d.q.DeviceExists(ctx, id)
	if err != nil {
		return dbError(ctx, d.log, "device exists", err)
	}
	if !ok {
		return errHostNotFound(id)
	}
	return nil
}

func (d *devicesAPI) listCurrentMetrics(ctx context.Context, in *currentMetricsInput) (*PageOutput[CurrentMetric], error) {
	now := d.now()
	rows, err := d.q.ListCurrentDeviceMetrics(ctx, db.ListCurrentDeviceMetricsParams{
		DeviceID: in.ID, Now: now, RowLimit: in.Size, RowOffset: in.Offset()})
	if err != nil {
		return nil, dbError(ctx, d.log, "list current device metrics", err)
	}
	var total int64
	if len(rows) > 0 {
		total = rows[0].Total
	} else {
		if err := d.deviceExists(ctx, in.ID); err != nil {
			return nil, err
		}
		if in.Page > 1 {
			if total, err = d.q.CountCurrentDeviceMetrics(ctx, db.CountCurrentDeviceMetricsParams{DeviceID: in.ID, Now: now}); err != nil {
				return nil, dbError(ctx, d.log, "count current device metrics", err)
			}
		}
	}
	items := make([]CurrentMetric, len(rows))
	for i, r := range rows {
		v := MetricValue{Str: r.ValueText}
		if r.ValueNum != nil {
			v.Num = *r.ValueNum
		}
		items[i] = CurrentMetric{Name: r.Name, Value: v, Units: r.Units, Type: r.Type, Slope: r.Slope,
			TTL: r.TTL, ReportedAt: r.Time.UTC()}
	}
	return newPage(ctx, in.PageQuery, items, total), nil
}

func (d *devicesAPI) listCurrentNames(ctx context.Context, in *currentNamesInput) (*PageOutput[MetricSummary], error) {
	now := d.now()
	rows, err := d.q.ListCurrentMetricNames(ctx, db.ListCurrentMetricNamesParams{Now: now, RowLimit: in.Size, RowOffset: in.Offset()})
	if err != nil {
		return nil, dbError(ctx, d.log, "list current metric names", err)
	}
	var total int64
	if len(rows) > 0 {
		total = rows[0].Total
	} else if in.Page > 1 {
		if total, err = d.q.CountCurrentMetricNames(ctx, now); err != nil {
			return nil, dbError(ctx, d.log, "count current metric names", err)
		}
	}
	items := make([]MetricSummary, len(rows))
	for i, r := range rows {
		items[i] = MetricSummary{Name: r.Name, Devices: r.Devices}
		if r.Numeric > 0 {
			items[i].Min, items[i].Max = &r.MinValue, &r.MaxValue
		}
	}
	return newPage(ctx, in.PageQuery, items, total), nil
}

// maxBucket bounds bucket widths (a year is plenty for any chart).
const maxBucket = 366 * 24 * time.Hour

func (d *devicesAPI) history(ctx context.Context, in *historyInput) (*PageOutput[HistoryPoint], error) {
	// huma has checked the format of both.
	to := d.now()
	if in.To != "" {
		to, _ = time.Parse(time.RFC3339Nano, in.To)
	}
	from := to.Add(-24 * time.Hour)
	if in.From != "" {
		from, _ = time.Parse(time.RFC3339Nano, in.From)
	}
	var errs []error
	if !from.Before(to) {
		errs = append(errs, &ProblemItem{Title: "range", Detail: "from must be before to", Source: "from",
			Location: "query.from", Value: from.Format(time.RFC3339Nano)})
	}
	var width time.Duration
	if in.Bucket != "" {
		var err error
		width, err = time.ParseDuration(in.Bucket)
		if err != nil || width < time.Second || width > maxBucket {
			errs = append(errs, &ProblemItem{Title: "format",
				Detail: "bucket must be a duration from 1s to 8784h, such as 30s, 5m or 1h", Source: "bucket",
				Location: "query.bucket", Value: in.Bucket})
		}
	}
	if len(errs) > 0 {
		return nil, NewProblem(http.StatusUnprocessableEntity, "validation failed", errs...)
	}

	var items []HistoryPoint
	var total int64
	var err error
	if width == 0 {
		var rows []db.ListMetricHistoryRow
		rows, err = d.q.ListMetricHistory(ctx, db.ListMetricHistoryParams{DeviceID: in.ID, Name: in.Name,
			FromTime: from, ToTime: to, RowLimit: in.Size, RowOffset: in.Offset()})
		for _, r := range rows {
			items = append(items, HistoryPoint{Time: r.Time.UTC(), Value: &r.Value})
			total = r.Total
		}
		if err == nil && len(rows) == 0 && in.Page > 1 {
			total, err = d.q.CountMetricHistory(ctx, db.CountMetricHistoryParams{DeviceID: in.ID, Name: in.Name,
				FromTime: from, ToTime: to})
		}
	} else {
		var rows []db.ListMetricHistoryBucketsRow
		rows, err = d.q.ListMetricHistoryBuckets(ctx, db.ListMetricHistoryBucketsParams{WidthSeconds: width.Seconds(),
			DeviceID: in.ID, Name: in.Name, FromTime: from, ToTime: to, RowLimit: in.Size, RowOffset: in.Offset()})
		for _, r := range rows {
			items = append(items, HistoryPoint{Time: r.Bucket.UTC(), Avg: &r.AvgValue, Min: &r.MinValue,
				Max: &r.MaxValue, Count: &r.Points})
			total = r.Total
		}
		if err == nil && len(rows) == 0 && in.Page > 1 {
			total, err = d.q.CountMetricHistoryBuckets(ctx, db.CountMetricHistoryBucketsParams{WidthSeconds: width.Seconds(),
				DeviceID: in.ID, Name: in.Name, FromTime: from, ToTime: to})
		}
	}
	if err != nil {
		return nil, dbError(ctx, d.log, "metric history", err)
	}
	if len(items) == 0 {
		if err := d.deviceExists(ctx, in.ID); err != nil {
			return nil, err
		}
	}
	return newPage(ctx, in.PageQuery, items, total), nil
}

// devicesDocs documents the devices operations by id (routes.go lists them).
// TODO(store layer): registerDevices still registers these routes itself.
func (s *server) devicesDocs() map[string]huma.Operation { return nil }

// documentDevices completes the document after registration.
func (s *server) documentDevices(huma.API) {}
