package api

import (
	"reflect"

	"github.com/danielgtaylor/huma/v2"
)

// Unknown query parameters are refused (humaConfig), but flask-profiler's
// own dashboard, one of the measurements API's original clients, sends more
// than the seed's document lists: its filtered table asks
// /api/measurements/?skip=0&limit=100&sort=...&method=&name=&elapsed=0, and
// its grouped table is a server-side DataTables table, whose requests to
// /api/measurements/grouped also carry DataTables' own parameters (draw,
// start, length, columns[i][...], order[i][...], search[...], and jQuery's
// cache buster _). The seed's document shows skip=0&limit=-1 too. These stay
// accepted on the list and grouped operations, hidden from the OpenAPI
// document (generated clients use page and size): skip and limit are
// honoured as the page they designate, the DataTables parameters are
// ignored (their paging repeats skip and limit).

// DashboardParams is embedded in the list and grouped inputs (exported
// because huma only reads the parameters of exported embedded structs).
type DashboardParams struct {
	Skip    optionalInt `query:"skip" hidden:"true" minimum:"0" maximum:"2147483646" doc:"flask-profiler: rows to skip (replaces page)."`
	Limit   optionalInt `query:"limit" hidden:"true" minimum:"-1" maximum:"2147483647" doc:"flask-profiler: rows to return, -1 for all (replaces size; at most 100)."`
	Draw    string      `query:"draw" hidden:"true" maxLength:"32"`
	Start   string      `query:"start" hidden:"true" maxLength:"32"`
	Length  string      `query:"length" hidden:"true" maxLength:"32"`
	Nocache string      `query:"_" hidden:"true" maxLength:"32"`
	// DataTables' nested parameters (columns[0][data]=...): deepObject
	// style makes huma accept every name under these prefixes.
	Columns map[string]string `query:"columns,deepObject" hidden:"true"`
	Order   map[string]string `query:"order,deepObject" hidden:"true"`
	Search  map[string]string `query:"search,deepObject" hidden:"true"`
}

// page is q with skip and limit applied: limit (-1 or 0: as many as a page
// holds, 100; more is capped at 100) replaces size, and skip selects the
// page that holds row skip+1 (the dashboard's skips are multiples of its
// limit, so that page starts exactly there).
func (d *DashboardParams) page(q PageQuery) PageQuery {
	if d.Limit.Set {
		switch {
		case d.Limit.Value <= 0 || d.Limit.Value > maxPageSize:
			q.Size = maxPageSize
		default:
			q.Size = d.Limit.Value
		}
	}
	if d.Skip.Set {
		q.Page = d.Skip.Value/q.Size + 1
	}
	return q
}

// maxPageSize is PageQuery's largest size.
const maxPageSize = 100

// optionalInt is an integer query parameter that may be absent.
type optionalInt struct {
	Value int64
	Set   bool
}

func (o *optionalInt) Receiver() reflect.Value      { return reflect.ValueOf(o).Elem().Field(0) }
func (o *optionalInt) OnParamSet(isSet bool, _ any) { o.Set = isSet }

// Schema documents the parameter as the integer it carries.
func (optionalInt) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeInteger, Format: "int64"}
}
