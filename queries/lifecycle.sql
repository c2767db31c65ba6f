-- The maintenance pass (internal/store/postgres/lifecycle.go,
-- docs/lifecycle.md). Expired rows go in batches of at most @batch rows per
-- statement, oldest first through an index on the time column: each batch
-- is its own short transaction, so no lock is held for long and writes keep
-- flowing. Each batch starts at @after, the last time the previous batch
-- deleted (inclusive: rows of that same instant left over are taken now),
-- so the index scan starts past the entries already deleted instead of
-- stepping over all of them again (that made every batch slower than the
-- last: 25,000 rows/s falling to under 5,000 after 4 M rows). ctid is the
-- row's physical address: the plain tables these statements run on
-- (hypertables drop whole chunks instead) need no key to find the rows the
-- batch picked.

-- name: AcquireMaintenanceLease :one
-- Takes the lease when nobody holds it or the holder's has lapsed; no row
-- when another pass holds it.
INSERT INTO maintenance_lease (name, holder, acquired_at, expires_at)
VALUES ('maintenance', @holder, now(), now() + make_interval(secs => @lease_seconds::float8))
ON CONFLICT (name) DO UPDATE
SET holder = excluded.holder, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
WHERE maintenance_lease.expires_at <= now()
RETURNING holder;

-- name: RenewMaintenanceLease :execrows
-- 0 rows: the lease lapsed and another pass took it.
UPDATE maintenance_lease
SET expires_at = now() + make_interval(secs => @lease_seconds::float8)
WHERE name = 'maintenance' AND holder = @holder;

-- name: ReleaseMaintenanceLease :exec
-- Lets the lease lapse now and keeps its row: a row deleted at every
-- release let autovacuum truncate the table to no page, and taking the
-- lease again then had to extend the file, which fails on a full disk: the
-- pass that would drop the expired chunks could not start. Kept, the row is
-- updated in place (docs/lifecycle.md, "A full disk").
UPDATE maintenance_lease SET expires_at = now() WHERE name = 'maintenance' AND holder = @holder;

-- name: DeleteExpiredMeasurements :one
WITH gone AS (
    DELETE FROM measurements
    WHERE ctid = ANY (ARRAY(
        SELECT x.ctid FROM measurements x
        WHERE x.started_at >= @after::timestamptz AND x.started_at < @before::timestamptz
        ORDER BY x.started_at LIMIT @batch))
    RETURNING started_at
)
SELECT count(*)::bigint AS deleted, coalesce(max(started_at), @after::timestamptz)::timestamptz AS last FROM gone;

-- name: DeleteExpiredDeviceMetrics :one
-- History only: device_metrics_latest keeps the latest report of every
-- series (the current views read it, and leave out stale values by ttl).
WITH gone AS (
    DELETE FROM device_metrics
    WHERE ctid = ANY (ARRAY(
        SELECT x.ctid FROM device_metrics x
        WHERE x.time >= @after::timestamptz AND x.time < @before::timestamptz
        ORDER BY x.time LIMIT @batch))
    RETURNING time
)
SELECT count(*)::bigint AS deleted, coalesce(max(time), @after::timestamptz)::timestamptz AS last FROM gone;

-- name: DeleteExpiredRuntimeSamples :one
WITH gone AS (
    DELETE FROM runtime_samples
    WHERE ctid = ANY (ARRAY(
        SELECT x.ctid FROM runtime_samples x
        WHERE x.time >= @after::timestamptz AND x.time < @before::timestamptz
        ORDER BY x.time LIMIT @batch))
    RETURNING time
)
SELECT count(*)::bigint AS deleted, coalesce(max(time), @after::timestamptz)::timestamptz AS last FROM gone;

-- name: DeleteExpiredRuntimeSamplesHourly :one
-- The runtime samples' hourly cells (migration 00054), kept as long as the
-- samples: @before is the samples' cutoff less an hour, so that only cells
-- wholly before the cutoff go.
WITH gone AS (
    DELETE FROM runtime_samples_hourly
    WHERE ctid = ANY (ARRAY(
        SELECT x.ctid FROM runtime_samples_hourly x
        WHERE x.hour >= @after::timestamptz AND x.hour < @before::timestamptz
        ORDER BY x.hour LIMIT @batch))
    RETURNING hour
)
SELECT count(*)::bigint AS deleted, coalesce(max(hour), @after::timestamptz)::timestamptz AS last FROM gone;

-- name: DeleteExpiredFlows :one
WITH gone AS (
    DELETE FROM flows
    WHERE ctid = ANY (ARRAY(
        SELECT x.ctid FROM flows x
        WHERE x.hour >= @after::timestamptz AND x.hour < @before::timestamptz
        ORDER BY x.hour LIMIT @batch))
    RETURNING hour
)
SELECT count(*)::bigint AS deleted, coalesce(max(hour), @after::timestamptz)::timestamptz AS last FROM gone;

-- name: DeleteExpiredFlowsHourly :one
-- The flows rollup (migration 00014) of the hours the pass expired from
-- flows: only hours flows has no row of any more, so that it keeps
-- counting exactly what flows holds also when TimescaleDB dropped whole
-- chunks (which may stop short of the cutoff).
WITH gone AS (
    DELETE FROM flows_hourly
    WHERE ctid = ANY (ARRAY(
        SELECT x.ctid FROM flows_hourly x
        WHERE x.hour >= @after::timestamptz AND x.hour < @before::timestamptz
          AND NOT EXISTS (SELECT 1 FROM flows f WHERE f.hour = x.hour)
        ORDER BY x.hour LIMIT @batch))
    RETURNING hour
)
SELECT count(*)::bigint AS deleted, coalesce(max(hour), @after::timestamptz)::timestamptz AS last FROM gone;

-- name: DeleteExpiredRuns :one
-- Load-test runs go whole, with their events, in one statement: a
-- committed run once its end is expired, a run still running once its
-- start is (it was abandoned; a late commit is then a 404). Answers the
-- runs and the events removed. The events are deleted here, not by a
-- foreign key's cascade (migration 00025 dropped it).
WITH gone AS (
    DELETE FROM event_runs
    WHERE uuid = ANY (ARRAY(
        SELECT r.uuid FROM event_runs r
        WHERE coalesce(r.ended_at, r.started_at) < @before::timestamptz
        LIMIT @batch))
    RETURNING uuid
), gone_events AS (
    DELETE FROM events e
    WHERE e.uuid IN (SELECT uuid FROM gone)
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone)::bigint AS runs,
       (SELECT count(*) FROM gone_events)::bigint AS events;

-- name: DeleteExpiredHourlyRollup :one
WITH gone AS (
    DELETE FROM measurements_hourly
    WHERE ctid = ANY (ARRAY(
        SELECT x.ctid FROM measurements_hourly x
        WHERE x.start_hour >= @after::timestamptz AND x.start_hour < @before::timestamptz
        ORDER BY x.start_hour LIMIT @batch))
    RETURNING start_hour
)
SELECT count(*)::bigint AS deleted, coalesce(max(start_hour), @after::timestamptz)::timestamptz AS last FROM gone;

-- name: DeleteExpiredDailyRollup :one
WITH gone AS (
    DELETE FROM measurements_daily
    WHERE ctid = ANY (ARRAY(
        SELECT x.ctid FROM measurements_daily x
        WHERE x.start_day >= @after::timestamptz AND x.start_day < @before::timestamptz
        ORDER BY x.start_day LIMIT @batch))
    RETURNING start_day
)
SELECT count(*)::bigint AS deleted, coalesce(max(start_day), @after::timestamptz)::timestamptz AS last FROM gone;

-- name: DeleteExpiredMethodRollup :one
WITH gone AS (
    DELETE FROM measurements_method_hourly
    WHERE ctid = ANY (ARRAY(
        SELECT x.ctid FROM measurements_method_hourly x
        WHERE x.start_hour >= @after::timestamptz AND x.start_hour < @before::timestamptz
        ORDER BY x.start_hour LIMIT @batch))
    RETURNING start_hour
)
SELECT count(*)::bigint AS deleted, coalesce(max(start_hour), @after::timestamptz)::timestamptz AS last FROM gone;

-- name: DeleteExpired5minRollup :one
WITH gone AS (
    DELETE FROM measurements_5min
    WHERE ctid = ANY (ARRAY(
        SELECT x.ctid FROM measurements_5min x
        WHERE x.start_bin >= @after::timestamptz AND x.start_bin < @before::timestamptz
        ORDER BY x.start_bin LIMIT @batch))
    RETURNING start_bin
)
SELECT count(*)::bigint AS deleted, coalesce(max(start_bin), @after::timestamptz)::timestamptz AS last FROM gone;

-- name: DeleteExpiredCollectionHTTPMinutes :one
-- The requests' minute cells of the metrics collections (migration 00020).
WITH gone AS (
    DELETE FROM collection_http_minute
    WHERE ctid = ANY (ARRAY(
        SELECT x.ctid FROM collection_http_minute x
        WHERE x.minute >= @after::timestamptz AND x.minute < @before::timestamptz
        ORDER BY x.minute LIMIT @batch))
    RETURNING minute
)
SELECT count(*)::bigint AS deleted, coalesce(max(minute), @after::timestamptz)::timestamptz AS last FROM gone;

-- name: DeleteExpiredCollectionHTTPBins :one
-- The requests' 10-second bins (migration 00031), kept as long as the rows
-- they stand in for: @before is the rows' cutoff less 10 s, so that only
-- bins wholly before the cutoff go.
WITH gone AS (
    DELETE FROM collection_http_10s
    WHERE ctid = ANY (ARRAY(
        SELECT x.ctid FROM collection_http_10s x
        WHERE x.bin >= @after::timestamptz AND x.bin < @before::timestamptz
        ORDER BY x.bin LIMIT @batch))
    RETURNING bin
)
SELECT count(*)::bigint AS deleted, coalesce(max(bin), @after::timestamptz)::timestamptz AS last FROM gone;

-- name: DeleteExpiredHourlyHistogram :one
-- The percentile histograms go with their rollup cells (the same cut).
WITH gone AS (
    DELETE FROM measurements_hourly_hist
    WHERE ctid = ANY (ARRAY(
        SELECT x.ctid FROM measurements_hourly_hist x
        WHERE x.start_hour >= @after::timestamptz AND x.start_hour < @before::timestamptz
        ORDER BY x.start_hour LIMIT @batch))
    RETURNING start_hour
)
SELECT count(*)::bigint AS deleted, coalesce(max(start_hour), @after::timestamptz)::timestamptz AS last FROM gone;

-- name: DeleteExpiredDailyHistogram :one
WITH gone AS (
    DELETE FROM measurements_daily_hist
    WHERE ctid = ANY (ARRAY(
        SELECT x.ctid FROM measurements_daily_hist x
        WHERE x.start_day >= @after::timestamptz AND x.start_day < @before::timestamptz
        ORDER BY x.start_day LIMIT @batch))
    RETURNING start_day
)
SELECT count(*)::bigint AS deleted, coalesce(max(start_day), @after::timestamptz)::timestamptz AS last FROM gone;

-- name: RaiseRetentionWatermark :exec
-- Before a pass deletes rows of @table_name started before @before
-- (migration 00021): the mark only moves forward.
INSERT INTO retention_watermarks AS w (table_name, deleted_before)
VALUES (@table_name::text, @before::timestamptz)
ON CONFLICT (table_name) DO UPDATE SET deleted_before = greatest(w.deleted_before, excluded.deleted_before);

-- name: DeleteExpiredIdempotencyKeys :execrows
-- Expired answers of keyed writes, the oldest first, a batch at a time.
-- Each keyed request also deletes up to 10 (GetIdempotentAnswer); this
-- sweep clears what is left once keyed writes stop coming. Rows another
-- transaction holds (a key being overwritten) are skipped.
DELETE FROM idempotency_keys
WHERE key IN (
    SELECT e.key FROM idempotency_keys e
    WHERE e.expires_at <= now()
    ORDER BY e.expires_at
    LIMIT @batch
    FOR UPDATE SKIP LOCKED
);
