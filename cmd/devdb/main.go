// Command devdb manages the local development PostgreSQL cluster that
// `make run` uses when DATABASE_URL is unset: `devdb start` initialises
// ./.data/pg on first use, starts it (or finds it running) and prints the
// URL of its "telemetry" database; `devdb stop` stops it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/pgcluster"
)

func main() {
	dir := flag.String("dir", ".data/pg", "cluster directory")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: devdb [-dir DIR] start|stop")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(context.Background(), *dir, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "devdb:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir, cmd string) error {
	switch cmd {
	case "start":
		c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir})
		if err != nil {
			return err
		}
		if err := ensureDatabase(ctx, c.URL("postgres"), "telemetry"); err != nil {
			return err
		}
		fmt.Println(c.URL("telemetry"))
		return nil
	case "stop":
		if _, err := os.Stat(dir); err != nil {
			return nil // nothing was ever started
		}
		c, err := pgcluster.Open(dir)
		if err != nil {
			return err
		}
		return c.Stop(ctx)
	}
	flag.Usage()
	return fmt.Errorf("unknown command %q", cmd)
}

func ensureDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return err
	}
	return nil
}
