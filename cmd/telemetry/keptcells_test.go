package main

import (
	"testing"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// MEASUREMENTS_KEPT_CELLS_BYTES as serve passes it to the store: its
// default is the store's own bound, and 0 keeps none (the store's negative
// value; its 0 would be the default bound).
func TestKeptCellsBytes(t *testing.T) {
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got := keptCellsBytes(cfg.MeasurementsKeptCellsBytes); got != postgres.DefaultKeptCellsBytes {
		t.Errorf("the default passes %d, want postgres.DefaultKeptCellsBytes (%d)", got, postgres.DefaultKeptCellsBytes)
	}
	if got := keptCellsBytes(0); got >= 0 {
		t.Errorf("0 passes %d, want a negative value (none kept)", got)
	}
	if got := keptCellsBytes(1 << 20); got != 1<<20 {
		t.Errorf("1 MiB passes %d", got)
	}
}
