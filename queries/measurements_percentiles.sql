-- The elapsed histograms of the grouped measurements' percentiles
-- (measurements_hourly_hist, measurements_daily_hist: one row per rollup
-- cell, the bucket counts encoded in hist as migration 00013 describes;
-- internal/store/postgres/measurements_percentiles.go).
--
-- Writing a batch's histograms is a read-modify-write in the ingest
-- transaction, since SQL has no cheap way to add two encoded histograms:
--   1. Claim*: insert the cells that are new (with the batch's histogram as
--      their value) and lock the others, all in key order in one statement,
--      so that concurrent batches take their locks in one order and cannot
--      deadlock; answers the cells it inserted.
--   2. Get*: the batch's cells as they are now (a statement after the
--      locks, so under READ COMMITTED it sees every earlier commit).
--   3. Go adds the batch's counts to the cells it did not insert, and Set*
--      writes them back.
-- 1 and 2 go in one pipelined round trip, 3 in a second.

-- name: ClaimMeasurementHourlyHist :many
INSERT INTO measurements_hourly_hist AS h (start_hour, end_hour, app, name, method, hist)
SELECT t.start_hour, t.end_hour, t.app, t.name, t.method, t.hist
FROM ROWS FROM (
    unnest(@start_hours::timestamptz[]),
    unnest(@end_hours::timestamptz[]),
    unnest(@apps::text[]),
    unnest(@names::text[]),
    unnest(@methods::text[]),
    unnest(@hists::bytea[])
) AS t (start_hour, end_hour, app, name, method, hist)
ORDER BY t.start_hour, t.end_hour, t.app, t.name, t.method
-- WHERE false: the existing row is locked, not updated (and not returned).
ON CONFLICT (start_hour, end_hour, app, name, method) DO UPDATE SET hist = h.hist WHERE false
RETURNING h.start_hour, h.end_hour, h.app, h.name, h.method;

-- name: GetMeasurementHourlyHist :many
SELECT h.start_hour, h.end_hour, h.app, h.name, h.method, h.hist
FROM measurements_hourly_hist h
JOIN ROWS FROM (
    unnest(@start_hours::timestamptz[]),
    unnest(@end_hours::timestamptz[]),
    unnest(@apps::text[]),
    unnest(@names::text[]),
    unnest(@methods::text[])
) AS t (start_hour, end_hour, app, name, method)
  ON h.start_hour = t.start_hour AND h.end_hour = t.end_hour AND h.app = t.app AND h.name = t.name AND h.method = t.method;

-- name: SetMeasurementHourlyHist :exec
UPDATE measurements_hourly_hist AS h SET hist = t.hist
FROM ROWS FROM (
    unnest(@start_hours::timestamptz[]),
    unnest(@end_hours::timestamptz[]),
    unnest(@apps::text[]),
    unnest(@names::text[]),
    unnest(@methods::text[]),
    unnest(@hists::bytea[])
) AS t (start_hour, end_hour, app, name, method, hist)
WHERE h.start_hour = t.start_hour AND h.end_hour = t.end_hour AND h.app = t.app AND h.name = t.name AND h.method = t.method;

-- name: ClaimMeasurementDailyHist :many
-- The same three for measurements_daily_hist.
INSERT INTO measurements_daily_hist AS d (start_day, end_day, app, name, method, hist)
SELECT t.start_day, t.end_day, t.app, t.name, t.method, t.hist
FROM ROWS FROM (
    unnest(@start_days::timestamptz[]),
    unnest(@end_days::timestamptz[]),
    unnest(@apps::text[]),
    unnest(@names::text[]),
    unnest(@methods::text[]),
    unnest(@hists::bytea[])
) AS t (start_day, end_day, app, name, method, hist)
ORDER BY t.start_day, t.end_day, t.app, t.name, t.method
ON CONFLICT (start_day, end_day, app, name, method) DO UPDATE SET hist = d.hist WHERE false
RETURNING d.start_day, d.end_day, d.app, d.name, d.method;

-- name: GetMeasurementDailyHist :many
SELECT d.start_day, d.end_day, d.app, d.name, d.method, d.hist
FROM measurements_daily_hist d
JOIN ROWS FROM (
    unnest(@start_days::timestamptz[]),
    unnest(@end_days::timestamptz[]),
    unnest(@apps::text[]),
    unnest(@names::text[]),
    unnest(@methods::text[])
) AS t (start_day, end_day, app, name, method)
  ON d.start_day = t.start_day AND d.end_day = t.end_day AND d.app = t.app AND d.name = t.name AND d.method = t.method;

-- name: SetMeasurementDailyHist :exec
UPDATE measurements_daily_hist AS d SET hist = t.hist
FROM ROWS FROM (
    unnest(@start_days::timestamptz[]),
    unnest(@end_days::timestamptz[]),
    unnest(@apps::text[]),
    unnest(@names::text[]),
    unnest(@methods::text[]),
    unnest(@hists::bytea[])
) AS t (start_day, end_day, app, name, method, hist)
WHERE d.start_day = t.start_day AND d.end_day = t.end_day AND d.app = t.app AND d.name = t.name AND d.method = t.method;

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

-- name: GroupMeasurementHistograms :many
-- The elapsed histograms of the given (name, method) groups over the window,
-- over exactly the parts GroupMeasurements reads (queries/measurements.sql):
-- whole days and hours as the cells' encoded histograms (hist, with bucket
-- -1), the partial hours from the rows as (bucket, count) per group (hist
-- empty); the caller adds them up per group. Edge B, as in
-- GroupMeasurements, is read from its cells unless a late row matches the
-- filters, and from the rows then.
WITH late AS (
    SELECT EXISTS (
        SELECT 1 FROM measurements m
        WHERE m.started_at >= @h1::timestamptz AND m.started_at < @h2_next::timestamptz
          AND m.ended_at > @ended_at::timestamptz AND m.ended_at < @h2_next::timestamptz
          AND (sqlc.narg('name')::text IS NULL OR m.name = sqlc.narg('name')::text)
          AND (cardinality(@methods::text[]) = 0 OR m.method = ANY(@methods::text[]))
          AND (sqlc.narg('app')::text IS NULL OR m.app = sqlc.narg('app')::text)
    ) AS found
), wanted AS (
    SELECT w.name, w.method FROM ROWS FROM (unnest(@group_names::text[]), unnest(@group_methods::text[])) AS w (name, method)
)
SELECT r.name, r.method, r.hist, -1 AS bucket, 0::bigint AS count
FROM measurements_daily_hist r JOIN wanted w ON w.name = r.name AND w.method = r.method
WHERE r.start_day >= @d1::timestamptz AND r.end_day < @d2::timestamptz
  AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
UNION ALL
SELECT r.name, r.method, r.hist, -1, 0
FROM measurements_hourly_hist r JOIN wanted w ON w.name = r.name AND w.method = r.method
WHERE r.start_hour >= @h1::timestamptz AND r.start_hour < @d1::timestamptz AND r.end_hour < @h2::timestamptz
  AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
UNION ALL
SELECT r.name, r.method, r.hist, -1, 0
FROM measurements_hourly_hist r JOIN wanted w ON w.name = r.name AND w.method = r.method
WHERE r.end_hour >= @d2::timestamptz AND r.end_hour < @h2::timestamptz AND r.start_hour >= @d1::timestamptz
  AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
UNION ALL
SELECT r.name, r.method, r.hist, -1, 0
FROM measurements_hourly_hist r JOIN wanted w ON w.name = r.name AND w.method = r.method
WHERE r.end_hour = @h2::timestamptz AND r.start_hour >= @h1::timestamptz
  AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
  AND NOT (SELECT l.found FROM late l)
UNION ALL
SELECT m.name, m.method, ''::bytea, telemetry_elapsed_bucket(m.elapsed)::integer, count(*)
FROM measurements m JOIN wanted w ON w.name = m.name AND w.method = m.method
WHERE m.started_at >= @started_at::timestamptz AND m.started_at < @h1::timestamptz
  AND m.started_at <= @ended_at::timestamptz AND m.ended_at <= @ended_at::timestamptz
  AND (sqlc.narg('app')::text IS NULL OR m.app = sqlc.narg('app')::text)
  AND (sqlc.narg('min_elapsed')::float8 IS NULL OR m.elapsed >= sqlc.narg('min_elapsed')::float8)
GROUP BY m.name, m.method, 4
UNION ALL
SELECT m.name, m.method, ''::bytea, telemetry_elapsed_bucket(m.elapsed)::integer, count(*)
FROM measurements m JOIN wanted w ON w.name = m.name AND w.method = m.method
WHERE m.started_at >= @h1::timestamptz AND m.started_at <= @ended_at::timestamptz
  AND m.ended_at >= @h2::timestamptz AND m.ended_at <= @ended_at::timestamptz
  AND (sqlc.narg('app')::text IS NULL OR m.app = sqlc.narg('app')::text)
  AND (sqlc.narg('min_elapsed')::float8 IS NULL OR m.elapsed >= sqlc.narg('min_elapsed')::float8)
  AND (SELECT l.found FROM late l)
GROUP BY m.name, m.method, 4;
