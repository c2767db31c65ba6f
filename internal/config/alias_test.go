package config

import (
	"strings"
	"testing"
)

// The flows aggregation service's TOTAL_INPUT_FLOW_EVENTS sets
// FLOWS_MAX_BATCH, so that its deployments keep their limit; set beside
// FLOWS_MAX_BATCH, or to a bad value, it stops the start with a message
// that names it.
func TestFlowsBatchAlias(t *testing.T) {
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	for _, c := range []struct {
		vars map[string]string
		want int
		err  string
	}{
		{map[string]string{}, 100000, ""},
		{map[string]string{"TOTAL_INPUT_FLOW_EVENTS": "2"}, 2, ""},
		{map[string]string{"FLOWS_MAX_BATCH": "7"}, 7, ""},
		{map[string]string{"TOTAL_INPUT_FLOW_EVENTS": "2", "FLOWS_MAX_BATCH": "7"}, 0, "not both"},
		{map[string]string{"TOTAL_INPUT_FLOW_EVENTS": "0"}, 0, "TOTAL_INPUT_FLOW_EVENTS"},
		{map[string]string{"TOTAL_INPUT_FLOW_EVENTS": "many"}, 0, "TOTAL_INPUT_FLOW_EVENTS"},
	} {
		cfg, err := Load(env(c.vars))
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%v: error %v, want one containing %q", c.vars, err, c.err)
		case c.err == "" && (err != nil || cfg.FlowsMaxBatch != c.want):
			t.Errorf("%v: FLOWS_MAX_BATCH %d (%v), want %d", c.vars, cfg.FlowsMaxBatch, err, c.want)
		}
	}
}
