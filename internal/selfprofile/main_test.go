package selfprofile

import (
	"os"
	"testing"

	"github.com/telemetry/telemetry/internal/testdb"
)

// The writer's tests store into a real database (testdb: a throwaway
// PostgreSQL cluster, or TEST_DATABASE_URL).
func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }
