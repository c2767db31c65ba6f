-- Request measurements (flask-profiler). The read queries take a window
-- [started_at, ended_at] (rows with started_at >= @started_at and
-- ended_at <= @ended_at) split by the caller into disjoint parts, with @h1 =
-- @started_at rounded up to the hour, @h2 = @ended_at rounded down, @d1 =
-- @started_at rounded up to the UTC day and @d2 = @ended_at rounded down to
-- the day (so @h1 <= @d1 and @d2 <= @h2):
--   edge A: rows with started_at in [@started_at, @h1)
--   edge B: rows with started_at >= @h1 and ended_at in [@h2, @ended_at]
--   hours:  measurements_hourly cells with start_hour in [@h1, @d1) and end_hour < @h2,
--           and cells with start_hour >= @d1 and end_hour in [@d2, @h2)
--   days:   measurements_daily cells with start_day >= @d1 and end_day < @d2
-- Every row of the window is in exactly one part; each edge covers less
-- than an hour of rows, the hours part at most two partial days. The
-- distribution and the timeseries, which have no other filter, read
-- measurements_method_hourly cells with start_hour >= @h1 and end_hour < @h2
-- instead of the hours and days parts. A filter the rollups cannot answer
-- (elapsed) is handled by passing a far-future @h1 and @d1: the rollup parts
-- and edge B are then empty and edge A is the whole window.
-- Edge B is not read from its rows either (with endedAt = now it is the whole
-- current hour): it equals the cells with start_hour >= @h1 and end_hour =
-- @h2 (measurements_hourly, or measurements_method_hourly for the
-- distribution and the timeseries; none of the other parts reads an end_hour
-- = @h2 cell) less the "late" rows: started_at >= @h1 and ended_at in
-- (@ended_at, @h2_next), @h2_next = @h2 + 1 hour, rows of those cells that
-- ended after the window, an empty range of measurements_end_idx when
-- @ended_at is now. Counts subtract exactly, so the count, the distribution
-- and the timeseries always subtract; minima and maxima do not, so the
-- grouped query reads edge B from the rows when a late row matches its
-- filters and from the cells otherwise.
-- started_at <= ended_at holds for every row (a CHECK), so the redundant
-- bounds below (started_at <= @ended_at) only help the planner.

-- name: ReserveMeasurementIDs :many
-- Ids for a batch, in order: COPY cannot return the ids it assigns.
-- (The sequence is named literally: pg_get_serial_sequence per row costs a
-- catalog lookup each, 3 ms per 1,000 ids.)
-- The statement is the body of telemetry_reserve_measurement_ids
-- (migration 00034), which each connection plans once. sqlc cannot type a
-- table function's columns: they are named in the alias list and cast.
SELECT f.id::bigint AS id
FROM telemetry_reserve_measurement_ids(
    @n::int)
    AS f (id);

-- name: CopyMeasurements :copyfrom
INSERT INTO measurements (id, started_at, ended_at, elapsed, name, method, args, kwargs, context, app)
VALUES (@id, @started_at, @ended_at, @elapsed, @name, @method, @args, @kwargs, @context, @app);

-- name: AddMeasurementRollup :exec
-- Adds a batch's per-cell aggregates (computed by the caller, one element
-- per cell, in key order) to the hourly rollup. Cells are written in key
-- order so concurrent batches take their row locks in the same order and
-- cannot deadlock. (Spreading cells over shards to avoid lock waits was
-- measured: no gain, the waits are short next to the COPY, and it
-- multiplies what readers scan.)
-- The statement is the body of telemetry_add_measurement_rollup
-- (migration 00034), which each connection plans once.
SELECT telemetry_add_measurement_rollup(
    @start_hours::timestamptz[], @end_hours::timestamptz[], @apps::text[], @names::text[], @methods::text[],
    @counts::bigint[], @sums::float8[], @mins::float8[], @maxes::float8[]);

-- name: AddMeasurementDailyRollup :exec
-- The same for the daily rollup (one element per day cell, in key order).
-- The statement is the body of telemetry_add_measurement_daily_rollup
-- (migration 00034), which each connection plans once.
SELECT telemetry_add_measurement_daily_rollup(
    @start_days::timestamptz[], @end_days::timestamptz[], @apps::text[], @names::text[], @methods::text[],
    @counts::bigint[], @sums::float8[], @mins::float8[], @maxes::float8[]);

-- name: AddMeasurementMethodRollup :exec
-- The same for the per-method hourly counts.
-- The statement is the body of telemetry_add_measurement_method_rollup
-- (migration 00034), which each connection plans once.
SELECT telemetry_add_measurement_method_rollup(
    @start_hours::timestamptz[], @end_hours::timestamptz[], @methods::text[], @counts::bigint[]);

-- name: AddMeasurement5minRollup :exec
-- The same for the 5-minute counts (migration 00019).
-- The statement is the body of telemetry_add_measurement_5min_rollup
-- (migration 00034), which each connection plans once.
SELECT telemetry_add_measurement_5min_rollup(
    @start_bins::timestamptz[], @end_bins::timestamptz[], @counts::bigint[]);

-- name: AddCollectionHTTPCells :exec
-- The batch's requests of app 'telemetry' added to their minute cells
-- (migration 00020) and their 10-second bins (migration 00031): a metrics
-- collection's httpUrls. Their fields read once, as collection_http reads
-- them; last in the batch's lock order (the bins, the main statement, are
-- written before the minute cells, an unreferenced WITH that runs at the
-- statement's end: the same order in every batch).
-- The statement is the body of telemetry_add_collection_http_cells
-- (migration 00034), which each connection plans once.
SELECT telemetry_add_collection_http_cells(
    @started_ats::timestamptz[], @names::text[], @methods::text[], @elapsed::float8[], @contexts::jsonb[]);

-- name: DeleteMeasurementRollup :exec
-- First step of a rebuild: forget the cells of rows started in [@since,
-- @until) (whole UTC days) in every rollup.
WITH hourly AS (
    DELETE FROM measurements_hourly WHERE start_hour >= @since::timestamptz AND start_hour < @until::timestamptz
), methods AS (
    DELETE FROM measurements_method_hourly WHERE start_hour >= @since::timestamptz AND start_hour < @until::timestamptz
), bins AS (
    DELETE FROM measurements_5min WHERE start_bin >= @since::timestamptz AND start_bin < @until::timestamptz
), requests AS (
    DELETE FROM collection_http_minute WHERE minute >= @since::timestamptz AND minute < @until::timestamptz
), request_bins AS (
    DELETE FROM collection_http_10s WHERE bin >= @since::timestamptz AND bin < @until::timestamptz
)
DELETE FROM measurements_daily WHERE start_day >= @since::timestamptz AND start_day < @until::timestamptz;

-- name: FillMeasurementRollup :exec
-- Second step of a rebuild: recompute the hourly, 5-minute and requests'
-- minute and 10-second cells from the rows (after a bulk load written
-- straight into measurements). @since and @until are whole days.
WITH request_rows AS MATERIALIZED (
    SELECT m.started_at, f.path, m.method, f.hits, m.elapsed * f.hits AS sum_elapsed, f.longest
    FROM measurements m, collection_http_fields(m.context, m.name, m.elapsed) AS f (path, hits, longest)
    WHERE m.app = 'telemetry' AND m.started_at >= @since::timestamptz AND m.started_at < @until::timestamptz
), requests AS (
    INSERT INTO collection_http_minute (minute, path, method, hits, sum_elapsed, max_elapsed)
    SELECT date_trunc('minute', r.started_at, 'UTC'), r.path, r.method, sum(r.hits), sum(r.sum_elapsed), max(r.longest)
    FROM request_rows r
    GROUP BY 1, 2, 3
), request_bins AS (
    INSERT INTO collection_http_10s (bin, path, method, hits, sum_elapsed, max_elapsed)
    SELECT date_bin('10 seconds', r.started_at, '1970-01-01 00:00:00+00'), r.path, r.method, sum(r.hits), sum(r.sum_elapsed), max(r.longest)
    FROM request_rows r
    GROUP BY 1, 2, 3
), bins AS (
    INSERT INTO measurements_5min (start_bin, end_bin, count)
    SELECT date_bin('5 minutes', started_at, '1970-01-01 00:00:00+00'), date_bin('5 minutes', ended_at, '1970-01-01 00:00:00+00'), count(*)
    FROM measurements
    WHERE started_at >= @since::timestamptz AND started_at < @until::timestamptz
    GROUP BY 1, 2
)
INSERT INTO measurements_hourly (start_hour, end_hour, app, name, method, count, sum_elapsed, min_elapsed, max_elapsed)
SELECT date_trunc('hour', started_at, 'UTC'), date_trunc('hour', ended_at, 'UTC'), app, name, method,
       count(*), sum(elapsed), min(elapsed), max(elapsed)
FROM measurements
WHERE started_at >= @since::timestamptz AND started_at < @until::timestamptz
GROUP BY 1, 2, 3, 4, 5;

-- name: FillMeasurementCoarseRollups :exec
-- Third step: the daily and per-method cells, from the hourly ones just filled.
WITH daily AS (
    INSERT INTO measurements_daily (start_day, end_day, app, name, method, count, sum_elapsed, min_elapsed, max_elapsed)
    SELECT date_trunc('day', start_hour, 'UTC'), date_trunc('day', end_hour, 'UTC'), app, name, method,
           sum(count), sum(sum_elapsed), min(min_elapsed), max(max_elapsed)
    FROM measurements_hourly
    WHERE start_hour >= @since::timestamptz AND start_hour < @until::timestamptz
    GROUP BY 1, 2, 3, 4, 5
)
INSERT INTO measurements_method_hourly (start_hour, end_hour, method, count)
SELECT start_hour, end_hour, method, sum(count)
FROM measurements_hourly
WHERE start_hour >= @since::timestamptz AND start_hour < @until::timestamptz
GROUP BY 1, 2, 3;

-- name: GetMeasurement :one
SELECT id, started_at, ended_at, elapsed, name, method, args, kwargs, context, app
FROM measurements
WHERE id = @id;

-- name: ListMeasurementsByStartedAtAsc :many
-- One page of the list. There is one query per order (sort key and
-- direction): ORDER BY cannot be a parameter, and CASE expressions in it
-- could use no index. Every order but method's is served by an index (see
-- docs/measurements.md); ties are broken by id (for name and method by
-- ended_at first, as measurements_name_idx). The WHERE clause, the same in
-- every list query, is CountMeasurements' edge A over the whole window.
SELECT id, started_at, ended_at, elapsed, name, method, args, kwargs, context, app
FROM measurements
WHERE started_at >= @started_at::timestamptz AND started_at <= @ended_at::timestamptz
  AND ended_at <= @ended_at::timestamptz AND ended_at >= @started_at::timestamptz
  AND (sqlc.narg('name')::text IS NULL OR name = sqlc.narg('name')::text)
  AND (cardinality(@methods::text[]) = 0 OR method = ANY(@methods::text[]))
  AND (sqlc.narg('app')::text IS NULL OR app = sqlc.narg('app')::text)
  AND (sqlc.narg('min_elapsed')::float8 IS NULL OR elapsed >= sqlc.narg('min_elapsed')::float8)
ORDER BY started_at ASC, id ASC
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListMeasurementsByStartedAtDesc :many
-- The list by started_at, descending (see ListMeasurementsByStartedAtAsc).
SELECT id, started_at, ended_at, elapsed, name, method, args, kwargs, context, app
FROM measurements
WHERE started_at >= @started_at::timestamptz AND started_at <= @ended_at::timestamptz
  AND ended_at <= @ended_at::timestamptz AND ended_at >= @started_at::timestamptz
  AND (sqlc.narg('name')::text IS NULL OR name = sqlc.narg('name')::text)
  AND (cardinality(@methods::text[]) = 0 OR method = ANY(@methods::text[]))
  AND (sqlc.narg('app')::text IS NULL OR app = sqlc.narg('app')::text)
  AND (sqlc.narg('min_elapsed')::float8 IS NULL OR elapsed >= sqlc.narg('min_elapsed')::float8)
ORDER BY started_at DESC, id DESC
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListMeasurementsByEndedAtAsc :many
-- The list by ended_at, ascending (see ListMeasurementsByStartedAtAsc).
SELECT id, started_at, ended_at, elapsed, name, method, args, kwargs, context, app
FROM measurements
WHERE started_at >= @started_at::timestamptz AND started_at <= @ended_at::timestamptz
  AND ended_at <= @ended_at::timestamptz AND ended_at >= @started_at::timestamptz
  AND (sqlc.narg('name')::text IS NULL OR name = sqlc.narg('name')::text)
  AND (cardinality(@methods::text[]) = 0 OR method = ANY(@methods::text[]))
  AND (sqlc.narg('app')::text IS NULL OR app = sqlc.narg('app')::text)
  AND (sqlc.narg('min_elapsed')::float8 IS NULL OR elapsed >= sqlc.narg('min_elapsed')::float8)
ORDER BY ended_at ASC, id ASC
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListMeasurementsByEndedAtDesc :many
-- The list by ended_at, descending (see ListMeasurementsByStartedAtAsc).
SELECT id, started_at, ended_at, elapsed, name, method, args, kwargs, context, app
FROM measurements
WHERE started_at >= @started_at::timestamptz AND started_at <= @ended_at::timestamptz
  AND ended_at <= @ended_at::timestamptz AND ended_at >= @started_at::timestamptz
  AND (sqlc.narg('name')::text IS NULL OR name = sqlc.narg('name')::text)
  AND (cardinality(@methods::text[]) = 0 OR method = ANY(@methods::text[]))
  AND (sqlc.narg('app')::text IS NULL OR app = sqlc.narg('app')::text)
  AND (sqlc.narg('min_elapsed')::float8 IS NULL OR elapsed >= sqlc.narg('min_elapsed')::float8)
ORDER BY ended_at DESC, id DESC
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListMeasurementsByElapsedAsc :many
-- The list by elapsed, ascending (see ListMeasurementsByStartedAtAsc),
-- through measurements_elapsed_bucket_idx (migration 00024): the bucket is
-- non-decreasing in elapsed, so ordering by (bucket, elapsed, id) is
-- ordering by (elapsed, id), and the index hands the rows over bucket by
-- bucket, each bucket sorted on its own (an incremental sort) until the page
-- is full. The bucket bound beside an elapsed filter says the same as the
-- filter, in the index's terms.
SELECT id, started_at, ended_at, elapsed, name, method, args, kwargs, context, app
FROM measurements
WHERE started_at >= @started_at::timestamptz AND started_at <= @ended_at::timestamptz
  AND ended_at <= @ended_at::timestamptz AND ended_at >= @started_at::timestamptz
  AND (sqlc.narg('name')::text IS NULL OR name = sqlc.narg('name')::text)
  AND (cardinality(@methods::text[]) = 0 OR method = ANY(@methods::text[]))
  AND (sqlc.narg('app')::text IS NULL OR app = sqlc.narg('app')::text)
  AND (sqlc.narg('min_elapsed')::float8 IS NULL OR (elapsed >= sqlc.narg('min_elapsed')::float8
       AND telemetry_elapsed_bucket(elapsed) >= telemetry_elapsed_bucket(sqlc.narg('min_elapsed')::float8)))
ORDER BY telemetry_elapsed_bucket(elapsed) ASC, elapsed ASC, id ASC
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListMeasurementsByElapsedDesc :many
-- The list by elapsed, descending (see ListMeasurementsByStartedAtAsc), as
-- Measurements.List asks it first: with the filter raised to the slow-row
-- threshold, read back from the top of measurements_slow_idx in this very
-- order. The bucket order below is not that index's order: with it the
-- planner sorted the window's 17,000 slow rows instead (at 10 M rows, p99 43
-- -> 236 ms).
SELECT id, started_at, ended_at, elapsed, name, method, args, kwargs, context, app
FROM measurements
WHERE started_at >= @started_at::timestamptz AND started_at <= @ended_at::timestamptz
  AND ended_at <= @ended_at::timestamptz AND ended_at >= @started_at::timestamptz
  AND (sqlc.narg('name')::text IS NULL OR name = sqlc.narg('name')::text)
  AND (cardinality(@methods::text[]) = 0 OR method = ANY(@methods::text[]))
  AND (sqlc.narg('app')::text IS NULL OR app = sqlc.narg('app')::text)
  AND (sqlc.narg('min_elapsed')::float8 IS NULL OR elapsed >= sqlc.narg('min_elapsed')::float8)
ORDER BY elapsed DESC, id DESC
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListMeasurementsByElapsedBucketsDesc :many
-- The list by elapsed, descending, when the slow rows do not fill the page:
-- measurements_elapsed_bucket_idx read backwards (see
-- ListMeasurementsByElapsedAsc).
SELECT id, started_at, ended_at, elapsed, name, method, args, kwargs, context, app
FROM measurements
WHERE started_at >= @started_at::timestamptz AND started_at <= @ended_at::timestamptz
  AND ended_at <= @ended_at::timestamptz AND ended_at >= @started_at::timestamptz
  AND (sqlc.narg('name')::text IS NULL OR name = sqlc.narg('name')::text)
  AND (cardinality(@methods::text[]) = 0 OR method = ANY(@methods::text[]))
  AND (sqlc.narg('app')::text IS NULL OR app = sqlc.narg('app')::text)
  AND (sqlc.narg('min_elapsed')::float8 IS NULL OR (elapsed >= sqlc.narg('min_elapsed')::float8
       AND telemetry_elapsed_bucket(elapsed) >= telemetry_elapsed_bucket(sqlc.narg('min_elapsed')::float8)))
ORDER BY telemetry_elapsed_bucket(elapsed) DESC, elapsed DESC, id DESC
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListMeasurementsByNameAsc :many
-- The list by name, ascending (see ListMeasurementsByStartedAtAsc).
SELECT id, started_at, ended_at, elapsed, name, method, args, kwargs, context, app
FROM measurements
WHERE started_at >= @started_at::timestamptz AND started_at <= @ended_at::timestamptz
  AND ended_at <= @ended_at::timestamptz AND ended_at >= @started_at::timestamptz
  AND (sqlc.narg('name')::text IS NULL OR name = sqlc.narg('name')::text)
  AND (cardinality(@methods::text[]) = 0 OR method = ANY(@methods::text[]))
  AND (sqlc.narg('app')::text IS NULL OR app = sqlc.narg('app')::text)
  AND (sqlc.narg('min_elapsed')::float8 IS NULL OR elapsed >= sqlc.narg('min_elapsed')::float8)
ORDER BY name ASC, ended_at ASC, id ASC
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListMeasurementsByNameDesc :many
-- The list by name, descending (see ListMeasurementsByStartedAtAsc).
SELECT id, started_at, ended_at, elapsed, name, method, args, kwargs, context, app
FROM measurements
WHERE started_at >= @started_at::timestamptz AND started_at <= @ended_at::timestamptz
  AND ended_at <= @ended_at::timestamptz AND ended_at >= @started_at::timestamptz
  AND (sqlc.narg('name')::text IS NULL OR name = sqlc.narg('name')::text)
  AND (cardinality(@methods::text[]) = 0 OR method = ANY(@methods::text[]))
  AND (sqlc.narg('app')::text IS NULL OR app = sqlc.narg('app')::text)
  AND (sqlc.narg('min_elapsed')::float8 IS NULL OR elapsed >= sqlc.narg('min_elapsed')::float8)
ORDER BY name DESC, ended_at DESC, id DESC
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListMeasurementsByMethodAsc :many
-- The list by method, ascending (see ListMeasurementsByStartedAtAsc).
SELECT id, started_at, ended_at, elapsed, name, method, args, kwargs, context, app
FROM measurements
WHERE started_at >= @started_at::timestamptz AND started_at <= @ended_at::timestamptz
  AND ended_at <= @ended_at::timestamptz AND ended_at >= @started_at::timestamptz
  AND (sqlc.narg('name')::text IS NULL OR name = sqlc.narg('name')::text)
  AND (cardinality(@methods::text[]) = 0 OR method = ANY(@methods::text[]))
  AND (sqlc.narg('app')::text IS NULL OR app = sqlc.narg('app')::text)
  AND (sqlc.narg('min_elapsed')::float8 IS NULL OR elapsed >= sqlc.narg('min_elapsed')::float8)
ORDER BY method ASC, ended_at ASC, id ASC
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListMeasurementsByMethodDesc :many
-- The list by method, descending (see ListMeasurementsByStartedAtAsc).
SELECT id, started_at, ended_at, elapsed, name, method, args, kwargs, context, app
FROM measurements
WHERE started_at >= @started_at::timestamptz AND started_at <= @ended_at::timestamptz
  AND ended_at <= @ended_at::timestamptz AND ended_at >= @started_at::timestamptz
  AND (sqlc.narg('name')::text IS NULL OR name = sqlc.narg('name')::text)
  AND (cardinality(@methods::text[]) = 0 OR method = ANY(@methods::text[]))
  AND (sqlc.narg('app')::text IS NULL OR app = sqlc.narg('app')::text)
  AND (sqlc.narg('min_elapsed')::float8 IS NULL OR elapsed >= sqlc.narg('min_elapsed')::float8)
ORDER BY method DESC, ended_at DESC, id DESC
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListSlowMeasurements :many
-- One page of the list when the elapsed filter is at least
-- postgres.slowElapsed: the matching rows are all in measurements_slow_idx
-- (migration 00012), few, and sorted in memory in any order; the order's own
-- index read backwards and filtered on elapsed row by row was measured
-- slower (EXPLAIN at 10 M rows, elapsed >= 1: 50,000 rows filtered to find
-- a page, 31 ms cold). The order is a parameter here (one query instead of
-- ten), the same keys and tie-breaks as the ListMeasurementsBy* queries.
SELECT id, started_at, ended_at, elapsed, name, method, args, kwargs, context, app
FROM measurements
WHERE started_at >= @started_at::timestamptz AND started_at <= @ended_at::timestamptz
  AND ended_at <= @ended_at::timestamptz AND ended_at >= @started_at::timestamptz
  AND (sqlc.narg('name')::text IS NULL OR name = sqlc.narg('name')::text)
  AND (cardinality(@methods::text[]) = 0 OR method = ANY(@methods::text[]))
  AND (sqlc.narg('app')::text IS NULL OR app = sqlc.narg('app')::text)
  AND elapsed >= @min_elapsed::float8
ORDER BY
    CASE WHEN NOT @descending::bool THEN CASE @sort_key::text WHEN 'startedAt' THEN started_at WHEN 'endedAt' THEN ended_at END END ASC,
    CASE WHEN @descending::bool THEN CASE @sort_key::text WHEN 'startedAt' THEN started_at WHEN 'endedAt' THEN ended_at END END DESC,
    CASE WHEN NOT @descending::bool AND @sort_key::text = 'elapsed' THEN elapsed END ASC,
    CASE WHEN @descending::bool AND @sort_key::text = 'elapsed' THEN elapsed END DESC,
    CASE WHEN NOT @descending::bool THEN CASE @sort_key::text WHEN 'name' THEN name WHEN 'method' THEN method END END ASC,
    CASE WHEN @descending::bool THEN CASE @sort_key::text WHEN 'name' THEN name WHEN 'method' THEN method END END DESC,
    CASE WHEN NOT @descending::bool AND @sort_key::text IN ('name', 'method') THEN ended_at END ASC,
    CASE WHEN @descending::bool AND @sort_key::text IN ('name', 'method') THEN ended_at END DESC,
    CASE WHEN NOT @descending::bool THEN id END ASC,
    CASE WHEN @descending::bool THEN id END DESC
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: CountMeasurements :one
-- The exact number of rows the list filter matches.
SELECT (
    COALESCE((
        SELECT sum(r.count) FROM measurements_daily r
        WHERE r.start_day >= @d1::timestamptz AND r.end_day < @d2::timestamptz
          AND (sqlc.narg('name')::text IS NULL OR r.name = sqlc.narg('name')::text)
          AND (cardinality(@methods::text[]) = 0 OR r.method = ANY(@methods::text[]))
          AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
    ), 0)
    + COALESCE((
        SELECT sum(r.count) FROM measurements_hourly r
        WHERE r.start_hour >= @h1::timestamptz AND r.start_hour < @d1::timestamptz AND r.end_hour < @h2::timestamptz
          AND (sqlc.narg('name')::text IS NULL OR r.name = sqlc.narg('name')::text)
          AND (cardinality(@methods::text[]) = 0 OR r.method = ANY(@methods::text[]))
          AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
    ), 0)
    + COALESCE((
        SELECT sum(r.count) FROM measurements_hourly r
        WHERE r.end_hour >= @d2::timestamptz AND r.end_hour < @h2::timestamptz AND r.start_hour >= @d1::timestamptz
          AND (sqlc.narg('name')::text IS NULL OR r.name = sqlc.narg('name')::text)
          AND (cardinality(@methods::text[]) = 0 OR r.method = ANY(@methods::text[]))
          AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
    ), 0)
    + (
        -- Edge A without an elapsed filter: less than an hour of rows, read
        -- by time, the other filters applied to them. OFFSET 0 keeps the
        -- planner from pushing a name filter into the scan: it ANDed the
        -- hour's rows with a bitmap of every row of the name in the window
        -- (measurements_name_idx: 17-23 ms at 10 M rows, where reading the
        -- hour and filtering it takes 2).
        SELECT count(*) FROM (
            SELECT m.name, m.method, m.app FROM measurements m
            WHERE m.started_at >= @started_at::timestamptz AND m.started_at < @h1::timestamptz
              AND m.started_at <= @ended_at::timestamptz AND m.ended_at <= @ended_at::timestamptz
              AND sqlc.narg('min_elapsed')::float8 IS NULL
            OFFSET 0
        ) m
        WHERE (sqlc.narg('name')::text IS NULL OR m.name = sqlc.narg('name')::text)
          AND (cardinality(@methods::text[]) = 0 OR m.method = ANY(@methods::text[]))
          AND (sqlc.narg('app')::text IS NULL OR m.app = sqlc.narg('app')::text)
    )
    + (
        -- With an elapsed filter the edge is the whole window (the caller's
        -- bounds leave no whole hour): each filter may pick the index.
        SELECT count(*) FROM measurements m
        WHERE m.started_at >= @started_at::timestamptz AND m.started_at < @h1::timestamptz
          AND m.started_at <= @ended_at::timestamptz AND m.ended_at <= @ended_at::timestamptz
          -- Never false (ended_at >= started_at is a CHECK): it bounds a name index scan to the window.
          AND m.ended_at >= @started_at::timestamptz
          AND (sqlc.narg('name')::text IS NULL OR m.name = sqlc.narg('name')::text)
          AND (cardinality(@methods::text[]) = 0 OR m.method = ANY(@methods::text[]))
          AND (sqlc.narg('app')::text IS NULL OR m.app = sqlc.narg('app')::text)
          AND m.elapsed >= sqlc.narg('min_elapsed')::float8
          -- (Below the slow-row threshold this part serves only a filter with
          -- an app: without one, CountMeasurementsAboveSealed answers,
          -- queries/measurements_sealed.sql.)
          -- Below the slow-row threshold the caller passes the filter again as
          -- @bucket_floor, the same bound in measurements_elapsed_bucket_idx's terms
          -- (migration 00024); at or above it the slow-row indexes serve the
          -- filter alone (with the bound, the planner ANDed both indexes: 7 -> 20 ms).
          -- Each bucket up to that of the largest elapsed the table accepts
          -- (its CHECK, migration 00007) is named, so that the index is read
          -- as one range of the window per bucket instead of every entry of
          -- the buckets, whatever its time: at 10 M rows, elapsed=0.1, half
          -- the pages, p99 of the list 384-430 -> 181-186 ms.
          AND (sqlc.narg('bucket_floor')::float8 IS NULL
               OR telemetry_elapsed_bucket(m.elapsed) = ANY(ARRAY(
                   SELECT generate_series(telemetry_elapsed_bucket(sqlc.narg('bucket_floor')::float8)::integer,
                                          telemetry_elapsed_bucket(253402300799::float8)::integer)::smallint)))
    )
    -- Edge B: the cells that end in the window's last hour, less the rows
    -- in them that ended after the window; once rows of it may have
    -- expired (@expired: MeasurementsExpiredSince of @h1), the late rows
    -- are no longer there to subtract, and edge B is what is left of its
    -- rows (docs/lifecycle.md). A parameter rather than a subquery, so that
    -- the plan keeps only the branch taken.
    + CASE WHEN @expired::bool THEN (
        SELECT count(*) FROM measurements m
        WHERE m.ended_at >= @h2::timestamptz AND m.ended_at <= @ended_at::timestamptz
          AND m.started_at >= @h1::timestamptz
          AND (sqlc.narg('name')::text IS NULL OR m.name = sqlc.narg('name')::text)
          AND (cardinality(@methods::text[]) = 0 OR m.method = ANY(@methods::text[]))
          AND (sqlc.narg('app')::text IS NULL OR m.app = sqlc.narg('app')::text)
    ) ELSE COALESCE((
        SELECT sum(r.count) FROM measurements_hourly r
        WHERE r.end_hour = @h2::timestamptz AND r.start_hour >= @h1::timestamptz
          AND (sqlc.narg('name')::text IS NULL OR r.name = sqlc.narg('name')::text)
          AND (cardinality(@methods::text[]) = 0 OR r.method = ANY(@methods::text[]))
          AND (sqlc.narg('app')::text IS NULL OR r.app = sqlc.narg('app')::text)
    ), 0)
    - (
        SELECT count(*) FROM measurements m
        WHERE m.started_at >= @h1::timestamptz AND m.started_at < @h2_next::timestamptz
          AND m.ended_at > @ended_at::timestamptz AND m.ended_at < @h2_next::timestamptz
          AND (sqlc.narg('name')::text IS NULL OR m.name = sqlc.narg('name')::text)
          AND (cardinality(@methods::text[]) = 0 OR m.method = ANY(@methods::text[]))
          AND (sqlc.narg('app')::text IS NULL OR m.app = sqlc.narg('app')::text)
    ) END
)::bigint AS total;

-- name: MeasurementMethodDistribution :many
-- Number of measurements per method in the window. Edge B (the cells that
-- end in the window's last hour) as in CountMeasurements: the cells less
-- the rows that ended after the window, or, once rows of it may have
-- expired (@expired), its rows.
WITH parts AS (
    SELECT r.method, sum(r.count)::bigint AS n
    FROM measurements_method_hourly r
    WHERE r.start_hour >= @h1::timestamptz AND r.end_hour <= @h2::timestamptz
      AND NOT (@expired::bool AND r.end_hour = @h2::timestamptz)
    GROUP BY r.method
    UNION ALL
    SELECT m.method, count(*) AS n
    FROM measurements m
    WHERE m.started_at >= @started_at::timestamptz AND m.started_at < @h1::timestamptz
      AND m.started_at <= @ended_at::timestamptz AND m.ended_at <= @ended_at::timestamptz
      -- Never false (ended_at >= started_at is a CHECK): it bounds a name index scan to the window.
      AND m.ended_at >= @started_at::timestamptz
    GROUP BY m.method
    UNION ALL
    SELECT m.method, -count(*) AS n
    FROM measurements m
    WHERE m.started_at >= @h1::timestamptz AND m.started_at < @h2_next::timestamptz
      AND m.ended_at > @ended_at::timestamptz AND m.ended_at < @h2_next::timestamptz
      AND NOT @expired::bool
    GROUP BY m.method
    UNION ALL
    SELECT m.method, count(*) AS n
    FROM measurements m
    WHERE m.ended_at >= @h2::timestamptz AND m.ended_at <= @ended_at::timestamptz AND m.started_at >= @h1::timestamptz
      AND @expired::bool
    GROUP BY m.method
)
SELECT p.method, sum(p.n)::bigint AS count
FROM parts p
GROUP BY p.method
HAVING sum(p.n) > 0
ORDER BY p.method;

-- name: MeasurementsExpiredSince :one
-- Whether rows started at or after @started_at may have been expired while
-- the rollups still count them (migration 00021; no mark: assume so).
SELECT coalesce((SELECT w.deleted_before > @started_at::timestamptz FROM retention_watermarks w
                 WHERE w.table_name = 'measurements'), true)::bool AS expired;

-- name: MeasurementTimeseries :many
-- Number of measurements per UTC bucket of started_at, @width_seconds wide
-- (1 minute to 1 day, aligned on the Unix epoch, so 1 day is the UTC day;
-- the origin is written in UTC, so the session's TimeZone does not move it),
-- the buckets that hold measurements only, in no order: the caller lays
-- them on the window's grid, empty buckets 0 (Measurements.Timeseries).
-- Widths of whole hours read whole hours from measurements_method_hourly;
-- widths of whole 5 minutes (@bins) read whole 5-minute bins from
-- measurements_5min, @h1, @h2 and @h2_next then being the window's bounds on
-- that grid, the edges as for the hours; the caller disables both (@h1 far
-- in the future) for other widths, which are counted from the rows. The
-- cells go to the one aggregate as they are, the rows counted per bucket
-- first (an hour of them otherwise went through a sort): until 2026-12-01
-- the cells were aggregated twice as well, then joined to the window's
-- series of buckets and sorted, 8.6-11.3 ms for the default 5-minute call
-- at 10 M rows against 5.3-5.9 ms without.
-- Edge B as in MeasurementMethodDistribution (@expired).
WITH parts AS (
    SELECT date_bin(make_interval(secs => @width_seconds::int), r.start_hour, '1970-01-01 00:00:00+00'::timestamptz) AS bucket, r.count::bigint AS n
    FROM measurements_method_hourly r
    WHERE r.start_hour >= @h1::timestamptz AND r.end_hour <= @h2::timestamptz AND NOT @bins::bool
      AND NOT (@expired::bool AND r.end_hour = @h2::timestamptz)
    UNION ALL
    SELECT date_bin(make_interval(secs => @width_seconds::int), r.start_bin, '1970-01-01 00:00:00+00'::timestamptz), r.count::bigint
    FROM measurements_5min r
    WHERE r.start_bin >= @h1::timestamptz AND r.end_bin <= @h2::timestamptz AND @bins::bool
      AND NOT (@expired::bool AND r.end_bin = @h2::timestamptz)
    UNION ALL
    SELECT date_bin(make_interval(secs => @width_seconds::int), m.started_at, '1970-01-01 00:00:00+00'::timestamptz), count(*)
    FROM measurements m
    WHERE m.started_at >= @started_at::timestamptz AND m.started_at < @h1::timestamptz
      AND m.started_at <= @ended_at::timestamptz AND m.ended_at <= @ended_at::timestamptz
      -- Never false (ended_at >= started_at is a CHECK): it bounds a name index scan to the window.
      AND m.ended_at >= @started_at::timestamptz
    GROUP BY 1
    UNION ALL
    SELECT date_bin(make_interval(secs => @width_seconds::int), m.started_at, '1970-01-01 00:00:00+00'::timestamptz), -count(*)
    FROM measurements m
    WHERE m.started_at >= @h1::timestamptz AND m.started_at < @h2_next::timestamptz
      AND m.ended_at > @ended_at::timestamptz AND m.ended_at < @h2_next::timestamptz
      AND NOT @expired::bool
    GROUP BY 1
    UNION ALL
    SELECT date_bin(make_interval(secs => @width_seconds::int), m.started_at, '1970-01-01 00:00:00+00'::timestamptz), count(*)
    FROM measurements m
    WHERE m.ended_at >= @h2::timestamptz AND m.ended_at <= @ended_at::timestamptz AND m.started_at >= @h1::timestamptz
      AND @expired::bool
    GROUP BY 1
)
SELECT p.bucket::timestamptz AS bucket, sum(p.n)::bigint AS count
FROM parts p
GROUP BY p.bucket;
