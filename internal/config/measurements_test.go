package config

import (
	"strings"
	"testing"
)

func TestMeasurementsKeptCellsBytes(t *testing.T) {
	for v, want := range map[string]int64{"": 64 << 20, "0": 0, "1048576": 1 << 20} {
		c, err := Load(envOf(map[string]string{"MEASUREMENTS_KEPT_CELLS_BYTES": v}))
		if err != nil || c.MeasurementsKeptCellsBytes != want {
			t.Errorf("MEASUREMENTS_KEPT_CELLS_BYTES=%q: %d %v, want %d", v, c.MeasurementsKeptCellsBytes, err, want)
		}
	}
	for _, v := range []string{"-1", "64MiB", "1e6"} {
		_, err := Load(envOf(map[string]string{"MEASUREMENTS_KEPT_CELLS_BYTES": v}))
		if err == nil || !strings.Contains(err.Error(), `MEASUREMENTS_KEPT_CELLS_BYTES must be 0 or a positive integer, got "`+v+`"`) {
			t.Errorf("MEASUREMENTS_KEPT_CELLS_BYTES=%q: got %v, want its error", v, err)
		}
	}
}
