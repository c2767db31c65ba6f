-- Sealed units of measurements (migration 00023): per closed UTC hour, its
-- 5-minute bins, per closed quarter of a UTC day and per closed UTC day,
-- the grouped view's statistics per (name, method) with the histogram in
-- the same row, built by the
-- maintenance pass (internal/store/postgres/measurements_sealed.go) under an
-- exclusive advisory lock per unit; the ingest takes the shared locks of
-- its units and unseals them. Lock keys: (@hour_class, hours since the Unix
-- epoch), (@quarter_class, quarter days since the epoch) and (@day_class,
-- days since the epoch).
--
-- sqlc (v1.31.1) rejects a parameter followed by an operator, as in
-- `@until::timestamptz - x` ("edited query syntax is invalid"): such
-- parameters are written in parentheses here.

-- name: LockMeasurementUnitsShared :exec
-- The ingest's shared locks on the units its rows start in (hours, quarters
-- and days in ascending order, so every transaction takes them in the same
-- order),
-- held until it commits.
-- The statement is the body of telemetry_lock_measurement_units_shared
-- (migration 00034), which each connection plans once.
SELECT telemetry_lock_measurement_units_shared(
    sqlc.arg('hour_class')::int, sqlc.arg('hours')::int[], sqlc.arg('quarter_class')::int,
    sqlc.arg('quarters')::int[], sqlc.arg('day_class')::int, sqlc.arg('days')::int[]);

-- name: UnsealMeasurementUnits :exec
-- After LockMeasurementUnitsShared, in a statement of its own (so that it
-- sees a build that committed while the lock waited): the seals of the
-- hours, quarters and days the rows start in, and of their 5-minute bins
-- sealed on their own (migration 00048; a bin's build holds its hour's
-- lock).
-- The statement is the body of telemetry_unseal_measurement_units
-- (migrations 00034, 00048), which each connection plans once.
SELECT telemetry_unseal_measurement_units(
    @hours::timestamptz[], @quarters::timestamptz[], @days::timestamptz[], @bins::timestamptz[]);

-- name: LockMeasurementUnit :exec
-- A build's exclusive lock on its unit, until it commits.
SELECT pg_advisory_xact_lock(@class::int, @id::int);

-- name: MeasurementUnitsToSeal :many
-- The units of @width seconds in [@since, @until) that hold measurements
-- (by the hourly rollup) and are not sealed, or were sealed before their
-- totals existed (migration 00026), oldest first, at most @max_units. (An
-- empty unit is read from the rollups at no cost.)
SELECT u.unit_start::timestamptz AS unit_start
FROM generate_series(@since::timestamptz, (@until::timestamptz) - ((@width::int) * '1 second'::interval), ((@width::int) * '1 second'::interval)) AS u (unit_start)
WHERE NOT EXISTS (
    SELECT 1 FROM measurements_sealed s
    JOIN measurements_sealed_totals t ON t.unit_secs = s.unit_secs AND t.unit_start = s.unit_start
    WHERE s.unit_secs = @width::int AND s.unit_start = u.unit_start
) AND EXISTS (
    SELECT 1 FROM measurements_hourly r
    WHERE r.start_hour >= u.unit_start AND r.start_hour < u.unit_start + ((@width::int) * '1 second'::interval)
)
ORDER BY u.unit_start
LIMIT @max_units::int;

-- name: MeasurementBinsToSeal :many
-- The 5-minute bins in [@since, @until) that hold measurements, are not
-- sealed on their own and whose hour is not sealed (migration 00048),
-- oldest first, at most @max_units.
SELECT b.bin::timestamptz AS bin_start
FROM generate_series(@since::timestamptz, (@until::timestamptz) - '5 minutes'::interval, '5 minutes'::interval) AS b (bin)
WHERE NOT EXISTS (
    SELECT 1 FROM measurements_sealed s
    WHERE (s.unit_secs = 300 AND s.unit_start = b.bin)
       OR (s.unit_secs = 3600 AND s.unit_start = date_bin('1 hour', b.bin, '1970-01-01 00:00:00+00'))
) AND EXISTS (
    SELECT 1 FROM measurements m
    WHERE m.started_at >= b.bin AND m.started_at < b.bin + '5 minutes'::interval
)
ORDER BY b.bin
LIMIT @max_units::int;

-- name: MeasurementHourSealed :one
-- Whether the hour @hour_start is sealed: a bin's build, under the hour's
-- lock, builds nothing then (the hour's cells hold the bin's).
SELECT EXISTS (
    SELECT 1 FROM measurements_sealed s WHERE s.unit_secs = 3600 AND s.unit_start = @hour_start::timestamptz
)::boolean AS sealed;

-- name: FirstMeasurementHour :one
-- The first hour that holds measurements (in the hourly rollup), if any.
SELECT start_hour FROM measurements_hourly ORDER BY start_hour LIMIT 1;

-- name: DeleteMeasurementSealedCells :exec
-- A build's first step, after its lock: the unit's old cells, totals and
-- seals (of widths @widths, in [@since, @until)); an hour's build so
-- deletes the seals of its bins sealed on their own (migration 00048),
-- whose cells it writes again. The build's last step seals the unit anew.
WITH seals AS (
    DELETE FROM measurements_sealed
    WHERE unit_secs = ANY(@widths::int[]) AND unit_start >= @since::timestamptz AND unit_start < @until::timestamptz
), totals AS (
    DELETE FROM measurements_sealed_totals
    WHERE unit_secs = ANY(@widths::int[]) AND unit_start >= @since::timestamptz AND unit_start < @until::timestamptz
)
DELETE FROM measurements_sealed_cells
WHERE unit_secs = ANY(@widths::int[]) AND unit_start >= @since::timestamptz AND unit_start < @until::timestamptz;

-- name: MeasurementUnitBuckets :many
-- A build's read, after its lock: the rows of the unit [@unit_start,
-- +@width s) counted per (bin of @bin_width s, name, method, histogram
-- bucket), with their elapsed sum, minimum and maximum and latest end. Go
-- adds them up into the cells of the bins and of the unit and encodes their
-- histograms (the SQL encoder costs 0.17 ms a cell: 1,625 cells an hour).
SELECT date_bin(((@bin_width::int) * '1 second'::interval), m.started_at, '1970-01-01 00:00:00+00')::timestamptz AS bin,
       m.name, m.method, telemetry_elapsed_bucket(m.elapsed)::smallint AS bucket,
       count(*)::bigint AS n, sum(m.elapsed)::float8 AS sum_elapsed, min(m.elapsed)::float8 AS min_elapsed,
       max(m.elapsed)::float8 AS max_elapsed, max(m.ended_at)::timestamptz AS last_end
FROM measurements m
WHERE m.started_at >= @unit_start::timestamptz AND m.started_at < (@unit_start::timestamptz) + ((@width::int) * '1 second'::interval)
GROUP BY 1, 2, 3, 4;

-- name: InsertMeasurementSealedCells :copyfrom
-- A build's cells, by COPY (each carries four arrays of its own length,
-- which unnest of parameter arrays cannot pass).
INSERT INTO measurements_sealed_cells (unit_secs, unit_start, name, method, count, sum_elapsed, min_elapsed, max_elapsed, hist,
                                       above_buckets, above_counts, above_sums, above_mins)
VALUES (@unit_secs, @unit_start, @name, @method, @count, @sum_elapsed, @min_elapsed, @max_elapsed, @hist,
        @above_buckets, @above_counts, @above_sums, @above_mins);
-- name: InsertMeasurementSealedTotals :exec
-- A build's totals (migration 00026), one element per bin or unit; a NULL
-- histogram for an empty one.
INSERT INTO measurements_sealed_totals (unit_secs, unit_start, count, hist)
SELECT t.unit_secs, t.unit_start, t.count, t.hist
FROM ROWS FROM (
    unnest(@unit_secs::int[]),
    unnest(@unit_starts::timestamptz[]),
    unnest(@counts::bigint[]),
    unnest(@hists::bytea[])
) AS t (unit_secs, unit_start, count, hist);

-- name: SealMeasurementUnit :exec
-- A build's last step: the unit is sealed, with the latest end of its rows
-- (-infinity for none).
INSERT INTO measurements_sealed (unit_secs, unit_start, max_ended_at)
VALUES (@width::int, @unit_start::timestamptz, coalesce(sqlc.narg('max_ended_at')::timestamptz, '-infinity'))
ON CONFLICT (unit_secs, unit_start) DO UPDATE SET max_ended_at = excluded.max_ended_at, sealed_at = now();

-- name: DeleteMeasurementSealed :exec
-- The sealed units and cells started in [@since, @until): retention (with
-- the rollups, @since = -infinity) and a rebuild of the rollups.
WITH units AS (
    DELETE FROM measurements_sealed WHERE unit_start >= @since::timestamptz AND unit_start < @until::timestamptz
), totals AS (
    DELETE FROM measurements_sealed_totals WHERE unit_start >= @since::timestamptz AND unit_start < @until::timestamptz
)
DELETE FROM measurements_sealed_cells WHERE unit_start >= @since::timestamptz AND unit_start < @until::timestamptz;

-- name: DeleteExpiredSealedBins :execrows
-- The 5-minute bins go with the raw rows (MEASUREMENTS_RETENTION), not with
-- the rollups: they are most of the cells (12 per hour), and they stand for
-- rows, edge A's, that are read from the table otherwise. A bin is deleted
-- once all of its 5 minutes are before @before; its totals (migration
-- 00026) with it, and its seal when it was sealed on its own (migration
-- 00048). The count is the cells'.
WITH seals AS (
    DELETE FROM measurements_sealed
    WHERE unit_secs = 300 AND unit_start <= (@before::timestamptz) - '5 minutes'::interval
), totals AS (
    DELETE FROM measurements_sealed_totals
    WHERE unit_secs = 300 AND unit_start <= (@before::timestamptz) - '5 minutes'::interval
)
DELETE FROM measurements_sealed_cells
WHERE unit_secs = 300 AND unit_start <= (@before::timestamptz) - '5 minutes'::interval;

-- name: GroupMeasurementsPageSealed :many
-- GroupMeasurementsPage (queries/measurements_percentiles.sql) for a window
-- with no app or elapsed filter, reading its sealed units where it can:
--   units:  the sealed quarters of a day and hours among its partial
--           hours ([@h1, @d1) and [@d2, @h2); an hour only when its quarter
--           is not used) and the sealed whole days ([@d1, @d2)) whose rows
--           all ended before @h2, read from measurements_sealed_cells; the
--           others (open_hours, open_days) from the rollups as before: an
--           open hour's cells with end_hour < @h2, an open day's with
--           end_day < @d2, and (only while a day is open) the cells of an
--           open day that end in [@d2, @h2);
--   edge A: the rows started in [@started_at, @a5), @a5 = @started_at
--           rounded up to 5 minutes, then the 5-minute bins [@a5, @h1) from
--           the cells when their hour is sealed with its rows ended before
--           @h2, else from the rows;
--   edge B and the end_hour = @h2 cells: as in GroupMeasurementsPage (a
--           unit read from its cells has no row that ends at or after @h2).
-- The statement is the function telemetry_measurements_grouped (migration
-- 00023), whose plan PostgreSQL keeps. sqlc cannot type a table function's
-- columns: they are named in the alias list and cast.
SELECT g.name::text AS name, g.method::text AS method, g.count::bigint AS count, g.avg_elapsed::float8 AS avg_elapsed,
       g.min_elapsed::float8 AS min_elapsed, g.max_elapsed::float8 AS max_elapsed, g.total::bigint AS total,
       g.hists::bytea[] AS hists, g.edge_buckets::smallint[] AS edge_buckets
FROM telemetry_measurements_grouped(
    @h1::timestamptz, @h2::timestamptz, @h2_next::timestamptz, @d1::timestamptz, @d2::timestamptz,
    @a5::timestamptz, @started_at::timestamptz, @ended_at::timestamptz, sqlc.narg('name')::text, @methods::text[],
    @sort_key::text, @descending::boolean, @row_offset::bigint, @row_limit::bigint)
    AS g (name, method, count, avg_elapsed, min_elapsed, max_elapsed, total, hists, edge_buckets);

-- name: MeasurementRowsKeptSince :one
-- Rows started at or after this time were never expired (migration 00021;
-- no mark: none is known to be whole, so now). Not before 1970 (the mark of
-- an empty table is -infinity, which Go's time cannot hold).
SELECT coalesce((SELECT greatest(w.deleted_before, '1970-01-01 00:00:00+00'::timestamptz) FROM retention_watermarks w
                 WHERE w.table_name = 'measurements'), now())::timestamptz AS since;

-- name: CountMeasurementsAboveSealed :one
-- The rows of CountMeasurements' filter with an elapsed filter @min_elapsed
-- below the slow-row threshold, no app and a name or methods (without
-- either, CountMeasurementsAboveSealedWindow counts them from the units'
-- totals), counted from the sealed units where the window has them
-- (measurements.go, countAboveSealed): the
-- window's rows with elapsed >= @min_elapsed are those of its bucket B =
-- telemetry_elapsed_bucket(@min_elapsed) that pass the filter, and every
-- row of a higher bucket (the bucket never decreases as elapsed grows).
-- The first are counted from measurements_elapsed_bucket_idx over the
-- whole window (rows_below: about a hundredth of the window's rows at 10 M
-- rows, where the filter matches an eighth). The second come from the
-- histograms of the sealed units that tile the window (hists: a unit's
-- cells of the name or methods; the buckets above B added up in Go: the
-- units' histograms were built by the same SQL function as the index) and
-- from the rows of the
-- gaps the units leave (rows_above). The units and gaps are
-- telemetry_measurements_sealed_tiling's (migration 00027: days, quarters,
-- hours, then 5-minute bins, each only when all its rows ended by
-- @ended_at and it starts at or after the retention mark), so the total is
-- the rows' count as before.
WITH tiling AS MATERIALIZED (
    -- The cells answer, so any sealed unit (false: not only those with
    -- totals). (sqlc cannot type a table function's columns: named and cast here.)
    SELECT t.tile_secs::integer AS tile_secs, t.tile_start::timestamptz AS tile_start,
           t.tile_end::timestamptz AS tile_end, t.gap_buckets::smallint[] AS gap_buckets
    FROM telemetry_measurements_sealed_tiling(@started_at::timestamptz, @ended_at::timestamptz, @min_elapsed::float8, false)
        AS t (tile_secs, tile_start, tile_end, gap_buckets)
), units AS (
    SELECT t.tile_secs AS unit_secs, t.tile_start AS unit_start FROM tiling t WHERE t.tile_secs IS NOT NULL
), gap_buckets AS (
    SELECT t.tile_start AS gap_start, t.tile_end AS gap_end, t.gap_buckets AS buckets FROM tiling t WHERE t.tile_secs IS NULL
), bucket AS (
    SELECT telemetry_elapsed_bucket(@min_elapsed::float8)::integer AS b
)
SELECT
    (SELECT count(*) FROM measurements m
     WHERE telemetry_elapsed_bucket(m.elapsed) = (SELECT k.b FROM bucket k)::smallint
       AND m.elapsed >= @min_elapsed::float8
       AND m.started_at >= @started_at::timestamptz AND m.started_at <= @ended_at::timestamptz
       AND m.ended_at <= @ended_at::timestamptz
       -- Never false (ended_at >= started_at is a CHECK): it bounds a name index scan to the window.
       AND m.ended_at >= @started_at::timestamptz
       AND (sqlc.narg('name')::text IS NULL OR m.name = sqlc.narg('name')::text)
       AND (cardinality(@methods::text[]) = 0 OR m.method = ANY(@methods::text[])))::bigint AS rows_below,
    -- One count per gap (a subquery per gap row: as a join, the planner
    -- read the whole window's higher buckets and filtered them by gap).
    (SELECT coalesce(sum((
         SELECT count(*) FROM measurements m
         WHERE telemetry_elapsed_bucket(m.elapsed) = ANY(g.buckets)
           AND m.started_at >= g.gap_start AND m.started_at < g.gap_end
           AND m.started_at >= @started_at::timestamptz AND m.started_at <= @ended_at::timestamptz
           AND m.ended_at <= @ended_at::timestamptz AND m.ended_at >= g.gap_start
           AND (sqlc.narg('name')::text IS NULL OR m.name = sqlc.narg('name')::text)
           AND (cardinality(@methods::text[]) = 0 OR m.method = ANY(@methods::text[]))
     )), 0) FROM gap_buckets g)::bigint AS rows_above,
    (SELECT k.b FROM bucket k)::integer AS bucket,
    -- A unit's cells of the name or methods, each unit's by its key (OFFSET
    -- 0 keeps the lookup per unit: from the tiling's estimate, 150 units,
    -- the planner hashed the whole totals table, 9,500 rows at 10 M rows,
    -- to join 17, when this statement still read the totals).
    coalesce((SELECT array_agg(x.hist) FROM units u
              CROSS JOIN LATERAL (
                  SELECT c.hist FROM measurements_sealed_cells c
                  WHERE c.unit_secs = u.unit_secs AND c.unit_start = u.unit_start
                    AND (sqlc.narg('name')::text IS NULL OR c.name = sqlc.narg('name')::text)
                    AND (cardinality(@methods::text[]) = 0 OR c.method = ANY(@methods::text[]))
                  OFFSET 0) x), '{}')::bytea[] AS hists;

-- name: GroupMeasurementsAboveSealed :many
-- GroupMeasurementsPage's page with an elapsed filter @min_elapsed below the
-- slow-row threshold and no app (measurements_sealed.go, groupPage), from
-- the sealed units where the window has them, as CountMeasurementsAboveSealed
-- counts: with B the filter's bucket, the window's rows with elapsed >=
-- @min_elapsed are
--   - its rows of bucket B that pass the filter: a scan of bucket B's
--     window in measurements_elapsed_bucket_idx, which tests the filter in
--     the index (elapsed is its third key column since migration 00035) and
--     fetches only the rows that pass (a few hundred of the bucket's
--     ~30,000 in a week at 10 M rows) for their name and method;
--   - in the units of telemetry_measurements_sealed_tiling, every row of a
--     higher bucket: per cell, the suffix statistics of migration 00027 at
--     the first occupied bucket above B (width_bucket finds it), with the
--     cell's histogram from that bucket on (cut since migration 00036),
--     whose buckets Go adds up (above floor_bucket), and the cell's
--     maximum (its highest bucket is above B);
--   - in the gaps between the units, the rows of the higher buckets.
-- Minima, maxima, counts and sums of these disjoint parts combine exactly;
-- the percentiles come from the same buckets as GroupMeasurementsPage's.
-- The page's order is GroupMeasurementsPage's. The statement is the
-- function telemetry_measurements_grouped_above (migration 00028; its body
-- since migration 00030 groups by hashing, histograms included; bucket B
-- read in one scan since migration 00035; histograms cut at B since
-- 00036), whose
-- plan PostgreSQL keeps; sqlc cannot type a table function's columns: they
-- are named in the alias list and cast.
SELECT g.name::text AS name, g.method::text AS method, g.count::bigint AS count, g.avg_elapsed::float8 AS avg_elapsed,
       g.min_elapsed::float8 AS min_elapsed, g.max_elapsed::float8 AS max_elapsed, g.total::bigint AS total,
       g.hists::bytea[] AS hists, g.edge_buckets::smallint[] AS edge_buckets, g.floor_bucket::smallint AS floor_bucket
FROM telemetry_measurements_grouped_above(
    @started_at::timestamptz, @ended_at::timestamptz, @min_elapsed::float8, sqlc.narg('name')::text, @methods::text[],
    @sort_key::text, @descending::boolean, @row_offset::bigint, @row_limit::bigint)
    AS g (name, method, count, avg_elapsed, min_elapsed, max_elapsed, total, hists, edge_buckets, floor_bucket);

-- name: GroupMeasurementsAboveParts :many
-- GroupMeasurementsAboveSealed's inputs but the sealed cells, which the
-- service keeps in memory keyed by their seal (measurements_cells.go): the
-- window's sealed tiles with their seal (tile_secs > 0), and per name and
-- method the window's rows read from the table (tile_secs = 0). The
-- function telemetry_measurements_grouped_above_parts (migration 00046);
-- its columns named in the alias list and cast, as above.
SELECT g.tile_secs::integer AS tile_secs, g.tile_start::timestamptz AS tile_start, g.sealed_at::timestamptz AS sealed_at,
       g.seal_xmin::bigint AS seal_xmin, g.name::text AS name, g.method::text AS method, g.count::bigint AS count,
       g.sum_elapsed::float8 AS sum_elapsed, g.min_elapsed::float8 AS min_elapsed, g.max_elapsed::float8 AS max_elapsed,
       g.buckets::smallint[] AS buckets, g.floor_bucket::smallint AS floor_bucket
FROM telemetry_measurements_grouped_above_parts(
    @started_at::timestamptz, @ended_at::timestamptz, @min_elapsed::float8, sqlc.narg('name')::text, @methods::text[])
    AS g (tile_secs, tile_start, sealed_at, seal_xmin, name, method, count, sum_elapsed, min_elapsed, max_elapsed,
          buckets, floor_bucket);

-- name: MeasurementSealedTileCells :many
-- The cells of the sealed tiles (@tile_secs[i], @tile_starts[i]) that are
-- still sealed by the seal the caller read (@sealed_ats[i], @seal_xmins[i]):
-- every cell of each, all names and methods, whole. A tile whose seal is
-- still that one has one row with a NULL name when it holds no cell; a
-- tile resealed or unsealed since has none.
SELECT t.secs::integer AS tile_secs, t.start::timestamptz AS tile_start,
       c.name, c.method, c.count, c.sum_elapsed, c.min_elapsed, c.max_elapsed, c.hist,
       c.above_buckets, c.above_counts, c.above_sums, c.above_mins
FROM ROWS FROM (
    unnest(@tile_secs::int[]),
    unnest(@tile_starts::timestamptz[]),
    unnest(@sealed_ats::timestamptz[]),
    unnest(@seal_xmins::bigint[])
) AS t (secs, start, sealed_at, seal_xmin)
-- The tile's own seal (for a 5-minute bin, only while its hour has none:
-- migration 00049), or for a bin its hour's, still the one the caller read.
JOIN LATERAL (
    SELECT 1 FROM measurements_sealed o
    WHERE o.unit_secs = t.secs AND o.unit_start = t.start
      AND o.sealed_at = t.sealed_at AND o.xmin::text::bigint = t.seal_xmin
      AND NOT (t.secs = 300 AND EXISTS (
          SELECT 1 FROM measurements_sealed x
          WHERE x.unit_secs = 3600 AND x.unit_start = date_bin('1 hour', t.start, '1970-01-01 00:00:00+00')))
    UNION ALL
    SELECT 1 FROM measurements_sealed h
    WHERE t.secs = 300 AND h.unit_secs = 3600 AND h.unit_start = date_bin('1 hour', t.start, '1970-01-01 00:00:00+00')
      AND h.sealed_at = t.sealed_at AND h.xmin::text::bigint = t.seal_xmin
) s ON true
LEFT JOIN measurements_sealed_cells c ON c.unit_secs = t.secs AND c.unit_start = t.start;

-- name: DatabaseComparesBytes :one
-- Whether the database's default collation compares text as bytes (C or
-- POSIX with the libc provider), as Go compares strings: the kept sealed
-- cells' groups are ranked in Go only then (measurements_cells.go). The
-- provider is read through to_jsonb, which PostgreSQL before 15 (no
-- datlocprovider) also answers.
SELECT (d.datcollate IN ('C', 'POSIX') AND coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') = 'c')::boolean AS bytes
FROM pg_catalog.pg_database d
WHERE d.datname = current_database();

-- name: GroupMeasurementsParts :many
-- GroupMeasurementsPageSealed's inputs but the sealed cells, which the
-- service keeps in memory keyed by their seal (measurements_cells.go): the
-- sealed units and edge A's bins it would read, with their seal
-- (tile_secs > 0), and per name and method every other part added up,
-- with its histograms and the edges' rows' buckets (tile_secs = 0). The
-- function telemetry_measurements_grouped_parts (migration 00047); its
-- columns named in the alias list and cast, as above.
SELECT g.tile_secs::integer AS tile_secs, g.tile_start::timestamptz AS tile_start, g.sealed_at::timestamptz AS sealed_at,
       g.seal_xmin::bigint AS seal_xmin, g.name::text AS name, g.method::text AS method, g.count::bigint AS count,
       g.sum_elapsed::float8 AS sum_elapsed, g.min_elapsed::float8 AS min_elapsed, g.max_elapsed::float8 AS max_elapsed,
       g.hists::bytea[] AS hists, g.buckets::smallint[] AS buckets
FROM telemetry_measurements_grouped_parts(
    @h1::timestamptz, @h2::timestamptz, @h2_next::timestamptz, @d1::timestamptz, @d2::timestamptz,
    @a5::timestamptz, @started_at::timestamptz, @ended_at::timestamptz, sqlc.narg('name')::text, @methods::text[])
    AS g (tile_secs, tile_start, sealed_at, seal_xmin, name, method, count, sum_elapsed, min_elapsed, max_elapsed,
          hists, buckets);

-- name: CountMeasurementsAboveSealedWindow :one
-- CountMeasurementsAboveSealed's count without a name or methods, from the
-- units' totals (migration 00026), by the function of migration 00050
-- (planned once per connection; until the forty-sixth session the statement
-- had this case too).
SELECT c.rows_below::bigint AS rows_below, c.rows_above::bigint AS rows_above, c.bucket::integer AS bucket,
       c.hists::bytea[] AS hists
FROM telemetry_measurements_count_above(@started_at::timestamptz, @ended_at::timestamptz, @min_elapsed::float8)
    AS c (rows_below, rows_above, bucket, hists);
