package postgres

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// DefaultExecMode is the query exec mode when neither DATABASE_EXEC_MODE nor
// the URL's default_query_exec_mode names one. pgx's own default,
// cache_statement, keeps named prepared statements on each connection:
// behind PgBouncer in transaction pooling mode a connection's statements
// land on whichever server connection the next transaction gets, so a
// second instance meets "prepared statement already exists" (42P05) and the
// first "does not exist" (26000). cache_describe sends every query as an
// unnamed statement (Parse, Bind, Execute in one round trip) with the
// parameter and result types pgx described once per connection: it works
// through any pooler, keeps binary results, and costs a parse and plan per
// query (see docs/scaling.md for the figures).
const DefaultExecMode = "cache_describe"

// execModes are the values DATABASE_EXEC_MODE takes: pgx's names, as in a
// URL's default_query_exec_mode.
var execModes = map[string]pgx.QueryExecMode{
	"cache_statement": pgx.QueryExecModeCacheStatement,
	"cache_describe":  pgx.QueryExecModeCacheDescribe,
	"describe_exec":   pgx.QueryExecModeDescribeExec,
	"exec":            pgx.QueryExecModeExec,
	"simple_protocol": pgx.QueryExecModeSimpleProtocol,
}

// applyExecMode sets the pool's query exec mode to mode (DefaultExecMode when
// empty), unless the URL names one itself: an explicit
// default_query_exec_mode in the URL wins, as pgx already parsed it.
func applyExecMode(cc *pgx.ConnConfig, url, mode string) error {
	if strings.Contains(url, "default_query_exec_mode") {
		return nil
	}
	if mode == "" {
		mode = DefaultExecMode
	}
	m, ok := execModes[mode]
	if !ok {
		return fmt.Errorf("DATABASE_EXEC_MODE: unknown query exec mode %q", mode)
	}
	cc.DefaultQueryExecMode = m
	return nil
}
