package api

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// A misspelt or unsupported query parameter is a 422 item titled
// `unknown`, never silently ignored (a filter that does nothing returns
// every row), and it is listed with every other failure of the request at
// once (README, "API at a glance"). A parameter given more than once
// (`?page=1&page=2`) is a 422 item titled `duplicate` in the same list:
// every parameter takes one value, and huma would read the first and
// drop the rest without a word (a client that meant the second would get
// another page or another filter than it asked for). huma's own check
// (RejectUnknownQueryParameters) answers before it parses the other
// parameters, so that `?size=0&bogus=1` named bogus alone: the check is
// made here instead, for every operation registered through handle or
// exportable (routes.go). When huma finds other failures, its 422 gets
// the unknown parameters too (installErrorModel); when it finds none, the
// handler's wrapper answers them before the handler runs.

// queryNamesKey is the operation metadata that holds its queryNames.
const queryNamesKey = "telemetry.queryNames"

// queryNames are the query parameters an operation's input takes, hidden
// ones included (the flask-profiler dashboard's): names, and the prefixes
// of deepObject parameters (columns[0][data]).
type queryNames struct {
	names    map[string]bool
	prefixes []string
	// hidden are the names hidden from the document (the flask-profiler
	// dashboard's), which op.Parameters, the documented ones, lack: for
	// paramErrors' text check. hiddenInts are the integer ones' schemas
	// (their bounds), for integersPastRange.
	hidden     map[string]bool
	hiddenInts map[string]*huma.Schema
}

// queryNamesOf reads the query parameters of an input struct type, through
// embedded structs, as huma does.
func queryNamesOf(t reflect.Type) queryNames {
	q := queryNames{names: map[string]bool{}}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			tag, ok := f.Tag.Lookup("query")
			if !ok {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if name == "" {
				name = f.Name
			}
			if strings.Contains(opts, "deepObject") {
				q.prefixes = append(q.prefixes, name+"[")
				continue
			}
			q.names[name] = true
			if f.Tag.Get("hidden") != "true" {
				continue
			}
			if q.hidden == nil {
				q.hidden = map[string]bool{}
			}
			q.hidden[name] = true
			if f.Type == reflect.TypeFor[optionalInt]() {
				if q.hiddenInts == nil {
					q.hiddenInts = map[string]*huma.Schema{}
				}
				sc := &huma.Schema{Type: huma.TypeInteger}
				if v, err := strconv.ParseFloat(f.Tag.Get("minimum"), 64); err == nil {
					sc.Minimum = &v
				}
				if v, err := strconv.ParseFloat(f.Tag.Get("maximum"), 64); err == nil {
					sc.Maximum = &v
				}
				q.hiddenInts[name] = sc
			}
		}
	}
	walk(t)
	return q
}

// unknown lists the query parameters of u the operation does not take,
// each with the value it was given (its first), and those it takes that
// are given more than once, each with its values: in order of name. The
// deepObject parameters (the DataTables ones) are left to their parser.
func (q queryNames) unknown(u *url.URL) []error {
	if u == nil || u.RawQuery == "" {
		return nil
	}
	// As huma reads the query: pairs split on '&' alone (url.Values
	// leaves out every pair holding a ';').
	query := url.Values(rawQueryValues(u.RawQuery))
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(query)) {
		if q.names[key] {
			if values := query[key]; len(values) > 1 {
				errs = append(errs, duplicateQuery(key, values))
			}
			continue
		}
		if q.deepObject(key) {
			// A DataTables parameter: one value too (an audit found
			// order[0][dir] given twice taken).
			if values := query[key]; len(values) > 1 {
				errs = append(errs, duplicateQuery(key, values))
			}
			continue
		}
		it := fromHumaDetail(http.StatusUnprocessableEntity,
			&huma.ErrorDetail{Location: "query." + key, Message: "unknown query parameter"})
		it.Value = shownQuery(key, query.Get(key))
		errs = append(errs, it)
	}
	return errs
}

// duplicateQuery is the item for query parameter key given more than once.
func duplicateQuery(key string, values []string) *ProblemItem {
	return &ProblemItem{Status: http.StatusUnprocessableEntity, Title: titleDuplicate,
		Source: key, Location: "query." + key, Value: shownQuery(key, strings.Join(values, ",")),
		Detail: fmt.Sprintf("%s is given %d times: each query parameter takes one value", key, len(values))}
}

// deepObjectNameRe is a deepObject parameter's name as DataTables writes
// them: a name and one or more bracketed keys (columns[0][search][value],
// order[0][dir]); anything else under the prefix (columns[=x) is unknown.
var deepObjectNameRe = regexp.MustCompile(`^[A-Za-z_]+(\[[^\[\]]*\])+$`)

// deepObject says whether key is a name under one of the operation's
// deepObject parameters, in DataTables' form.
func (q queryNames) deepObject(key string) bool {
	return slices.ContainsFunc(q.prefixes, func(p string) bool { return strings.HasPrefix(key, p) }) && deepObjectNameRe.MatchString(key)
}

// withQueryNames records on op the query parameters its input type I
// takes, and returns them.
func withQueryNames[I any](op *huma.Operation) queryNames {
	q := queryNamesOf(reflect.TypeFor[I]())
	op.Metadata = maps.Clone(op.Metadata)
	if op.Metadata == nil {
		op.Metadata = map[string]any{}
	}
	op.Metadata[queryNamesKey] = q
	return q
}

// check is the 422 for the unknown query parameters of the request
// in ctx, or nil.
func (q queryNames) check(ctx context.Context) error {
	if errs := q.unknown(requestURL(ctx)); len(errs) > 0 {
		return validationFailed(errs...)
	}
	return nil
}

// unknownQueryOf lists the unknown query parameters of the request huma
// is answering, for an operation registered with withQueryNames.
func unknownQueryOf(ctx huma.Context) []error {
	op := ctx.Operation()
	if op == nil {
		return nil
	}
	q, ok := op.Metadata[queryNamesKey].(queryNames)
	if !ok {
		return nil
	}
	u := ctx.URL()
	return q.unknown(&u)
}
