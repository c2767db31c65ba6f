package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/telemetry/telemetry/internal/store/db"
)

// Flow is one network flow: the seed's flow object, used both to post a
// flow and to answer an hour's totals.
type Flow struct {
	SrcApp  string `json:"src_app" minLength:"1" maxLength:"255" example:"foo" doc:"Source application."`
	DestApp string `json:"dest_app" minLength:"1" maxLength:"255" example:"bar" doc:"Destination application."`
	VpcID   string `json:"vpc_id" minLength:"1" maxLength:"255" example:"vpc-0" doc:"VPC identifier."`
	BytesTx int64  `json:"bytes_tx" minimum:"0" example:"300" doc:"Bytes transmitted."`
	BytesRx int64  `json:"bytes_rx" minimum:"0" example:"900" doc:"Bytes received."`
	Hour    int64  `json:"hour" minimum:"0" maximum:"2147483647" example:"1" doc:"Hours since the Unix epoch (UTC)."`
}

// postFlowsInput takes the body raw: flows_decode.go decodes it (the
// documented schema is set on the operation after registration).
type postFlowsInput struct {
	RawBody     []byte
	contentType string
}

// Resolve captures the Content-Type, which the decoder checks.
func (in *postFlowsInput) Resolve(ctx huma.Context) []error {
	in.contentType = ctx.Header("Content-Type")
	return nil
}

// FlowsReceived answers a stored batch.
type FlowsReceived struct {
	Received int `json:"received" example:"5" doc:"Number of flows stored."`
}

type postFlowsOutput struct{ Body FlowsReceived }

type listFlowsInput struct {
	Hour int64 `query:"hour" required:"true" minimum:"0" maximum:"2147483647" example:"1" doc:"Hours since the Unix epoch (UTC)."`
	PageQuery
}

// TooManyFlows is the seed's message for a batch over FLOWS_MAX_BATCH.
const TooManyFlows = "Too many flow objects are being registered"

func (s *server) registerFlows(api huma.API) {
	s.flows = newFlowDecoder(api)
	s.flowWriter = newFlowWriter(s.q)
	huma.Register(api, huma.Operation{
		OperationID: "postFlows",
		Method:      http.MethodPost,
		Path:        "/flows",
		Summary:     "Add flows to the hourly totals",
		Description: "Adds each flow's bytes to the totals of its (src_app, dest_app, vpc_id, hour). " +
			"The batch is one transaction: when any flow is invalid nothing is stored and the 422 names " +
			"every failing item by index. At most FLOWS_MAX_BATCH flows (default 100,000) per request: " +
			"more is a 406. Bodies over MAX_BODY_BYTES are a 413.",
		Tags:          []string{"flows"},
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  s.bodyLimit(),
		Errors: []int{http.StatusBadRequest, http.StatusNotAcceptable, http.StatusRequestEntityTooLarge,
			http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity, http.StatusInternalServerError,
			http.StatusServiceUnavailable},
	}, s.postFlows)
	post := api.OpenAPI().Paths["/flows"].Post
	post.RequestBody = &huma.RequestBody{
		Required:    true,
		Description: "Flows to add to the hourly totals; an empty array is accepted.",
		Content:     map[string]*huma.MediaType{"application/json": {Schema: s.flows.schema}},
	}
	tooMany := problemExample(http.StatusNotAcceptable)
	tooMany.Detail = TooManyFlows
	post.Responses["406"].Content["application/problem+json"].Examples = map[string]*huma.Example{
		"tooManyFlows": {Summary: "more than FLOWS_MAX_BATCH flows", Value: tooMany},
		"accept":       {Summary: "an Accept header that admits no JSON", Value: problemExample(http.StatusNotAcceptable)},
	}
	post.Responses["406"].Content["application/problem+json"].Example = nil

	huma.Register(api, huma.Operation{
		OperationID: "listFlows",
		Method:      http.MethodGet,
		Path:        "/flows",
		Summary:     "Hourly totals per (src_app, dest_app, vpc_id)",
		Description: "The sums of bytes_tx and bytes_rx of every flow ever posted for the hour, one item " +
			"per (src_app, dest_app, vpc_id), ordered by src_app, dest_app, vpc_id.",
		Tags:   []string{"flows"},
		Errors: []int{http.StatusNotAcceptable, http.StatusUnprocessableEntity, http.StatusInternalServerError, http.StatusServiceUnavailable},
	}, s.listFlows)
}

func hourTime(h int64) time.Time { return time.Unix(h*3600, 0).UTC() }

func (s *server) postFlows(ctx context.Context, in *postFlowsInput) (*postFlowsOutput, error) {
	flows, err := s.flows.decode(in.contentType, in.RawBody)
	if err != nil {
		return nil, err
	}
	n := len(flows)
	if n > s.cfg.FlowsMaxBatch {
		return nil, NewProblem(http.StatusNotAcceptable, TooManyFlows)
	}
	out := &postFlowsOutput{}
	out.Body.Received = n
	if n == 0 {
		return out, nil
	}
	if err := s.flowWriter.write(flows); err != nil {
		return nil, dbError(ctx, s.log, "upsert flows", err)
	}
	s.metrics.BatchItems.WithLabelValues("flows").Observe(float64(n))
	return out, nil
}

func (s *server) listFlows(ctx context.Context, in *listFlowsInput) (*PageOutput[Flow], error) {
	hour := hourTime(in.Hour)
	rows, err := s.q.ListFlowsByHour(ctx, db.ListFlowsByHourParams{Hour: hour, RowLimit: in.Size, RowOffset: in.Offset()})
	if err != nil {
		return nil, dbError(ctx, s.log, "list flows", err)
	}
	var total int64
	if len(rows) > 0 {
		total = rows[0].Total
	} else if in.Page > 1 {
		// Past the last page the window function has no row to ride on.
		if total, err = s.q.CountFlowsByHour(ctx, hour); err != nil {
			return nil, dbError(ctx, s.log, "count flows", err)
		}
	}
	items := make([]Flow, len(rows))
	for i, r := range rows {
		items[i] = Flow{SrcApp: r.SrcApp, DestApp: r.DestApp, VpcID: r.VpcID, BytesTx: r.BytesTx, BytesRx: r.BytesRx, Hour: in.Hour}
	}
	return newPage(ctx, in.PageQuery, items, total), nil
}

// retryConflicts runs fn again (a few times) when PostgreSQL aborted it for
// a deadlock or a serialization failure, which concurrent upserts of the
// same keys can meet; the statement is atomic, so a retry never doubles.
func retryConflicts(ctx context.Context, fn func() error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = fn(); err == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "40P01" && pgErr.Code != "40001") {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 10 * time.Millisecond):
		}
	}
	return err
}

// flowsDocs documents the flows operations by id (routes.go lists them).
// TODO(store layer): registerFlows still registers these routes itself.
func (s *server) flowsDocs() map[string]huma.Operation { return nil }

// documentFlows completes the document after registration.
func (s *server) documentFlows(huma.API) {}
