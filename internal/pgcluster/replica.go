package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// StartReplica starts a streaming replica of primary in opts.Dir: the first
// time, pg_basebackup copies the primary's data directory and, with -R,
// writes standby.signal and the primary_conninfo that makes the copy a
// standby; then the copy starts like any cluster (Start finds PG_VERSION
// and skips initdb). hot_standby is on by default, so the replica answers
// read-only queries while it replays the primary's WAL. Stopped, it starts
// again (StartReplica or Start on the same Dir) and catches up.
//
// initdb --auth=trust (Start without Options.Password, as the tests start
// their clusters) lets local replication connections in: its
// pg_hba.conf has "host replication all 127.0.0.1/32 trust", and PostgreSQL
// 15's defaults (wal_level=replica, max_wal_senders=10) allow streaming.
// The replica gets the same settings as its primary from opts (Fast, the
// port); max_connections is the same on both, as a hot standby requires.
func StartReplica(ctx context.Context, primary *Cluster, opts Options) (*Cluster, error) {
	c, err := Open(opts.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := ChownToPostgres(c.Dir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		// -X stream copies the WAL written during the backup too, -c fast
		// asks for an immediate checkpoint instead of waiting for one.
		if err := c.run(ctx, "pg_basebackup", "-D", c.dataDir(), "-R", "-X", "stream", "-c", "fast",
			"-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port), "-U", "postgres"); err != nil {
			return nil, fmt.Errorf("pg_basebackup from port %d: %w", primary.Port, err)
		}
	}
	return Start(ctx, opts)
}
