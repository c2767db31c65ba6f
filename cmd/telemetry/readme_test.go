package main

import (
	"os"
	"strings"
	"testing"

	"github.com/telemetry/telemetry/internal/config"
)

// The README's configuration table is written by hand: every variable the
// service reads must have its row.
func TestREADMEListsEveryVariable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range config.Vars {
		if !strings.Contains(string(b), "| `"+v.Name+"` |") {
			t.Errorf("README.md has no configuration row for %s", v.Name)
		}
	}
}
