package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// Flow is one network flow: the seed's flow object, used both to post a
// flow and to answer an hour's totals. Its fields are store.Flow's, so
// that one converts to the other.
type Flow struct {
	SrcApp  string `json:"src_app" minLength:"1" maxLength:"255" example:"foo" doc:"Source application: at most 255 characters and 800 bytes of UTF-8."`
	DestApp string `json:"dest_app" minLength:"1" maxLength:"255" example:"bar" doc:"Destination application: at most 255 characters and 800 bytes of UTF-8."`
	VpcID   string `json:"vpc_id" minLength:"1" maxLength:"255" example:"vpc-0" doc:"VPC identifier: at most 255 characters and 800 bytes of UTF-8."`
	BytesTx int64  `json:"bytes_tx" minimum:"0" example:"300" doc:"Bytes transmitted (a 64-bit integer: at most 9223372036854775807)."`
	BytesRx int64  `json:"bytes_rx" minimum:"0" example:"900" doc:"Bytes received (a 64-bit integer: at most 9223372036854775807)."`
	Hour    int64  `json:"hour" minimum:"0" maximum:"2147483647" example:"1" doc:"Hours since the Unix epoch (UTC); at most the hour that holds the server's clock + MAX_TIME_AHEAD (default 1 day): an hour past it is a 422."`
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

// TooManyFlows is the seed's message for a batch over FLOWS_MAX_BATCH.
const TooManyFlows = "Too many flow objects are being registered"

// registerFlows builds the batch decoder (flows_decode.go), whose schema
// documentFlows puts on the operation.
func (s *server) registerFlows(api huma.API) {
	s.flows = newFlowDecoder(api, batchLimit{s.cfg.FlowsMaxBatch,
		func(int) error { return tooManyFlows() }})
}

// tooManyFlows is the 406 of a batch over FLOWS_MAX_BATCH, with the seed's
// own keys beside the problem's: {"error_message": ..., "status_code": 406}.
func tooManyFlows() *Problem {
	p := NewProblem(http.StatusNotAcceptable, TooManyFlows)
	p.ErrorMessage, p.StatusCode = TooManyFlows, http.StatusNotAcceptable
	return p
}

// flowsDocs documents the flows operations by id (routes.go lists them).
func (s *server) flowsDocs() map[string]huma.Operation {
	tags := []string{"flows"}
	return map[string]huma.Operation{
		"postFlows": {
			Summary: "Add flows to the hourly totals",
			Description: "Adds each flow's bytes to the totals of its (src_app, dest_app, vpc_id, hour). " +
				"The batch is one transaction: when any flow is invalid nothing is stored and the 422 names " +
				"every failing item by index. At most FLOWS_MAX_BATCH flows (default 100,000) per request: " +
				"more is a 406, whatever they hold (they are counted before they are checked). Bodies over MAX_BODY_BYTES are a 413.",
			Tags:          tags,
			DefaultStatus: http.StatusCreated,
			MaxBodyBytes:  s.bodyLimit(),
			Errors: []int{http.StatusBadRequest, http.StatusNotAcceptable, http.StatusRequestEntityTooLarge,
				http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity, http.StatusInternalServerError,
				http.StatusServiceUnavailable},
		},
		"listFlows": {
			Summary: "Hourly totals per (src_app, dest_app, vpc_id)",
			Description: "The sums of bytes_tx and bytes_rx of every flow ever posted for the hour, one item " +
				"per (src_app, dest_app, vpc_id, hour), ordered by hour, src_app, dest_app, vpc_id. Either one hour " +
				"(hour, the seed's query) or a range [from_hour, to_hour) of at most 744 hours, optionally " +
				"narrowed to one src_app, dest_app or vpc_id; sort=bytes,desc lists the top talkers " +
				"(bytes_tx + bytes_rx) first.",
			Tags:   tags,
			Errors: []int{http.StatusNotAcceptable, http.StatusUnprocessableEntity, http.StatusInternalServerError, http.StatusServiceUnavailable},
		},
		"getFlowSummary": flowsQueryDocs(tags),
	}
}

// documentFlows gives POST /flows the schema of the body its decoder takes
// raw, and names its two kinds of 406.
func (s *server) documentFlows(api huma.API) {
	post := api.OpenAPI().Paths["/flows"].Post
	post.RequestBody = &huma.RequestBody{
		Required:    true,
		Description: "Flows to add to the hourly totals; an empty array is accepted.",
		Content:     map[string]*huma.MediaType{"application/json": {Schema: s.flows.schema}},
	}
	tooMany := problemExample(http.StatusNotAcceptable)
	tooMany.Detail, tooMany.ErrorMessage, tooMany.StatusCode = TooManyFlows, TooManyFlows, http.StatusNotAcceptable
	post.Responses["406"].Content["application/problem+json"].Examples = map[string]*huma.Example{
		"tooManyFlows": {Summary: "more than FLOWS_MAX_BATCH flows", Value: tooMany},
		"accept":       {Summary: "an Accept header that admits no JSON", Value: problemExample(http.StatusNotAcceptable)},
	}
	post.Responses["406"].Content["application/problem+json"].Example = nil
}

func (s *server) postFlows(ctx context.Context, in *postFlowsInput) (*postFlowsOutput, error) {
	// The server's clock once per request: every hour of the batch has
	// the same limit.
	flows, err := s.flows.decode(in.contentType, in.RawBody, flowHourLimit(time.Now(), s.cfg.MaxTimeAhead))
	if err != nil {
		return nil, err
	}
	n := len(flows) // within FLOWS_MAX_BATCH: decode refuses more
	out := &postFlowsOutput{}
	out.Body.Received = n
	if n == 0 && keyedRequestOf(ctx) == nil {
		return out, nil
	}
	// A total that would overflow is the store's ErrTooLarge: a 422.
	body, replayed, err := keyedWrite(ctx, s, in.RawBody, http.StatusCreated,
		func(ctx context.Context) (any, error) { return nil, s.st.Flows.Add(ctx, flows) },
		func(any) FlowsReceived { return out.Body })
	if err != nil {
		return nil, s.storeError(ctx, "add flows", err)
	}
	if !replayed {
		s.prom.BatchItems.WithLabelValues("flows").Observe(float64(n))
	}
	out.Body = body
	return out, nil
}
