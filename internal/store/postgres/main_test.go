package postgres_test

import (
	"os"
	"testing"

	"github.com/telemetry/telemetry/internal/testdb"
)

// Every test gets its own database cloned from a migrated template on a
// throwaway PostgreSQL cluster (or TEST_DATABASE_URL).
func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }
