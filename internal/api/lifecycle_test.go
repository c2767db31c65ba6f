package api

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// After the raw measurements expire (a maintenance pass with
// MEASUREMENTS_RETENTION 30d, run 60 days after the fixture), the grouped
// statistics, the method distribution and the timeseries of a window of
// whole days answer the same from the rollups; the list is empty but its
// total still counts what the rollups hold, and what only the rows can
// answer (the elapsed filter) finds nothing, as the operations' docs say.
func TestMeasurementRollupsOutliveRawRows(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	fixture(t, s)
	all := fmt.Sprintf("startedAt=%d&endedAt=%d", day0, day0+3*86400)
	paths := []string{
		"/api/measurements/grouped/?" + all,
		"/api/measurements/methodDistribution/?" + all,
		"/api/measurements/timeseries/?interval=daily&" + all,
		"/api/measurements/timeseries/?interval=hourly&" + all,
	}
	before := map[string]any{}
	for _, p := range paths {
		var v any
		s.do("GET", p, nil).wantStatus(t, http.StatusOK).decode(t, &v)
		before[p] = v
	}

	st := postgres.New(s.Pool, postgres.Options{})
	res, err := st.Lifecycle.Maintain(context.Background(),
		store.Retention{Measurements: 30 * 24 * time.Hour, Rollups: 400 * 24 * time.Hour}, time.Unix(day0, 0).Add(60*24*time.Hour))
	if err != nil || res.Skipped {
		t.Fatalf("maintenance: %+v %v", res, err)
	}
	var left int64
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM measurements`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d raw measurements left (%v)", left, err)
	}

	for _, p := range paths {
		var v any
		s.do("GET", p, nil).wantStatus(t, http.StatusOK).decode(t, &v)
		if !reflect.DeepEqual(v, before[p]) {
			t.Errorf("%s after the rows expired:\n%v\nwas\n%v", p, v, before[p])
		}
	}
	var list struct {
		Items []any
		Total int64
	}
	s.do("GET", "/api/measurements/?"+all, nil).wantStatus(t, http.StatusOK).decode(t, &list)
	if len(list.Items) != 0 || list.Total != 8 {
		t.Errorf("list after expiry: %d items, total %d; want none, total 8 (from the rollups)", len(list.Items), list.Total)
	}
	var g groupPage
	s.do("GET", "/api/measurements/grouped/?"+all+"&elapsed=3", nil).wantStatus(t, http.StatusOK).decode(t, &g)
	if len(g.Items) != 0 {
		t.Errorf("grouped with an elapsed filter (rows only) after expiry: %+v", g.Items)
	}
}
