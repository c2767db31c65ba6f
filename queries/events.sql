-- name: RegisterRun :one
-- Stores a new run (state running) and its register event in one
-- statement, so neither exists without the other.
WITH run AS (
    INSERT INTO event_runs (uuid, host, target_host, mode, clients, hatch_rate, requests, started_at)
    VALUES (gen_random_uuid(), @host::text, sqlc.narg('target_host')::text, sqlc.narg('mode')::text,
            sqlc.narg('clients')::bigint, sqlc.narg('hatch_rate')::float8, sqlc.narg('requests')::bigint,
            coalesce(sqlc.narg('started_at')::timestamptz, now()))
    RETURNING uuid, host, started_at
)
INSERT INTO events (time, uuid, kind, host, tags, fields, payload)
SELECT run.started_at, run.uuid, 'register', run.host,
       events_payload_tags(@payload::jsonb), events_payload_fields(@payload::jsonb), @payload::jsonb
FROM run
RETURNING uuid;

-- name: CommitRun :one
-- Closes a running run and stores its commit event in one statement. The
-- UPDATE only matches a running run: of two concurrent commits the second
-- waits for the first's row lock, then finds the run committed and returns
-- no row (Events.Commit then tells 404 from 409 with GetRunState).
WITH done AS (
    UPDATE event_runs AS r
    SET state        = 'committed',
        ended_at     = coalesce(sqlc.narg('ended_at')::timestamptz, now()),
        committed_at = now(),
        target_host  = coalesce(r.target_host, sqlc.narg('target_host')::text),
        mode         = coalesce(r.mode, sqlc.narg('mode')::text)
    WHERE r.uuid = @uuid AND r.state = 'running'
    RETURNING r.uuid, r.host, r.ended_at
)
INSERT INTO events (time, uuid, kind, host, tags, fields, request_stats, payload)
SELECT done.ended_at, done.uuid, 'commit', coalesce(sqlc.narg('host')::text, done.host),
       events_payload_tags(@payload::jsonb), events_payload_fields(@payload::jsonb),
       @payload::jsonb #> '{measurement,fields,requestStats}',
       @payload::jsonb #- '{measurement,fields,requestStats}'
FROM done
RETURNING uuid;

-- name: GetRunState :one
SELECT state FROM event_runs WHERE uuid = @uuid;

-- name: ListRunningKeysAfter :many
-- At most @n keys <host>-<uuid> (the ones GET /apiv0.1/events/isrunning
-- answers) of the runs not yet committed that sort after @after, in that
-- order, bytewise (COLLATE "C"): a range of event_runs_running_key_idx
-- (migration 00052), so a page costs its own rows wherever it starts. The
-- first page passes the empty string (no key is empty: a host has a
-- character at least).
SELECT (host || '-' || uuid::text)::text AS key FROM event_runs
WHERE state = 'running' AND (host || '-' || uuid::text) COLLATE "C" > @after::text
ORDER BY (host || '-' || uuid::text) COLLATE "C"
LIMIT @n;

-- name: ListRuns :many
-- One page of runs, newest first; total counts every run the filter matches,
-- in the same statement (one snapshot) but as a count of its own: a window
-- count(*) OVER () over the page's query kept every matching run in a
-- tuplestore before the page's first row (20 ms at 30,000 runs against 2;
-- docs/performance-mixed.md, "Counting beside the page").
SELECT p.uuid, p.host, p.target_host, p.mode, p.clients, p.hatch_rate, p.requests, p.state, p.started_at, p.ended_at,
       (SELECT count(*)
        FROM event_runs c
        WHERE (sqlc.narg('state')::text IS NULL OR c.state = sqlc.narg('state')::text)
          AND (sqlc.narg('host')::text IS NULL OR c.host = sqlc.narg('host')::text)
          AND (sqlc.narg('mode')::text IS NULL OR c.mode = sqlc.narg('mode')::text)
          AND (sqlc.narg('started_from')::timestamptz IS NULL OR c.started_at >= sqlc.narg('started_from')::timestamptz)
          AND (sqlc.narg('started_to')::timestamptz IS NULL OR c.started_at < sqlc.narg('started_to')::timestamptz)) AS total
FROM (
    SELECT r.uuid, r.host, r.target_host, r.mode, r.clients, r.hatch_rate, r.requests, r.state, r.started_at, r.ended_at
    FROM event_runs r
    WHERE (sqlc.narg('state')::text IS NULL OR r.state = sqlc.narg('state')::text)
      AND (sqlc.narg('host')::text IS NULL OR r.host = sqlc.narg('host')::text)
      AND (sqlc.narg('mode')::text IS NULL OR r.mode = sqlc.narg('mode')::text)
      AND (sqlc.narg('started_from')::timestamptz IS NULL OR r.started_at >= sqlc.narg('started_from')::timestamptz)
      AND (sqlc.narg('started_to')::timestamptz IS NULL OR r.started_at < sqlc.narg('started_to')::timestamptz)
    ORDER BY r.started_at DESC, r.uuid DESC
    LIMIT @row_limit::bigint OFFSET @row_offset::bigint
) p
ORDER BY p.started_at DESC, p.uuid DESC;

-- name: ExportRuns :many
-- Every run ListRuns' filter matches, in its order, for an export (no
-- count, no page).
SELECT uuid, host, target_host, mode, clients, hatch_rate, requests, state, started_at, ended_at
FROM event_runs
WHERE (sqlc.narg('state')::text IS NULL OR state = sqlc.narg('state')::text)
  AND (sqlc.narg('host')::text IS NULL OR host = sqlc.narg('host')::text)
  AND (sqlc.narg('mode')::text IS NULL OR mode = sqlc.narg('mode')::text)
  AND (sqlc.narg('started_from')::timestamptz IS NULL OR started_at >= sqlc.narg('started_from')::timestamptz)
  AND (sqlc.narg('started_to')::timestamptz IS NULL OR started_at < sqlc.narg('started_to')::timestamptz)
ORDER BY started_at DESC, uuid DESC;

-- name: CountRuns :one
SELECT count(*)
FROM event_runs
WHERE (sqlc.narg('state')::text IS NULL OR state = sqlc.narg('state')::text)
  AND (sqlc.narg('host')::text IS NULL OR host = sqlc.narg('host')::text)
  AND (sqlc.narg('mode')::text IS NULL OR mode = sqlc.narg('mode')::text)
  AND (sqlc.narg('started_from')::timestamptz IS NULL OR started_at >= sqlc.narg('started_from')::timestamptz)
  AND (sqlc.narg('started_to')::timestamptz IS NULL OR started_at < sqlc.narg('started_to')::timestamptz);

-- name: GetRun :one
SELECT uuid, host, target_host, mode, clients, hatch_rate, requests, state, started_at, ended_at
FROM event_runs
WHERE uuid = @uuid;

-- name: ListRunEvents :many
-- A run's events, register first, each payload whole again (requestStats
-- put back where it was received).
SELECT kind, time, host, received_at,
       (CASE WHEN request_stats IS NULL THEN payload
             ELSE jsonb_set(payload, '{measurement,fields,requestStats}', request_stats) END)::jsonb AS payload,
       request_stats
FROM events
WHERE uuid = @uuid
ORDER BY kind = 'commit', time;
