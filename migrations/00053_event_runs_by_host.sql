-- GET /apiv0.1/states?host=... (and its CSV and NDJSON exports) read by
-- an index of each load generator's runs, newest first.
--
-- The list's page walked event_runs_recent_idx (every run, newest first)
-- filtering on the host until it had a page, and its total counted every
-- run: at 200,000 runs over a year (BenchmarkEventsScale, docs/events.md,
-- "At volume") a page of a load generator's runs read 200,000 to 400,000
-- rows to answer 50, and one that ran rarely (250 runs) 240,000. The
-- export of one host's runs read every run too. With this index the page,
-- its total and the export read that host's runs only.
--
-- One entry per register and per commit (a commit already writes an entry in
-- every index of event_runs: the state it changes is in the predicate of
-- event_runs_running_key_idx, so its update is never HOT). event_runs is a
-- plain table with TimescaleDB too (migration 00003).

-- +goose Up
CREATE INDEX event_runs_host_recent_idx ON event_runs (host, started_at DESC, uuid DESC);

-- +goose Down
DROP INDEX event_runs_host_recent_idx;
