package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/telemetry/telemetry/internal/selfprofile"
	"github.com/telemetry/telemetry/internal/store"
)

// Epoch-second fields and parameters take at most 253402300799
// (9999-12-31T23:59:59Z, the struct tags' maximum): later is a 422.
// elapsed, given or computed as endedAt - startedAt, is at most as much:
// the widest span two valid times have, so a record without elapsed always
// fits the documented range. Bounded so, no sum of the rollups can reach
// +Inf: 2.5e11 s times 2^63 rows is about 2.3e30, far below 1.8e308.

// maxElapsedSeconds is the largest elapsed (the struct tags' maximum).
const maxElapsedSeconds = 253402300799

// defaultWindow is how far back the queries look without startedAt.
const defaultWindow = 7 * 24 * time.Hour

// maxBuckets bounds a timeseries answer.
const maxBuckets = 50000

// jsonObject is a JSON object passed through as it is (kwargs, context).
type jsonObject []byte

func (j jsonObject) MarshalJSON() ([]byte, error) {
	if len(j) == 0 || string(j) == "null" {
		return []byte("{}"), nil
	}
	return j, nil
}

func (j *jsonObject) UnmarshalJSON(b []byte) error {
	*j = append(jsonObject(nil), b...)
	return nil
}

func (jsonObject) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeObject, AdditionalProperties: true}
}

// jsonArray is a JSON array passed through as it is (args).
type jsonArray []byte

func (j jsonArray) MarshalJSON() ([]byte, error) {
	if len(j) == 0 || string(j) == "null" {
		return []byte("[]"), nil
	}
	return j, nil
}

func (j *jsonArray) UnmarshalJSON(b []byte) error {
	*j = append(jsonArray(nil), b...)
	return nil
}

func (jsonArray) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeArray, Items: &huma.Schema{}}
}

// MeasurementInput is one record of POST /api/measurements.
type MeasurementInput struct {
	Name      string     `json:"name" minLength:"1" maxLength:"1024" example:"/api/products/<id>" doc:"The route (a pattern, not the raw path): at most 1024 characters and 1536 bytes of UTF-8."`
	Method    string     `json:"method" enum:"GET,HEAD,POST,PUT,PATCH,DELETE,OPTIONS,TRACE,CONNECT" example:"GET" doc:"HTTP method."`
	StartedAt float64    `json:"startedAt" minimum:"0" maximum:"253402300799" example:"1444991539.945813" doc:"When the request started, epoch seconds (microsecond precision is kept); at most MAX_TIME_AHEAD (default 1 day) ahead of the server's clock."`
	EndedAt   float64    `json:"endedAt" minimum:"0" maximum:"253402300799" example:"1444991539.945816" doc:"When it ended, epoch seconds; not before startedAt, and at most MAX_TIME_AHEAD (default 1 day) ahead of the server's clock."`
	Elapsed   *float64   `json:"elapsed,omitempty" minimum:"0" maximum:"253402300799" example:"0.000003" doc:"Seconds it took (at most 253402300799, the widest span of two valid times); endedAt - startedAt when absent."`
	Args      jsonArray  `json:"args,omitempty" doc:"Positional arguments of the profiled function; at most 8 MiB (8388608 bytes) of JSON."`
	Kwargs    jsonObject `json:"kwargs,omitempty" doc:"Keyword arguments, e.g. path parameters: {\"productId\": 412}; at most 8 MiB (8388608 bytes) of JSON."`
	Context   jsonObject `json:"context,omitempty" doc:"The request: url, args (query), form, body, headers, func (handler name), ip; any other keys are kept too. At most 8 MiB (8388608 bytes) of JSON."`
	App       string     `json:"app,omitempty" maxLength:"255" example:"shop" doc:"The profiled application; \"telemetry\" is reserved for the service's own measurements."`
}

// Resolve checks what the schema cannot: endedAt >= startedAt, and no
// null for args, kwargs or context (huma's validator lets null through).
func (m *MeasurementInput) Resolve(_ huma.Context, prefix *huma.PathBuffer) []error {
	var errs []error
	for _, f := range []struct {
		name, kind string
		raw        []byte
	}{{"args", "an array", m.Args}, {"kwargs", "an object", m.Kwargs}, {"context", "an object", m.Context}} {
		if string(f.raw) == "null" {
			errs = append(errs, &ProblemItem{Title: "type", Source: f.name, Location: prefix.With(f.name),
				Detail: f.name + " must be " + f.kind + "; leave it out for an empty one"})
		}
	}
	// Within its characters (the schema's maxLength) but not its bytes.
	if len(m.Name) > maxMeasurementNameBytes && utf8.RuneCountInString(m.Name) <= maxMeasurementName {
		errs = append(errs, &ProblemItem{Title: "max", Source: "name", Location: prefix.With("name"),
			Detail: fmt.Sprintf("name must be at most %d bytes of UTF-8 (it has %d)", maxMeasurementNameBytes, len(m.Name))})
	}
	// The service's own app (self-profiling) is reserved; the decoder's
	// fast path refuses it, so that it is listed here with the rest.
	if m.App == selfprofile.App {
		errs = append(errs, reservedApp(prefix.With("app")))
	}
	// A field that failed to decode is 0 here and already reported.
	if m.StartedAt > 0 && m.EndedAt > 0 && m.EndedAt < m.StartedAt {
		errs = append(errs, &ProblemItem{Title: "gtefield", Source: "endedAt", Location: prefix.With("endedAt"),
			Detail: "endedAt must be greater than or equal to startedAt", Value: m.EndedAt})
	}
	return errs
}

// Measurement is one stored measurement, as flask-profiler shows it.
type Measurement struct {
	ID        int64      `json:"id" example:"95" doc:"Measurement id."`
	Name      string     `json:"name" example:"/products" doc:"The route."`
	Method    string     `json:"method" example:"GET" doc:"HTTP method."`
	StartedAt float64    `json:"startedAt" example:"1444991539.945813" doc:"Epoch seconds."`
	EndedAt   float64    `json:"endedAt" example:"1444991539.945816" doc:"Epoch seconds."`
	Elapsed   float64    `json:"elapsed" example:"0.000003" doc:"Seconds."`
	Args      jsonArray  `json:"args" doc:"Positional arguments."`
	Kwargs    jsonObject `json:"kwargs" doc:"Keyword arguments (path parameters)."`
	Context   jsonObject `json:"context" doc:"The request: url, args, headers, func, ip, ..."`
	App       string     `json:"app,omitempty" example:"telemetry" doc:"The profiled application; absent when the client did not say."`
}

// MeasurementGroup is the statistics of one (name, method).
type MeasurementGroup struct {
	Name       string  `json:"name" example:"/api/products" doc:"The route."`
	Method     string  `json:"method" example:"GET" doc:"HTTP method."`
	Count      int64   `json:"count" example:"214" doc:"Measurements in the window."`
	AvgElapsed float64 `json:"avgElapsed" example:"1.203" doc:"Mean elapsed seconds."`
	MinElapsed float64 `json:"minElapsed" example:"0.807" doc:"Smallest elapsed seconds."`
	MaxElapsed float64 `json:"maxElapsed" example:"2.075" doc:"Largest elapsed seconds."`
	P50Elapsed float64 `json:"p50Elapsed" format:"double" example:"1.1" doc:"Median elapsed seconds (nearest rank, as percentile_disc(0.5)), from a log-scale histogram: within 2.44 % of the exact value (within 1 microsecond below 1 microsecond), and never outside [minElapsed, maxElapsed]."`
	P95Elapsed float64 `json:"p95Elapsed" format:"double" example:"1.9" doc:"95th percentile of elapsed seconds (nearest rank), within 2.44 % of the exact value, as p50Elapsed."`
	P99Elapsed float64 `json:"p99Elapsed" format:"double" example:"2.05" doc:"99th percentile of elapsed seconds (nearest rank), within 2.44 % of the exact value, as p50Elapsed."`
}

func epoch(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }

// fromEpoch is the time of s epoch seconds (0 or more) to the nearest
// microsecond. The fraction is rounded alone: s * 1e6 near 1.4e15 is itself
// rounded to a quarter, so 1444780800.0000014 (1.43 µs past the second as a
// double) came out as 1444780800.000002.
func fromEpoch(s float64) time.Time {
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC()
}

func measurementOf(r store.Measurement) Measurement {
	return Measurement{ID: r.ID, Name: r.Name, Method: r.Method, StartedAt: epoch(r.StartedAt), EndedAt: epoch(r.EndedAt),
		Elapsed: finite(r.Elapsed), Args: jsonArray(r.Args), Kwargs: jsonObject(r.Kwargs), Context: jsonObject(r.Context), App: r.App}
}

// optionalNumber is a number query parameter that may be absent.
type optionalNumber struct {
	Value float64
	Set   bool
}

func (o *optionalNumber) Receiver() reflect.Value      { return reflect.ValueOf(o).Elem().Field(0) }
func (o *optionalNumber) OnParamSet(isSet bool, _ any) { o.Set = isSet }

// Schema documents the parameter as the number it carries.
func (optionalNumber) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeNumber, Format: "double"}
}

// MeasurementWindow is the time window every measurements query takes
// (exported because huma only reads the parameters of exported embedded
// structs).
type MeasurementWindow struct {
	StartedAt optionalNumber `query:"startedAt" minimum:"0" maximum:"253402300799" example:"1444780800" doc:"Only measurements started at or after this time, epoch seconds. Default: 7 days before now."`
	EndedAt   optionalNumber `query:"endedAt" minimum:"0" maximum:"253402300799" example:"1444953600" doc:"Only measurements ended at or before this time, epoch seconds. Default: now."`

	// startedAt and endedAt are the bounds to the microsecond, read by
	// check from the parameters' text (see inwardMicros).
	startedAt, endedAt exactBound
}

// exactBound is a window bound in microseconds since the epoch, when its
// parameter's text could be read exactly.
type exactBound struct {
	us int64
	ok bool
}

func (w *MeasurementWindow) check(ctx huma.Context) []error {
	errs := decimalParams(ctx, "startedAt", "endedAt")
	if ctx != nil {
		// Both ends are inclusive: startedAt rounds up, endedAt down.
		w.startedAt = inwardMicros(ctx.Query("startedAt"), true)
		w.endedAt = inwardMicros(ctx.Query("endedAt"), false)
	}
	return errs
}

// inwardMicros reads a window bound given in epoch seconds (the decimal
// text of the query, exponent allowed) to the microsecond, rounding inward:
// up for a start, down for an end. Times are stored to the microsecond, so
// the window then holds exactly the stored rows the bounds given hold. The
// float64 huma parses would not do: near 1.7e9 s it is 0.24 µs coarse, so
// no rounding of it is right for a bound like 1700000000.0000005 (rounded
// to nearest, that endedAt took in a row ended at ...000001, after it).
// ok is false for text that is not such a number (already a 422), and for
// one longer than 64 bytes or with an exponent beyond ±40 (big.Rat would
// compute 10 to its power): the float's rounding, as before, serves those.
func inwardMicros(text string, up bool) exactBound {
	if text == "" || !decimalRe.MatchString(text) || len(text) > 64 {
		return exactBound{}
	}
	if i := strings.IndexAny(text, "eE"); i >= 0 {
		if exp, err := strconv.Atoi(text[i+1:]); err != nil || exp < -40 || exp > 40 {
			return exactBound{}
		}
	}
	r, ok := new(big.Rat).SetString(text)
	if !ok {
		return exactBound{}
	}
	r.Mul(r, big.NewRat(1e6, 1))
	q := new(big.Int).Div(r.Num(), r.Denom()) // floor: Denom is positive
	if up && !r.IsInt() {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return exactBound{}
	}
	return exactBound{us: q.Int64(), ok: true}
}

// decimalRe is a number as the API documents its numeric query
// parameters: decimal digits, a fraction, an exponent (JSON's number, with
// "5." and ".5" too).
var decimalRe = regexp.MustCompile(`^-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// decimalParams lists a type item for each of the named query parameters
// given in another syntax than decimalRe's, which huma's parser (Go's
// strconv.ParseFloat) would take: NaN, Inf and Infinity, hexadecimal
// (0x1p4), digits with underscores (1_000), found by an audit. The item
// stands alone for its parameter: the error model drops huma's min or
// max item about the same value (Infinity), dropShadowed in problem.go.
func decimalParams(ctx huma.Context, names ...string) []error {
	if ctx == nil {
		return nil
	}
	u := ctx.URL()
	if u.RawQuery == "" {
		return nil
	}
	query := rawQueryValues(u.RawQuery)
	var errs []error
	for _, name := range names {
		for _, v := range query[name] {
			if v != "" && !decimalRe.MatchString(v) {
				errs = append(errs, &ProblemItem{Title: "type", Source: name, Location: "query." + name, Value: shownQuery(name, v),
					Detail: name + " must be a decimal number, such as 1444780800 or 0.25"})
				break
			}
		}
	}
	return errs
}

func (w *MeasurementWindow) filter() store.MeasurementFilter {
	// Times are stored to the microsecond: a window ending at now, cut
	// to the microsecond, holds the same rows, and can be written
	// exactly in a page's links (pinned).
	now := time.Now().Truncate(time.Microsecond)
	f := store.MeasurementFilter{StartedAt: now.Add(-defaultWindow), EndedAt: now}
	for _, b := range []struct {
		p   optionalNumber
		e   exactBound
		dst *time.Time
	}{{w.StartedAt, w.startedAt, &f.StartedAt}, {w.EndedAt, w.endedAt, &f.EndedAt}} {
		switch {
		case b.e.ok:
			*b.dst = time.UnixMicro(b.e.us).UTC()
		case b.p.Set:
			*b.dst = fromEpoch(b.p.Value)
		}
	}
	return f
}

// pinned are the bounds of f the request left to their default, as the
// page links give them (newPage).
func (w *MeasurementWindow) pinned(f store.MeasurementFilter) url.Values {
	v := url.Values{}
	if !w.StartedAt.Set {
		v.Set("startedAt", epochText(f.StartedAt))
	}
	if !w.EndedAt.Set {
		v.Set("endedAt", epochText(f.EndedAt))
	}
	return v
}

// epochText writes t as epoch seconds to the microsecond, exactly.
func epochText(t time.Time) string {
	us := t.UnixMicro()
	sign := ""
	if us < 0 {
		sign, us = "-", -us
	}
	return fmt.Sprintf("%s%d.%06d", sign, us/1e6, us%1e6)
}

// MeasurementFilter is the list and grouped filters.
type MeasurementFilter struct {
	MeasurementWindow
	Elapsed optionalNumber `query:"elapsed" minimum:"0" maximum:"253402300799" example:"3.5" doc:"Only measurements that took at least this many seconds."`
	Method  string         `query:"method" maxLength:"255" example:"PUT,POST" doc:"Only these methods: one, or a comma list (exact match)."`
	Name    string         `query:"name" maxLength:"1024" example:"/api/products" doc:"Only this name (exact match; a stored name has at most 1024 characters)."`
	App     string         `query:"app" maxLength:"255" example:"telemetry" doc:"Only this application (exact match; a stored app has at most 255 characters)."`
}

func (q *MeasurementFilter) check(ctx huma.Context) []error {
	return append(q.MeasurementWindow.check(ctx), decimalParams(ctx, "elapsed")...)
}

func (q *MeasurementFilter) filter() store.MeasurementFilter {
	f := q.MeasurementWindow.filter()
	// elapsed=0 selects every row (elapsed is never negative), and
	// flask-profiler's dashboard sends it with every request: it is no
	// filter, so that it reads what an unfiltered request reads (the
	// sealed units' totals) rather than the elapsed filter's paths.
	if q.Elapsed.Set && q.Elapsed.Value > 0 {
		v := q.Elapsed.Value
		f.MinElapsed = &v
	}
	if q.Name != "" {
		f.Name = &q.Name
	}
	if q.App != "" {
		f.App = &q.App
	}
	f.Methods = parseMethods(q.Method)
	return f
}

// parseMethods splits a comma list of methods ("PUT,POST"), dropping blanks.
func parseMethods(s string) []string {
	var out []string
	for _, m := range strings.Split(s, ",") {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, m)
		}
	}
	return out
}

// parseSort splits "field,direction" (direction asc or desc, default desc).
func parseSort(s string, keys []string) (key string, desc bool, err error) {
	field, dir, hasDir := strings.Cut(s, ",")
	field = strings.TrimSpace(field)
	dir = strings.ToLower(strings.TrimSpace(dir))
	ok := false
	for _, k := range keys {
		if field == k {
			ok = true
		}
	}
	if !ok {
		return "", false, &ProblemItem{Title: "oneof", Source: "sort", Location: "query.sort", Value: s,
			Detail: fmt.Sprintf("sort field must be one of %s (sort=field,asc or sort=field,desc)", strings.Join(keys, ", "))}
	}
	if hasDir && dir != "asc" && dir != "desc" {
		return "", false, &ProblemItem{Title: "oneof", Source: "sort", Location: "query.sort", Value: s,
			Detail: "sort direction must be asc or desc"}
	}
	return field, dir != "asc", nil
}

type listMeasurementsInput struct {
	MeasurementFilter
	DashboardParams
	Sort string `query:"sort" default:"endedAt,desc" example:"elapsed,desc" doc:"Order: field,direction with field one of startedAt, endedAt, elapsed, name, method and direction asc or desc (default desc). Ties are broken by id."`
	PageQuery
	sortKey string
	desc    bool
}

func (in *listMeasurementsInput) Resolve(ctx huma.Context) []error {
	errs := in.check(ctx)
	in.PageQuery = in.DashboardParams.page(in.PageQuery)
	var err error
	if in.sortKey, in.desc, err = parseSort(in.Sort, store.MeasurementSortKeys()); err != nil {
		errs = append(errs, err)
	}
	return errs
}

type groupMeasurementsInput struct {
	MeasurementFilter
	DashboardParams
	Sort string `query:"sort" default:"count,desc" example:"avgElapsed,asc" doc:"Order: field,direction with field one of count, avgElapsed, minElapsed, maxElapsed, name and direction asc or desc (default desc). Ties are broken by name, method."`
	PageQuery
	sortKey string
	desc    bool
}

func (in *groupMeasurementsInput) Resolve(ctx huma.Context) []error {
	errs := in.check(ctx)
	in.PageQuery = in.DashboardParams.page(in.PageQuery)
	var err error
	if in.sortKey, in.desc, err = parseSort(in.Sort, store.MeasurementGroupSortKeys()); err != nil {
		errs = append(errs, err)
	}
	return errs
}

type windowInput struct {
	MeasurementWindow
}

func (in *windowInput) Resolve(ctx huma.Context) []error { return in.check(ctx) }

type timeseriesInput struct {
	MeasurementWindow
	Interval string `query:"interval" enum:"daily,hourly" default:"hourly" doc:"Bucket size as flask-profiler names it: UTC days (keys YYYY-MM-DD, the same as bucket=1d) or UTC hours (keys YYYY-MM-DD HH, as bucket=1h). Ignored when bucket is given."`
	Bucket   string `query:"bucket" enum:"5m,15m,1h,6h,1d" example:"15m" doc:"Bucket width, aligned on UTC: 5m and 15m (keys YYYY-MM-DD HH:MM), 1h and 6h (keys YYYY-MM-DD HH, the bucket's first hour), 1d (keys YYYY-MM-DD). Widths of whole hours are counted from the hourly rollup, 5m and 15m from the 5-minute rollup (both kept ROLLUPS_RETENTION); a window's partial edge bins from the rows. Takes precedence over interval."`
}

func (in *timeseriesInput) Resolve(ctx huma.Context) []error { return in.check(ctx) }

// timeseriesBuckets are the widths of bucket, with the key layout of each.
var timeseriesBuckets = map[string]struct {
	width  time.Duration
	layout string
}{
	"5m":  {5 * time.Minute, "2006-01-02 15:04"},
	"15m": {15 * time.Minute, "2006-01-02 15:04"},
	"1h":  {time.Hour, "2006-01-02 15"},
	"6h":  {6 * time.Hour, "2006-01-02 15"},
	"1d":  {24 * time.Hour, "2006-01-02"},
}

type getMeasurementInput struct {
	ID int64 `path:"id" example:"95" doc:"Measurement id."`
}

// postMeasurementsInput takes the body raw: measurements_decode.go decodes
// it (the documented schema is set on the operations after registration).
type postMeasurementsInput struct {
	RawBody     []byte
	contentType string
}

// Resolve captures the Content-Type, which the decoder checks.
func (in *postMeasurementsInput) Resolve(ctx huma.Context) []error {
	in.contentType = ctx.Header("Content-Type")
	return nil
}

type postMeasurementsOutput struct {
	Body measurementIDs
}

// measurementIDs is an alias, not a type, so that the document keeps the
// body's schema name.
type measurementIDs = struct {
	IDs []int64 `json:"ids" example:"[96,97]" doc:"The new measurements' ids, in the order posted."`
}

// MeasurementPage is a page of a measurements list: the conventions'
// {items, total, page, size}, with the items also under flask-profiler's
// key so that its dashboard can read them.
type MeasurementPage[T any] struct {
	Page[T]
	Measurements []T `json:"measurements" doc:"The same items under flask-profiler's key."`
}

type measurementPageOutput[T any] struct {
	Link string `header:"Link" doc:"RFC 8288 links to the first, last, previous and next pages, where they exist."`
	Body MeasurementPage[T]
}

// measurementPageRequest is the rows a page query asks the store for.
func measurementPageRequest(q PageQuery) store.PageRequest {
	return store.PageRequest{Limit: q.Size, Offset: q.Offset()}
}

// newMeasurementPage is newPage with the items also under "measurements".
func newMeasurementPage[T any](ctx context.Context, q PageQuery, items []T, total int64, pinned url.Values) *measurementPageOutput[T] {
	p := newPage(ctx, q, items, total, pinned)
	return &measurementPageOutput[T]{Link: p.Link, Body: MeasurementPage[T]{Page: p.Body, Measurements: p.Body.Items}}
}

type getMeasurementOutput struct {
	Body struct {
		Measurement Measurement `json:"measurement"`
	}
}

type distributionOutput struct {
	Body struct {
		Distribution map[string]int64 `json:"distribution" example:"{\"GET\":1558,\"POST\":1213}" doc:"Measurements in the window per method."`
	}
}

type timeseriesOutput struct {
	Body struct {
		Serie  bucketCounts `json:"serie" example:"{\"2015-10-14\":0,\"2015-10-15\":62}" doc:"Measurements started in each UTC bucket of the window, every bucket present (0 when empty)."`
		Series bucketCounts `json:"series" doc:"The same map under the key flask-profiler's code used."`
	}
}

// bucketCounts is a timeseries' counts by bucket key, its keys in
// increasing order and each once. It is written as the JSON object a
// map[string]int64 is (keys sorted, the same bytes) and documented as one,
// without the reflection and the sort of the map's keys that took 3 ms of
// a 7-day answer in 5-minute buckets (2,017 keys, written twice).
type bucketCounts []bucketCount

type bucketCount struct {
	key string
	n   int64
}

// bucketCountsOf is the counts of buckets (in time order) under their
// start's UTC time in layout.
func bucketCountsOf(buckets []store.MeasurementBucket, layout string) bucketCounts {
	out := make(bucketCounts, 0, len(buckets))
	for _, b := range buckets {
		k := b.Start.UTC().Format(layout)
		if len(out) > 0 && out[len(out)-1].key == k {
			out[len(out)-1].n = b.Count // as a map's assignment would
			continue
		}
		out = append(out, bucketCount{k, b.Count})
	}
	// Time order is the keys' order for every layout of timeseriesBuckets
	// (fixed widths, the largest unit first); sorted anyway should a layout
	// ever break that.
	if !slices.IsSortedFunc(out, func(a, b bucketCount) int { return strings.Compare(a.key, b.key) }) {
		m := make(map[string]int64, len(out))
		for _, c := range out {
			m[c.key] = c.n
		}
		out = out[:0]
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, bucketCount{k, m[k]})
		}
	}
	return out
}

// MarshalJSON writes b as a JSON object.
func (b bucketCounts) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, 2+len(b)*28)
	out = append(out, '{')
	for i, c := range b {
		if i > 0 {
			out = append(out, ',')
		}
		if plain(c.key) { // as encoding/json writes it
			out = append(append(append(out, '"'), c.key...), '"')
		} else { // not from a time layout: as huma's encoder writes it
			var k bytes.Buffer
			enc := json.NewEncoder(&k)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(c.key); err != nil {
				return nil, err
			}
			out = append(out, bytes.TrimSuffix(k.Bytes(), []byte("\n"))...)
		}
		out = append(out, ':')
		out = strconv.AppendInt(out, c.n, 10)
	}
	return append(out, '}'), nil
}

// Schema documents b as the map[string]int64 it is written as.
func (bucketCounts) Schema(r huma.Registry) *huma.Schema {
	return huma.SchemaFromType(r, reflect.TypeFor[map[string]int64]())
}

// TooManyMeasurements is the 406 detail for a batch over MEASUREMENTS_MAX_BATCH.
const TooManyMeasurements = "Too many measurements are being registered"

// registerMeasurements builds the batch decoder; routes.go registers the
// routes.
func (s *server) registerMeasurements(api huma.API) {
	s.meas = newMeasurementDecoder(api, batchLimit{s.cfg.MeasurementsMaxBatch, func(n int) error {
		return NewProblem(http.StatusNotAcceptable, fmt.Sprintf("%s: %d in this batch, at most %d (MEASUREMENTS_MAX_BATCH)",
			TooManyMeasurements, n, s.cfg.MeasurementsMaxBatch))
	}}, s.cfg.MaxTimeAhead)
}

// measurementsDocs documents the measurements operations by id (routes.go
// lists them with their aliases).
func (s *server) measurementsDocs() map[string]huma.Operation {
	tags := []string{"measurements"}
	queryErrors := []int{http.StatusNotAcceptable, http.StatusUnprocessableEntity, http.StatusInternalServerError, http.StatusServiceUnavailable}
	// What a window reaching past MEASUREMENTS_RETENTION answers
	// (docs/lifecycle.md): the rollups outlive the rows.
	retentionDoc := " Raw measurements are kept MEASUREMENTS_RETENTION (default 30 days), their hourly and daily " +
		"rollups ROLLUPS_RETENTION (default 400 days): a window reaching past the raw retention answers from what " +
		"is kept, its whole hours from the rollups and its partial hours at the edges (and any elapsed filter) from " +
		"the rows that remain."
	listDoc := "Measurements with startedAt >= the startedAt parameter (default: 7 days ago) and endedAt <= " +
		"endedAt (default: now), filtered by elapsed (>=), method (one or a comma list), name and app, " +
		"newest first unless sort says otherwise. Times are epoch seconds. Only the measurements still kept " +
		"(MEASUREMENTS_RETENTION, default 30 days) are listed; the total counts the window's whole hours from " +
		"the rollups (kept ROLLUPS_RETENTION), so over an older window it can exceed the items listed."
	return map[string]huma.Operation{
		"postMeasurements": {
			Summary: "Store measurements",
			Description: "Stores a batch of request measurements and answers their new ids in order. The batch is " +
				"one transaction: when any record is invalid nothing is stored and the 422 names every failing " +
				"record by index. At most MEASUREMENTS_MAX_BATCH records (default 10,000) per request: more is " +
				"a 406, whatever they hold (they are counted before they are checked). Bodies over MAX_BODY_BYTES are a 413. The app \"telemetry\" is reserved for the " +
				"service's own measurements (self-profiling): a record claiming it is a 422 (rule reserved).",
			Tags:          tags,
			DefaultStatus: http.StatusCreated,
			MaxBodyBytes:  s.bodyLimit(),
			Errors: []int{http.StatusBadRequest, http.StatusNotAcceptable, http.StatusRequestEntityTooLarge,
				http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity, http.StatusInternalServerError,
				http.StatusServiceUnavailable},
		},
		"listMeasurements": {Summary: "List measurements", Description: listDoc, Tags: tags, Errors: queryErrors},
		"filterMeasurements": {Summary: "Filter measurements",
			Description: listDoc + " The same list as GET /api/measurements/, at flask-profiler's filter path.",
			Tags:        tags, Errors: queryErrors},
		"listMeasurementGroups": {
			Summary: "Measurements grouped by name and method",
			Description: "Per (name, method) of the window: count, avgElapsed, minElapsed and maxElapsed, " +
				"with the list's filters; sorted by count descending unless sort says otherwise." + retentionDoc,
			Tags: tags, Errors: queryErrors,
		},
		"getMethodDistribution": {
			Summary: "Number of measurements per method",
			Description: "How many measurements of the window (startedAt, endedAt; default the last 7 days) " +
				"each method has." + retentionDoc,
			Tags: tags, Errors: queryErrors,
		},
		"getMeasurementTimeseries": {
			Summary: "Number of measurements per bucket of time",
			Description: "How many measurements of the window started in each UTC bucket (bucket: 5m, 15m, 1h, 6h, " +
				"1d; or flask-profiler's interval: hourly, daily), every bucket from the one holding startedAt to " +
				"the one holding endedAt present (0 when empty). The map is answered under both serie and series. " +
				"At most 50,000 buckets." + retentionDoc,
			Tags: tags, Errors: queryErrors,
		},
		"getMeasurement": {
			Summary: "Get a measurement", Description: "Every field of one measurement.", Tags: tags,
			Errors: []int{http.StatusNotFound, http.StatusNotAcceptable, http.StatusUnprocessableEntity, http.StatusInternalServerError, http.StatusServiceUnavailable},
		},
	}
}

// documentMeasurements documents POST's request body: the handler takes
// the body raw (measurements_decode.go decodes it), so huma knows no schema.
// The document says array, not array-or-null: a null body is still taken
// as an empty batch (the decoder's schema keeps it), but generated clients
// should send an array.
func (s *server) documentMeasurements(api huma.API) {
	doc := *s.meas.schema
	doc.Nullable = false
	for _, path := range []string{"/api/measurements", "/api/measurements/"} {
		api.OpenAPI().Paths[path].Post.RequestBody = &huma.RequestBody{
			Required: true,
			Content:  map[string]*huma.MediaType{"application/json": {Schema: &doc}},
		}
	}
}

func (s *server) postMeasurements(ctx context.Context, in *postMeasurementsInput) (*postMeasurementsOutput, error) {
	body, err := s.meas.decode(in.contentType, in.RawBody, time.Now())
	if err != nil {
		return nil, err
	}
	n := len(body) // within MEASUREMENTS_MAX_BATCH: decode refuses more
	recs := make([]store.Measurement, n)
	for i, m := range body {
		r := store.Measurement{StartedAt: fromEpoch(m.StartedAt), EndedAt: fromEpoch(m.EndedAt), Name: m.Name,
			Method: m.Method, App: m.App, Args: json.RawMessage(m.Args), Kwargs: json.RawMessage(m.Kwargs),
			Context: json.RawMessage(m.Context)}
		if m.Elapsed != nil {
			r.Elapsed = *m.Elapsed
		} else {
			// In microseconds, not time.Duration, which stops at 292 years.
			r.Elapsed = float64(r.EndedAt.UnixMicro()-r.StartedAt.UnixMicro()) / 1e6
		}
		recs[i] = r
	}
	out := &postMeasurementsOutput{}
	answer, replayed, err := keyedWrite(ctx, s, in.RawBody, http.StatusCreated,
		func(ctx context.Context) (any, error) { return s.st.Measurements.Insert(ctx, recs) },
		func(ids any) measurementIDs {
			out, _ := ids.([]int64)
			if out == nil {
				out = []int64{} // an empty batch: [], never null
			}
			return measurementIDs{IDs: out}
		})
	if err != nil {
		return nil, s.storeError(ctx, "insert measurements", err)
	}
	if !replayed {
		s.prom.BatchItems.WithLabelValues("measurements").Observe(float64(n))
	}
	out.Body = answer
	return out, nil
}

// reservedApp is the item of a record at location (body[i].app) that
// claims the reserved app.
func reservedApp(location string) *ProblemItem {
	return &ProblemItem{Title: "reserved", Source: "app", Location: location, Value: selfprofile.App,
		Detail: fmt.Sprintf("app %q is reserved for the service's own measurements", selfprofile.App)}
}

func (s *server) listMeasurements(ctx context.Context, in *listMeasurementsInput) (*measurementPageOutput[Measurement], error) {
	f := in.filter()
	page, err := s.st.Measurements.List(ctx, f, store.MeasurementSort{Key: in.sortKey, Desc: in.desc},
		measurementPageRequest(in.PageQuery))
	if err != nil {
		return nil, s.storeError(ctx, "list measurements", err)
	}
	items := make([]Measurement, len(page.Items))
	for i, r := range page.Items {
		items[i] = measurementOf(r)
	}
	return newMeasurementPage(ctx, in.PageQuery, items, page.Total, in.pinned(f)), nil
}

func (s *server) groupMeasurements(ctx context.Context, in *groupMeasurementsInput) (*measurementPageOutput[MeasurementGroup], error) {
	f := in.filter()
	page, err := s.st.Measurements.Grouped(ctx, f, store.MeasurementSort{Key: in.sortKey, Desc: in.desc},
		measurementPageRequest(in.PageQuery))
	if err != nil {
		return nil, s.storeError(ctx, "group measurements", err)
	}
	items := make([]MeasurementGroup, len(page.Items))
	for i, r := range page.Items {
		items[i] = measurementGroupOf(r)
	}
	return newMeasurementPage(ctx, in.PageQuery, items, page.Total, in.pinned(f)), nil
}

func (s *server) getMeasurement(ctx context.Context, in *getMeasurementInput) (*getMeasurementOutput, error) {
	r, err := s.st.Measurements.Get(ctx, in.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, NewProblem(http.StatusNotFound, fmt.Sprintf("no measurement with id %d", in.ID))
	}
	if err != nil {
		return nil, s.storeError(ctx, "get measurement", err)
	}
	out := &getMeasurementOutput{}
	out.Body.Measurement = measurementOf(r)
	return out, nil
}

func (s *server) methodDistribution(ctx context.Context, in *windowInput) (*distributionOutput, error) {
	d, err := s.st.Measurements.MethodDistribution(ctx, in.filter())
	if err != nil {
		return nil, s.storeError(ctx, "method distribution", err)
	}
	out := &distributionOutput{}
	out.Body.Distribution = d
	return out, nil
}

func (s *server) measurementTimeseries(ctx context.Context, in *timeseriesInput) (*timeseriesOutput, error) {
	f := in.filter()
	size := in.Bucket
	if size == "" {
		size = map[string]string{"hourly": "1h", "daily": "1d"}[in.Interval]
	}
	b := timeseriesBuckets[size]
	step, layout := b.width, b.layout
	if n := int64(f.EndedAt.Truncate(step).Sub(f.StartedAt.Truncate(step))/step) + 1; n > maxBuckets {
		return nil, NewProblem(http.StatusUnprocessableEntity, "validation failed", &ProblemItem{
			Title: "max", Source: "startedAt", Location: "query.startedAt", Value: epoch(f.StartedAt),
			Detail: fmt.Sprintf("the window holds %d buckets of %s, at most %d: move startedAt or endedAt, or ask for wider buckets", n, size, maxBuckets),
		})
	}
	out := &timeseriesOutput{}
	if f.EndedAt.Before(f.StartedAt) {
		// An empty window has no buckets (not even the one both ends fall in).
		out.Body.Serie, out.Body.Series = bucketCounts{}, bucketCounts{}
		return out, nil
	}
	buckets, err := s.st.Measurements.Timeseries(ctx, f, step)
	if err != nil {
		return nil, s.storeError(ctx, "measurement timeseries", err)
	}
	serie := bucketCountsOf(buckets, layout)
	out.Body.Serie, out.Body.Series = serie, serie
	return out, nil
}

// measurementGroupOf is a group as the grouped list and its export answer it.
func measurementGroupOf(r store.MeasurementGroup) MeasurementGroup {
	return MeasurementGroup{Name: r.Name, Method: r.Method, Count: r.Count,
		AvgElapsed: finite(r.AvgElapsed), MinElapsed: finite(r.MinElapsed), MaxElapsed: finite(r.MaxElapsed),
		P50Elapsed: finite(r.P50Elapsed), P95Elapsed: finite(r.P95Elapsed), P99Elapsed: finite(r.P99Elapsed)}
}
