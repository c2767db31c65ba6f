-- GET /apiv0.1/events/isrunning in pages, in the order of its keys:
-- event_runs_running_idx (started_at, running runs only) is replaced by
-- event_runs_running_key_idx, the answer's key <host>-<uuid> in byte order
-- (COLLATE "C"), running runs only.
--
-- The answer is an object with one key per running run, and runs that are
-- never committed (a crashed Locust client, anyone registering: a write
-- needs no token by default) stay running until the retention of the events
-- expires them, never under the default EVENTS_RETENTION=0. It was read and
-- built whole: 200,000 running runs were a 12 MB answer and about 132 MB
-- allocated by one request (GOMEMLIMIT is 128 MiB). It is now read in pages
-- of 10,000 (queries/events.sql, ListRunningKeysAfter), each a range of this
-- index after the last key written, and written as it comes
-- (internal/api/events_running.go). Its order is the one the answer always
-- had (the encoder sorted the keys by their bytes, as "C" compares them),
-- so the answer keeps its bytes.
--
-- The index holds only running runs, as the one it replaces did: a register
-- writes one entry, a commit none (the row it writes is not running), and
-- the expiry of committed runs never meets it. An entry is the key's
-- length, host (at most 255 bytes) plus 37. The old index served only the
-- list of running runs (the expiry reads coalesce(ended_at, started_at)).
--
-- The build reads event_runs once (one row per load-test run) and holds
-- registers and commits meanwhile; reads go on until the old index's drop.

-- +goose Up
CREATE INDEX event_runs_running_key_idx ON event_runs ((host || '-' || uuid::text) COLLATE "C") WHERE state = 'running';
DROP INDEX event_runs_running_idx;

-- +goose Down
CREATE INDEX event_runs_running_idx ON event_runs (started_at) WHERE state = 'running';
DROP INDEX event_runs_running_key_idx;
