package api

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/telemetry/telemetry/internal/store"
)

// The flows queries: GET /flows (one hour, the seed's contract, or a range
// of hours, filtered and sorted) and GET /flows/summary (totals per key over
// a range). docs/flows-storage.md describes the indexes behind them.

// optionalHour is an integer query parameter that may be absent (huma has
// no pointer parameters): hour is no longer required once a range can be
// given instead.
type optionalHour struct {
	Value int64
	Set   bool
}

func (o *optionalHour) Receiver() reflect.Value      { return reflect.ValueOf(o).Elem().Field(0) }
func (o *optionalHour) OnParamSet(isSet bool, _ any) { o.Set = isSet }

// Schema documents the parameter as the 64-bit integer it carries.
func (optionalHour) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeInteger, Format: "int64"}
}

// FlowRange is the hours a flows query reads: one hour (the seed's `hour`)
// or the half-open range [from_hour, to_hour). Exported because huma only
// reads the parameters of exported embedded structs.
type FlowRange struct {
	// Only hour has an example: Swagger UI's "Try it out" sends every
	// parameter's example, and hour with from_hour and to_hour is a 422.
	// The filters' examples are the flow of POST /flows's example body.
	Hour     optionalHour `query:"hour" minimum:"0" maximum:"2147483647" example:"1" doc:"Hours since the Unix epoch (UTC): this hour only. Give either hour, or from_hour and to_hour."`
	FromHour optionalHour `query:"from_hour" minimum:"0" maximum:"2147483647" doc:"First hour of a range (hours since the Unix epoch, inclusive), such as 456000 (2022-01-08T00:00Z). Needs to_hour; not with hour."`
	ToHour   optionalHour `query:"to_hour" minimum:"1" maximum:"2147483648" doc:"End of the range (hours since the Unix epoch, exclusive): from_hour=456000&to_hour=456024 is one day. Greater than from_hour, at most 744 hours (31 days) after it."`
	SrcApp   string       `query:"src_app" maxLength:"255" example:"foo" doc:"Only flows from this source application (exact match)."`
	DestApp  string       `query:"dest_app" maxLength:"255" example:"bar" doc:"Only flows to this destination application (exact match)."`
	VpcID    string       `query:"vpc_id" maxLength:"255" example:"vpc-0" doc:"Only flows in this VPC (exact match)."`
}

// filter checks the range and builds the store's filter; the errors name
// the parameters at fault.
func (r *FlowRange) filter(ctx huma.Context) (store.FlowFilter, []error) {
	item := func(name, title string, value any, detail string) error {
		return &ProblemItem{Title: title, Source: name, Location: "query." + name, Value: value, Detail: detail}
	}
	var f store.FlowFilter
	var errs []error
	for _, p := range []struct {
		name string
		o    optionalHour
	}{{"hour", r.Hour}, {"from_hour", r.FromHour}, {"to_hour", r.ToHour}} {
		if !p.o.Set && ctx.Query(p.name) != "" {
			// Given but not an integer: huma reports it, and the range
			// cannot be checked without it.
			return f, nil
		}
	}
	switch {
	case r.Hour.Set && (r.FromHour.Set || r.ToHour.Set):
		name, v := "from_hour", r.FromHour.Value
		if !r.FromHour.Set {
			name, v = "to_hour", r.ToHour.Value
		}
		errs = append(errs, item(name, "excluded", v, "give either hour, or from_hour and to_hour, not both"))
	case r.Hour.Set:
		f.FromHour, f.ToHour = r.Hour.Value, r.Hour.Value+1
	case r.FromHour.Set && r.ToHour.Set:
		f.FromHour, f.ToHour = r.FromHour.Value, r.ToHour.Value
		switch n := f.ToHour - f.FromHour; {
		case n <= 0:
			errs = append(errs, item("to_hour", "min", r.ToHour.Value,
				fmt.Sprintf("to_hour must be greater than from_hour (%d): the range is [from_hour, to_hour)", f.FromHour)))
		case n > store.MaxFlowRange:
			errs = append(errs, item("to_hour", "max", r.ToHour.Value,
				fmt.Sprintf("the range spans %d hours, at most %d", n, store.MaxFlowRange)))
		}
	case r.FromHour.Set:
		errs = append(errs, item("to_hour", "required", nil, "to_hour is required with from_hour"))
	case r.ToHour.Set:
		errs = append(errs, item("from_hour", "required", nil, "from_hour is required with to_hour"))
	default:
		errs = append(errs, item("hour", "required", nil, "hour, or from_hour and to_hour, is required"))
	}
	for _, p := range []struct {
		v   string
		dst **string
	}{{r.SrcApp, &f.SrcApp}, {r.DestApp, &f.DestApp}, {r.VpcID, &f.VpcID}} {
		if p.v != "" {
			v := p.v
			*p.dst = &v
		}
	}
	return f, errs
}

type listFlowsInput struct {
	FlowRange
	Sort string `query:"sort" default:"hour,asc" example:"bytes,desc" doc:"Order: field,direction with field hour (hour, src_app, dest_app, vpc_id) or bytes (bytes_tx + bytes_rx: top talkers first with bytes,desc) and direction asc or desc (default asc for hour, desc for bytes). Ties are broken by hour, src_app, dest_app, vpc_id."`
	PageQuery
	filter store.FlowFilter
	sort   store.FlowSort
}

func (in *listFlowsInput) Resolve(ctx huma.Context) []error {
	var errs []error
	in.filter, errs = in.FlowRange.filter(ctx)
	// The direction in either case, as the measurements' sort takes it.
	field, dir, hasDir := strings.Cut(in.Sort, ",")
	field, dir = strings.TrimSpace(field), strings.ToLower(strings.TrimSpace(dir))
	switch field {
	case "hour":
		in.sort.Desc = hasDir && dir == "desc"
	case "bytes":
		in.sort.ByBytes, in.sort.Desc = true, !hasDir || dir == "desc"
	default:
		return append(errs, &ProblemItem{Title: "oneof", Source: "sort", Location: "query.sort", Value: in.Sort,
			Detail: "sort field must be hour or bytes (sort=field,asc or sort=field,desc)"})
	}
	if hasDir && dir != "asc" && dir != "desc" {
		errs = append(errs, &ProblemItem{Title: "oneof", Source: "sort", Location: "query.sort", Value: in.Sort,
			Detail: "sort direction must be asc or desc"})
	}
	return errs
}

type flowSummaryInput struct {
	FlowRange
	By string `query:"by" required:"true" enum:"src_app,dest_app,vpc_id" example:"src_app" doc:"The key to total by."`
	PageQuery
	filter store.FlowFilter
}

func (in *flowSummaryInput) Resolve(ctx huma.Context) []error {
	var errs []error
	in.filter, errs = in.FlowRange.filter(ctx)
	return errs
}

// FlowTotal is the totals of one key over the range.
type FlowTotal struct {
	Key     string `json:"key" example:"web" doc:"The src_app, dest_app or vpc_id (as asked by by)."`
	BytesTx int64  `json:"bytes_tx" format:"int64" example:"300" doc:"Sum of bytes_tx over the key's flows in the range."`
	BytesRx int64  `json:"bytes_rx" format:"int64" example:"900" doc:"Sum of bytes_rx over the key's flows in the range."`
	Bytes   int64  `json:"bytes" format:"int64" example:"1200" doc:"bytes_tx + bytes_rx: the order of the summary, largest first."`
}

// flowsQueryDocs documents the summary operation (routes.go lists it).
func flowsQueryDocs(tags []string) huma.Operation {
	return huma.Operation{
		Summary: "Totals per src_app, dest_app or vpc_id over a range of hours",
		Description: "Sums bytes_tx and bytes_rx over the hourly totals of the range (hour, or from_hour and " +
			"to_hour: [from_hour, to_hour), at most 744 hours), optionally narrowed by src_app, dest_app and " +
			"vpc_id, per value of by, largest bytes_tx + bytes_rx first, ties by key. total is the number of keys. " +
			"A total past 64 bits is a 422.",
		Tags:   tags,
		Errors: []int{http.StatusNotAcceptable, http.StatusUnprocessableEntity, http.StatusInternalServerError, http.StatusServiceUnavailable},
	}
}

func (s *server) listFlows(ctx context.Context, in *listFlowsInput) (*PageOutput[Flow], error) {
	page, err := s.st.Flows.List(ctx, in.filter, in.sort, store.PageRequest{Limit: in.Size, Offset: in.Offset()})
	if err != nil {
		return nil, s.storeError(ctx, "list flows", err)
	}
	items := make([]Flow, len(page.Items))
	for i, f := range page.Items {
		items[i] = Flow(f)
	}
	return newPage(ctx, in.PageQuery, items, page.Total), nil
}

func (s *server) flowSummary(ctx context.Context, in *flowSummaryInput) (*PageOutput[FlowTotal], error) {
	page, err := s.st.Flows.Summary(ctx, in.filter, in.By, store.PageRequest{Limit: in.Size, Offset: in.Offset()})
	if err != nil {
		return nil, s.storeError(ctx, "summarize flows", err)
	}
	items := make([]FlowTotal, len(page.Items))
	for i, t := range page.Items {
		items[i] = FlowTotal(t)
	}
	return newPage(ctx, in.PageQuery, items, page.Total), nil
}
