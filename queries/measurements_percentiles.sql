-- The elapsed histograms of the grouped measurements' percentiles
-- (measurements_hourly_hist, measurements_daily_hist: a row per rollup
-- cell and part, the bucket counts encoded in hist as migration 00013 describes;
-- internal/store/postgres/measurements_percentiles.go).
--
-- Writing a batch's histograms, in the ingest transaction (a cell may be
-- held in several rows, its parts: migration 00016):
--   1. Lock*: of each of the batch's cells, a part no other transaction
--      holds, now locked by this one (SKIP LOCKED: a batch never waits
--      here), with its histogram;
--   2. Go adds the batch's counts to one locked part of each cell, and Set*
--      writes them back (in the batch of the rollups that follows);
--   3. Insert* adds a part for each cell that had none free (a new cell, or
--      every part held by a concurrent batch), with a random part number;
--      Go retries with another number for a row the insert skipped.

-- name: LockMeasurementHourlyHist :many
-- One part per cell at most (the lowest free one): locking them all would
-- leave none for the next concurrent batch, which would add a part each
-- time.
-- The statement is the body of telemetry_lock_measurement_hourly_hist
-- (migration 00034), which each connection plans once. sqlc cannot type a
-- table function's columns: they are named in the alias list and cast.
SELECT f.start_hour::timestamptz AS start_hour,
       f.end_hour::timestamptz AS end_hour,
       f.app::text AS app,
       f.name::text AS name,
       f.method::text AS method,
       f.part::smallint AS part,
       f.hist::bytea AS hist
FROM telemetry_lock_measurement_hourly_hist(
    @start_hours::timestamptz[], @end_hours::timestamptz[], @apps::text[], @names::text[], @methods::text[])
    AS f (start_hour, end_hour, app, name, method, part, hist);

-- name: InsertMeasurementHourlyHist :many
-- The statement is the body of telemetry_insert_measurement_hourly_hist
-- (migration 00034), which each connection plans once. sqlc cannot type a
-- table function's columns: they are named in the alias list and cast.
SELECT f.start_hour::timestamptz AS start_hour,
       f.end_hour::timestamptz AS end_hour,
       f.app::text AS app,
       f.name::text AS name,
       f.method::text AS method
FROM telemetry_insert_measurement_hourly_hist(
    @start_hours::timestamptz[], @end_hours::timestamptz[], @apps::text[], @names::text[], @methods::text[],
    @parts::smallint[], @hists::bytea[])
    AS f (start_hour, end_hour, app, name, method);

-- name: SetMeasurementHourlyHist :exec
-- The statement is the body of telemetry_set_measurement_hourly_hist
-- (migration 00034), which each connection plans once.
SELECT telemetry_set_measurement_hourly_hist(
    @start_hours::timestamptz[], @end_hours::timestamptz[], @apps::text[], @names::text[], @methods::text[],
    @parts::smallint[], @hists::bytea[]);

-- name: LockMeasurementDailyHist :many
-- The same three for measurements_daily_hist.
-- The statement is the body of telemetry_lock_measurement_daily_hist
-- (migration 00034), which each connection plans once. sqlc cannot type a
-- table function's columns: they are named in the alias list and cast.
SELECT f.start_day::timestamptz AS start_day,
       f.end_day::timestamptz AS end_day,
       f.app::text AS app,
       f.name::text AS name,
       f.method::text AS method,
       f.part::smallint AS part,
       f.hist::bytea AS hist
FROM telemetry_lock_measurement_daily_hist(
    @start_days::timestamptz[], @end_days::timestamptz[], @apps::text[], @names::text[], @methods::text[])
    AS f (start_day, end_day, app, name, method, part, hist);

-- name: InsertMeasurementDailyHist :many
-- The statement is the body of telemetry_insert_measurement_daily_hist
-- (migration 00034), which each connection plans once. sqlc cannot type a
-- table function's columns: they are named in the alias list and cast.
SELECT f.start_day::timestamptz AS start_day,
       f.end_day::timestamptz AS end_day,
       f.app::text AS app,
       f.name::text AS name,
       f.method::text AS method
FROM telemetry_insert_measurement_daily_hist(
    @start_days::timestamptz[], @end_days::timestamptz[], @apps::text[], @names::text[], @methods::text[],
    @parts::smallint[], @hists::bytea[])
    AS f (start_day, end_day, app, name, method);

-- name: SetMeasurementDailyHist :exec
-- The statement is the body of telemetry_set_measurement_daily_hist
-- (migration 00034), which each connection plans once.
SELECT telemetry_set_measurement_daily_hist(
    @start_days::timestamptz[], @end_days::timestamptz[], @apps::text[], @names::text[], @methods::text[],
    @parts::smallint[], @hists::bytea[]);

-- name: DeleteMeasurementHist :exec
-- With DeleteMeasurementRollup: forget the histograms of rows started in
-- [@since, @until) (whole UTC days).
WITH hourly AS (
    DELETE FROM measurements_hourly_hist WHERE start_hour >= @since::timestamptz AND start_hour < @until::timestamptz
)
DELETE FROM measurements_daily_hist WHERE start_day >= @since::timestamptz AND start_day < @until::timestamptz;

-- name: FillMeasurementHist :exec
-- With FillMeasurementRollup: recompute the histograms from the rows (the
-- daily ones from the hourly buckets, before they are encoded).
WITH buckets AS (
    SELECT date_trunc('hour', started_at, 'UTC') AS start_hour, date_trunc('hour', ended_at, 'UTC') AS end_hour,
           app, name, method, telemetry_elapsed_bucket(elapsed)::integer AS bucket, count(*) AS n
    FROM measurements
    WHERE started_at >= @since::timestamptz AND started_at < @until::timestamptz
    GROUP BY 1, 2, 3, 4, 5, 6
), hourly AS (
    INSERT INTO measurements_hourly_hist (start_hour, end_hour, app, name, method, hist)
    SELECT b.start_hour, b.end_hour, b.app, b.name, b.method, telemetry_hist_encode(array_agg(b.bucket), array_agg(b.n))
    FROM buckets b
    GROUP BY b.start_hour, b.end_hour, b.app, b.name, b.method
)
INSERT INTO measurements_daily_hist (start_day, end_day, app, name, method, hist)
SELECT d.start_day, d.end_day, d.app, d.name, d.method, telemetry_hist_encode(array_agg(d.bucket), array_agg(d.n))
FROM (
    SELECT date_trunc('day', b.start_hour, 'UTC') AS start_day, date_trunc('day', b.end_hour, 'UTC') AS end_day,
           b.app, b.name, b.method, b.bucket, sum(b.n)::bigint AS n
    FROM buckets b
    GROUP BY 1, 2, 3, 4, 5, 6
) AS d
GROUP BY d.start_day, d.end_day, d.app, d.name, d.method;

-- name: GroupMeasurementsPage :many
-- The grouped view, one page of it (the API's page, or a run of an export):
-- per (name, method) count and elapsed statistics in the asked order (ties
-- by name, method) with the number of groups, and for each group of the
-- page the encoded histograms of its whole days and hours (hists) and the
-- histogram bucket of each of its rows in the window's partial hours
-- (edge_buckets), which the caller adds up into its
-- percentiles. The rows of the partial hours are read once for both (at 10 M
-- rows a partial hour holds up to 14,000 of them, the largest part of the
-- cost), and the statement is planned once. Until 2026-12-01 two queries
-- did this (the statistics, then the page's histograms).
WITH late AS (
    -- Whether edge B's cells hold a row that ended after the window: their
    -- minima and maxima cannot be corrected, so edge B is then read from
    -- the rows. Likewise once rows of it may have expired
    -- (retention_watermarks): a late row may be gone, and edge B is what is
    -- left of its rows (docs/lifecycle.md).
    SELECT coalesce((SELECT w.deleted_before > @h1::timestamptz FROM retention_watermarks w
                     WHERE w.table_name = 'measurements'), true)
        OR EXISTS (
        SELECT 1 FROM measurements m
        WHERE m.started_at >= @h1::timestamptz AND m.started_at < @h2_next::timestamptz
          AND m.ended_at > @ended_at::timestamptz AND m.ended_at < @h2_next::timestamptz
          AND (sqlc.narg('name')::text IS NULL OR m.name = sqlc.narg('name')::text)
          AND (cardinality(@methods::text[]) = 0 OR m.method = ANY(@methods::text[]))
          AND (sqlc.narg('app')::text IS NULL OR m.app = sqlc.narg('app')::text)
    ) AS found
), edges AS (
    -- The rows of the partial hours: edge A read by time (as in
    -- CountMeasurements), or the whole window with an elapsed filter (the
    -- bounds then leave no whole hour), then edge B. Read once, by
    -- edge_groups, so not materialized: copying them into a tuplestore
    -- first cost 4-5 ms of a 36-50 ms call when the partial hour is long
    -- (minute 05 or 15 at 10 M rows).
    SELECT m.name, m.method, m.elapsed
    FROM (
        SELECT m.name, m.method, m.app, m.elapsed FROM measurements m
        WHERE m.started_at >= @started_at::timestamptz AND m.started_at < @h1::timestamptz
          AND m.started_at <= @ended_at::timestamptz AND m.ended_at <= @ended_at::timestamptz
          AND sqlc.narg('min_elapsed')::float8 IS NULL
        OFFSET 0
    ) m
    WHERE (sqlc.narg('name')::text IS NULL OR m.name = sqlc.narg('name')::text)
      AND (cardinality(@methods::text[]) = 0 OR m.method = ANY(@methods::text[]))
      AND (sqlc.narg('app')::text IS NULL OR m.app = sqlc.narg('app')::text)
    UNION ALL
    SELECT m.name, m.method, m.elapsed
    FROM measurements m
    WHERE m.started_at >= @started_at::timestamptz AND m.started_at < @h1::timestamptz
      AND m.started_at <= @ended_at::timestamptz AND m.ended_at <= @ended_at::timestamptz
      -- Never false (ended_at >= started_at is a CHECK): it bounds a name index scan to the window.
      AND m.ended_at >= @started_at::timestamptz
      AND (sqlc.narg('name')::text IS NULL OR m.name = sqlc.narg('name')::text)
      AND (cardinality(@methods::text[]) = 0 OR m.method = ANY(@methods::text[]))
      AND (sqlc.narg('app')::text IS NULL OR m.app = sqlc.narg('app')::text)
      AND m.elapsed >= sqlc.narg('min_elapsed')::float8
      -- Below the slow-row threshold the caller passes the filter again as
      -- @bucket_floor, the same bound in measurements_elapsed_bucket_idx's terms
      -- (migration 00024); at or above it the slow-row indexes serve the
      -- filter alone (with the bound, the planner ANDed both indexes: 7 -> 20 ms).
      AND (sqlc.narg('bucket_floor')::float8 IS NULL
           OR telemetry_elapsed_bucket(m.elapsed) >= telemetry_elapsed_bucket(sqlc.narg('bucket_floor')::float8))
    UNION ALL
    SELECT m.name, m.method, m.elapsed
    FROM measurements m
    WHERE m.started_at >= @h1::timestamptz AND m.started_at <= @ended_at::timestamptz
      AND m.ended_at >= @h2::timestamptz AND m.ended_at <= @ended_at::timestamptz
      AND (sqlc.narg('name')::text IS NULL OR m.name = sqlc.narg('name')::text)
      AND (cardinality(@methods::text[]) = 0 OR m.method = ANY(@methods::text[]))
      AND (sqlc.narg('app')::text IS NULL OR m.app = sqlc.narg('app')::text)
      AND (sqlc.narg('min_elapsed')::float8 IS NULL OR m.elapsed >= sqlc.narg('min_elapsed')::float8)
      AND (SELECT l.found FROM late l)
), edge_groups AS (
    -- The partial hours' statistics per group in one pass over their rows,
    -- with the histogram bucket of each row (Go counts them for the page's
    -- groups). Counting them per (group, bucket) here cost a hash entry per
    -- row instead: at 10 M rows an edge's 12,700 rows fell into 7,400
    -- (name, method, bucket) cells, 15 ms of the statement's 40.
    SELECT e.name, e.method, count(*)::bigint AS count, sum(e.elapsed) AS sum_elapsed,
           min(e.elapsed) AS min_elapsed, max(e.elapsed) AS max_elapsed,
           array_agg(telemetry_elapsed_bucket(e.elapsed)) AS buckets
    FROM edges e
    GROUP BY e.name, e.method
), parts AS (
    SELECT r.name, r.method, r.count, r.sum_elapsed, r.min_elapsed, r.max_elapsed
    FROM measurements_daily r
    WHERE r.start_day >= @d1::timestamptz AND r.end_day < @d2::timestamptz
    AND (sqlc.narg('name')::text IS NULL OR r.name = sqlc.narg('name')::text)
    AND (cardinality(@methods::text[]) = 0 OR r.method = ANY(@methods::text[]))
    AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
    UNION ALL
    SELECT r.name, r.method, r.count, r.sum_elapsed, r.min_elapsed, r.max_elapsed
    FROM measurements_hourly r
    WHERE r.start_hour >= @h1::timestamptz AND r.start_hour < @d1::timestamptz AND r.end_hour < @h2::timestamptz
    AND (sqlc.narg('name')::text IS NULL OR r.name = sqlc.narg('name')::text)
    AND (cardinality(@methods::text[]) = 0 OR r.method = ANY(@methods::text[]))
    AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
    UNION ALL
    SELECT r.name, r.method, r.count, r.sum_elapsed, r.min_elapsed, r.max_elapsed
    FROM measurements_hourly r
    WHERE r.end_hour >= @d2::timestamptz AND r.end_hour < @h2::timestamptz AND r.start_hour >= @d1::timestamptz
    AND (sqlc.narg('name')::text IS NULL OR r.name = sqlc.narg('name')::text)
    AND (cardinality(@methods::text[]) = 0 OR r.method = ANY(@methods::text[]))
    AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
    UNION ALL
    SELECT r.name, r.method, r.count, r.sum_elapsed, r.min_elapsed, r.max_elapsed
    FROM measurements_hourly r
    WHERE r.end_hour = @h2::timestamptz AND r.start_hour >= @h1::timestamptz
    AND (sqlc.narg('name')::text IS NULL OR r.name = sqlc.narg('name')::text)
    AND (cardinality(@methods::text[]) = 0 OR r.method = ANY(@methods::text[]))
    AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
    AND NOT (SELECT l.found FROM late l)
    UNION ALL
    SELECT e.name, e.method, e.count, e.sum_elapsed, e.min_elapsed, e.max_elapsed
    FROM edge_groups e
), groups AS (
    SELECT p.name, p.method, sum(p.count)::bigint AS count,
           (sum(p.sum_elapsed) / sum(p.count))::float8 AS avg_elapsed,
           min(p.min_elapsed)::float8 AS min_elapsed, max(p.max_elapsed)::float8 AS max_elapsed,
           CASE @sort_key::text
               WHEN 'count' THEN sum(p.count)::float8
               WHEN 'avgElapsed' THEN (sum(p.sum_elapsed) / sum(p.count))::float8
               WHEN 'minElapsed' THEN min(p.min_elapsed)::float8
               WHEN 'maxElapsed' THEN max(p.max_elapsed)::float8
           END AS sort_value
    FROM parts p
    GROUP BY p.name, p.method
), ranked AS (
    SELECT g.name, g.method, g.count, g.avg_elapsed, g.min_elapsed, g.max_elapsed,
           (row_number() OVER (ORDER BY
               CASE WHEN @descending::bool THEN g.sort_value END DESC,
               CASE WHEN NOT @descending::bool THEN g.sort_value END ASC,
               CASE WHEN @descending::bool AND @sort_key::text = 'name' THEN g.name END DESC,
               CASE WHEN @descending::bool AND @sort_key::text = 'name' THEN g.method END DESC,
               g.name, g.method))::bigint AS ord,
           (count(*) OVER ())::bigint AS total
    FROM groups g
), page AS MATERIALIZED (
    SELECT r.name, r.method, r.count, r.avg_elapsed, r.min_elapsed, r.max_elapsed, r.ord, r.total
    FROM ranked r
    WHERE r.ord > @row_offset::bigint AND r.ord - @row_offset::bigint <= @row_limit::bigint
), hists AS (
    SELECT h.name, h.method, array_agg(h.hist) AS hists
    FROM (
        SELECT r.name, r.method, r.hist
        FROM measurements_daily_hist r JOIN page p ON p.name = r.name AND p.method = r.method
        WHERE r.start_day >= @d1::timestamptz AND r.end_day < @d2::timestamptz
          AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
          AND sqlc.narg('min_elapsed')::float8 IS NULL
        UNION ALL
        SELECT r.name, r.method, r.hist
        FROM measurements_hourly_hist r JOIN page p ON p.name = r.name AND p.method = r.method
        WHERE r.start_hour >= @h1::timestamptz AND r.start_hour < @d1::timestamptz AND r.end_hour < @h2::timestamptz
          AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
          AND sqlc.narg('min_elapsed')::float8 IS NULL
        UNION ALL
        SELECT r.name, r.method, r.hist
        FROM measurements_hourly_hist r JOIN page p ON p.name = r.name AND p.method = r.method
        WHERE r.end_hour >= @d2::timestamptz AND r.end_hour < @h2::timestamptz AND r.start_hour >= @d1::timestamptz
          AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
          AND sqlc.narg('min_elapsed')::float8 IS NULL
        UNION ALL
        SELECT r.name, r.method, r.hist
        FROM measurements_hourly_hist r JOIN page p ON p.name = r.name AND p.method = r.method
        WHERE r.end_hour = @h2::timestamptz AND r.start_hour >= @h1::timestamptz
          AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
          AND sqlc.narg('min_elapsed')::float8 IS NULL
          AND NOT (SELECT l.found FROM late l)
    ) h
    GROUP BY h.name, h.method
)
SELECT p.name, p.method, p.count, p.avg_elapsed, p.min_elapsed, p.max_elapsed, p.total,
       COALESCE(h.hists, '{}')::bytea[] AS hists,
       COALESCE(e.buckets, '{}')::smallint[] AS edge_buckets
FROM page p
LEFT JOIN hists h ON h.name = p.name AND h.method = p.method
LEFT JOIN edge_groups e ON e.name = p.name AND e.method = p.method
ORDER BY p.ord;
