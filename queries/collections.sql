-- Metrics collections (appmetrics) and the runtime samples they read.

-- name: InsertRuntimeSample :exec
-- One sample of one instance (written by internal/runtimestats); a trigger
-- adds it to its hourly cell (migration 00054).
INSERT INTO runtime_samples (time, instance_id, interval_seconds, process_cpu, system_cpu, gc_cpu_seconds,
    gc_pause_seconds, gc_cycles, gomaxprocs, heap_live_bytes, go_memory_bytes, rss_bytes, goroutines)
VALUES (@time, @instance_id, @interval_seconds, sqlc.narg('process_cpu'), sqlc.narg('system_cpu'), @gc_cpu_seconds,
    @gc_pause_seconds, @gc_cycles, @gomaxprocs, @heap_live_bytes, @go_memory_bytes, sqlc.narg('rss_bytes'), @goroutines);

-- name: LockCollections :exec
-- Serialises creates, clears and deletes until the end of the transaction,
-- in every server process sharing the database, so that a create's count
-- and insert see the same set of collections; and keeps out the writes of
-- the service's own requests (telemetry_add_collection_http_cells takes
-- the table in ROW EXCLUSIVE mode), so that a collection's running totals
-- (migration 00038) start from exactly the requests written before.
-- Reads are not blocked.
LOCK TABLE collections IN SHARE ROW EXCLUSIVE MODE;

-- name: CountCollections :one
SELECT count(*)::bigint FROM collections;

-- name: CreateCollection :one
INSERT INTO collections DEFAULT VALUES
RETURNING id;

-- name: ListCollectionIDs :many
-- Ids come from a sequence under the create lock: id order is creation order.
SELECT id FROM collections ORDER BY id;

-- name: GetCollectionWindow :one
-- The window [started_at, now] of a collection.
SELECT id, started_at, clock_timestamp()::timestamptz AS now
FROM collections
WHERE id = @id;

-- name: ClearCollection :execrows
-- Under LockCollections, with its totals deleted and started again after.
UPDATE collections SET started_at = clock_timestamp() WHERE id = @id;

-- name: DeleteCollectionHTTPTotals :exec
-- A collection's running totals, or with a null @id every collection's,
-- before StartCollectionHTTPTotals starts them again (a clear, RebuildRollup),
-- under LockCollections.
DELETE FROM collection_http_totals
WHERE sqlc.narg('id')::bigint IS NULL OR collection_id = sqlc.narg('id')::bigint;

-- name: StartCollectionHTTPTotals :exec
-- A collection's totals (migration 00038) from the cells and rows of its
-- window so far, under LockCollections: after its create or clear, the
-- requests of its window that were written before (none, unless an
-- instance's clock is ahead of the database's), the writes after it adding
-- theirs; with a null @id every collection's (RebuildRollup).
INSERT INTO collection_http_totals (collection_id, path, method, hits, sum_elapsed, max_elapsed)
SELECT c.id, s.path, s.method, s.hits, s.sum_elapsed, s.max_elapsed
FROM collections c, collection_http_sums(c.started_at, clock_timestamp() + interval '100 years') s
WHERE sqlc.narg('id')::bigint IS NULL OR c.id = sqlc.narg('id')::bigint;

-- name: CollectionHTTPTotals :many
-- The first @n entries of a collection's httpUrls from its running totals
-- (migration 00038), in path then method order (the primary key's).
SELECT t.path, t.method, t.hits, (t.sum_elapsed / t.hits)::float8 AS avg_elapsed, t.max_elapsed
FROM collection_http_totals t
WHERE t.collection_id = @id
ORDER BY t.path, t.method
LIMIT @n;

-- name: CollectionHTTPTotalsAfter :many
-- The next @n entries after (@after_path, @after_method): the row
-- comparison is a range of the primary key, so each page costs its own
-- entries.
SELECT t.path, t.method, t.hits, (t.sum_elapsed / t.hits)::float8 AS avg_elapsed, t.max_elapsed
FROM collection_http_totals t
WHERE t.collection_id = @id AND (t.path, t.method) > (@after_path::text, @after_method::text)
ORDER BY t.path, t.method
LIMIT @n;

-- name: DeleteCollection :execrows
DELETE FROM collections WHERE id = @id;

-- name: CollectionRuntime :one
-- Aggregates the samples of every instance that fall in (@since, @until].
-- A sample describes the interval (time - interval_seconds, time]; the part
-- of it inside the window (w seconds) weights its CPU fractions, and its GC
-- CPU time is prorated by the same share. gc_time is GC CPU time over the CPU
-- capacity available to Go (w * gomaxprocs) summed over the samples. Every
-- figure is 0 when the window holds no sample yet. A mean is at most its
-- peak: the weighted sum's rounding put a single sample's mean one unit in
-- the last place above it (0.1 over 3 s: 0.10000000000000002).
--
-- The window's whole UTC hours [h1, h2) come from the hourly cells
-- (migration 00054) of the instances whose samples there all began inside
-- the window (first_start >= @since: each counts with its whole interval,
-- w = interval_seconds, as the cells sum them); the samples of the partial
-- hours at both ends, and those of any other cell of a whole hour, from the
-- rows. Every bound is a scalar subquery, so that each read is a narrow
-- index range whatever the planner knows of the window (see migration
-- 00037). Without a whole hour in the window (h2 = h1) it is the rows alone,
-- summed as before the cells.
WITH b AS (
    SELECT x.h1, greatest(x.h1, date_bin('1 hour', @until::timestamptz, '1970-01-01 00:00:00+00')) AS h2
    FROM (SELECT date_bin('1 hour', @since::timestamptz, '1970-01-01 00:00:00+00') + interval '1 hour' AS h1) x
), cells AS (
    SELECT c.*
    FROM runtime_samples_hourly c
    WHERE c.hour >= (SELECT b.h1 FROM b) AND c.hour < (SELECT b.h2 FROM b)
), edge AS (
    SELECT r.process_cpu, r.system_cpu, r.gc_cpu_seconds, r.interval_seconds, r.gomaxprocs,
           r.heap_live_bytes, r.rss_bytes,
           least(r.interval_seconds, extract(epoch FROM r.time - @since::timestamptz)::float8) AS w
    FROM (
        SELECT r.* FROM runtime_samples r
        WHERE r.time > @since::timestamptz AND r.time < (SELECT b.h1 FROM b) AND r.time <= @until::timestamptz
        UNION ALL
        SELECT r.* FROM runtime_samples r
        WHERE r.time >= (SELECT b.h2 FROM b) AND r.time > @since::timestamptz AND r.time <= @until::timestamptz
        UNION ALL
        SELECT r.* FROM cells c
        JOIN runtime_samples r ON r.instance_id = c.instance_id AND r.time >= c.hour AND r.time < c.hour + interval '1 hour'
        WHERE c.first_start < @since::timestamptz
    ) r
), edges AS (
    SELECT count(*) AS samples,
           sum(s.w * s.system_cpu) AS system_wsum, sum(s.w) FILTER (WHERE s.system_cpu IS NOT NULL) AS system_w,
           max(s.system_cpu) AS system_peak,
           sum(s.w * s.process_cpu) AS process_wsum, sum(s.w) FILTER (WHERE s.process_cpu IS NOT NULL) AS process_w,
           max(s.process_cpu) AS process_peak,
           sum(s.gc_cpu_seconds * s.w / s.interval_seconds) AS gc_cpu, sum(s.w * s.gomaxprocs) AS gomaxprocs_w,
           max(s.heap_live_bytes) AS heap_peak, max(s.rss_bytes) AS rss_peak
    FROM edge s
), hourly AS (
    SELECT sum(c.samples) AS samples,
           sum(c.system_wsum) AS system_wsum, sum(c.system_w) AS system_w, max(c.system_peak) AS system_peak,
           sum(c.process_wsum) AS process_wsum, sum(c.process_w) AS process_w, max(c.process_peak) AS process_peak,
           sum(c.gc_cpu_seconds) AS gc_cpu, sum(c.gomaxprocs_w) AS gomaxprocs_w,
           max(c.heap_peak) AS heap_peak, max(c.rss_peak) AS rss_peak
    FROM cells c
    WHERE c.first_start >= @since::timestamptz
)
SELECT
    (s.samples + coalesce(h.samples, 0))::bigint AS samples,
    coalesce(least((coalesce(s.system_wsum, 0) + coalesce(h.system_wsum, 0))
                   / nullif(coalesce(s.system_w, 0) + coalesce(h.system_w, 0), 0),
                   greatest(s.system_peak, h.system_peak)), 0)::float8 AS system_mean,
    coalesce(greatest(s.system_peak, h.system_peak), 0)::float8 AS system_peak,
    coalesce(least((coalesce(s.process_wsum, 0) + coalesce(h.process_wsum, 0))
                   / nullif(coalesce(s.process_w, 0) + coalesce(h.process_w, 0), 0),
                   greatest(s.process_peak, h.process_peak)), 0)::float8 AS process_mean,
    coalesce(greatest(s.process_peak, h.process_peak), 0)::float8 AS process_peak,
    least(1, coalesce((coalesce(s.gc_cpu, 0) + coalesce(h.gc_cpu, 0))
                      / nullif(coalesce(s.gomaxprocs_w, 0) + coalesce(h.gomaxprocs_w, 0), 0), 0))::float8 AS gc_time,
    coalesce(greatest(s.heap_peak, h.heap_peak), 0)::bigint AS heap_live_peak,
    coalesce(greatest(s.rss_peak, h.rss_peak), 0)::bigint AS rss_peak
FROM edges s, hourly h;

-- name: CollectionHTTP :many
-- The service's own requests started in [@since, @until], per (URL path
-- without query, method), in path then method order. Elapsed is in seconds;
-- a self-profiling summary row counts for the requests it stands for. The
-- function (migrations/00015) groups by hashing, whatever the planner
-- expects of the window.
SELECT c.path::text AS path, c.method::text AS method, c.hits::bigint AS hits,
       c.avg_elapsed::float8 AS avg_elapsed, c.max_elapsed::float8 AS max_elapsed
FROM collection_http(@since::timestamptz, @until::timestamptz) AS c;
