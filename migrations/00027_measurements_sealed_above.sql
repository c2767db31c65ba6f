-- The grouped view with an elapsed filter below the slow-row threshold
-- (0.25 s) read every row of the window above the filter, with its name and
-- method from the heap: 3.1-3.4 s for a week at 10 M rows and elapsed >= 0.1.
-- With these columns a sealed cell answers the statistics of its rows above
-- any histogram bucket B: the first element k of above_buckets greater than
-- B gives the count, sum and minimum of the cell's rows in buckets >= that
-- one, and the cell's maximum is theirs. Only the rows of the filter's own
-- bucket and those of the window's unsealed gaps are then read
-- (GroupMeasurementsAboveSealed, queries/measurements_sealed.sql; the same
-- tiling of the window as CountMeasurementsAboveSealed).
--
-- Suffix statistics, one element per occupied bucket (most cells are
-- 5-minute bins with a few rows, so a dense array over the histogram's span
-- would be mostly repeats), so that a cell is read at one subscript found by
-- width_bucket, without adding anything up in SQL.
--
-- Every seal is dropped here, its cells and totals with it: they would lack
-- the columns. Sealed units are derived data: until the maintenance pass
-- builds them again (its first pass after this migration, at most 2,000
-- units a pass, 872 units in 3 min 40 s at 10 M rows on the shared 2-core
-- machine), the grouped view and the list's total are read from the
-- rollups and the rows, as before migration 00023, with the same answers.

-- +goose Up
DELETE FROM measurements_sealed_cells;
DELETE FROM measurements_sealed_totals;
DELETE FROM measurements_sealed;

ALTER TABLE measurements_sealed_cells
    ADD COLUMN above_buckets smallint[] NOT NULL,
    ADD COLUMN above_counts bigint[] NOT NULL,
    ADD COLUMN above_sums double precision[] NOT NULL,
    ADD COLUMN above_mins double precision[] NOT NULL,
    ADD CONSTRAINT measurements_sealed_cells_above CHECK (
        cardinality(above_buckets) >= 1 AND array_ndims(above_buckets) = 1
        AND cardinality(above_counts) = cardinality(above_buckets)
        AND cardinality(above_sums) = cardinality(above_buckets)
        AND cardinality(above_mins) = cardinality(above_buckets)
        AND above_counts[1] = count);

-- A day's cell holds 150 buckets or so (3.6 kB): above the default 2 kB
-- its arrays went to the TOAST table, and reading the one element of each
-- fetched them from there (2,000 cells of a week at 10 M rows: 19 ms, 9 ms
-- inline). A page holds two such rows.
ALTER TABLE measurements_sealed_cells SET (toast_tuple_target = 8160);

COMMENT ON COLUMN measurements_sealed_cells.above_buckets IS
    'The occupied elapsed histogram buckets of the cell (telemetry_elapsed_bucket), ascending.';
COMMENT ON COLUMN measurements_sealed_cells.above_counts IS
    'Element k: the number of the cell''s measurements in buckets >= above_buckets[k] (the first is count).';
COMMENT ON COLUMN measurements_sealed_cells.above_sums IS
    'Element k: the sum of elapsed of the cell''s measurements in buckets >= above_buckets[k].';
COMMENT ON COLUMN measurements_sealed_cells.above_mins IS
    'Element k: the least elapsed of the cell''s measurements in buckets >= above_buckets[k].';

-- +goose StatementBegin
-- The tiling of a window [win_start, win_end] by sealed units that the
-- counts and statistics above an elapsed bucket read
-- (queries/measurements_sealed.sql: CountMeasurementsAboveSealed,
-- GroupMeasurementsAboveSealed): one row per unit (tile_secs its width,
-- gap_buckets NULL) and one per gap between them (tile_secs NULL, gap_buckets
-- the buckets above that of floor_elapsed that its rows can hold). A SQL
-- function of one statement, so PostgreSQL inlines it into the calling
-- query and plans it with the query's values.
--
-- The units are the sealed days inside the window, then the sealed quarters
-- inside it outside those days, then the sealed hours outside both, then the
-- 5-minute bins of the sealed hours only partly inside it; each only when
-- every row of it ended by win_end (max_ended_at) and it starts at or after
-- the rows' retention mark (retention_watermarks: an older unit may count
-- rows since expired). They do not overlap: a day excludes its quarters and
-- hours, a quarter its hours, and a bin's hour is not inside the window, so
-- no day, quarter or hour inside it holds it.
CREATE FUNCTION telemetry_measurements_sealed_tiling(
    win_start timestamptz, win_end timestamptz, floor_elapsed double precision, by_totals boolean)
    RETURNS TABLE (tile_secs integer, tile_start timestamptz, tile_end timestamptz, gap_buckets smallint[])
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
WITH mark AS (
    SELECT coalesce((SELECT w.deleted_before FROM retention_watermarks w WHERE w.table_name = 'measurements'),
                    'infinity'::timestamptz) AS kept_from
), usable AS (
    SELECT s.unit_secs, s.unit_start, s.unit_start + make_interval(secs => s.unit_secs) AS unit_end
    FROM measurements_sealed s
    -- By its key: each width, from a day before the window (no unit is
    -- longer) to its end (the table holds every sealed hour of the
    -- rollups' retention: 9,600 of them for 400 days).
    WHERE s.unit_secs = ANY('{3600,21600,86400}'::int[])
      AND s.unit_start > win_start - '1 day'::interval
      AND s.unit_start >= (SELECT k.kept_from FROM mark k)
      AND s.unit_start < win_end
      AND s.unit_start + make_interval(secs => s.unit_secs) > win_start
      AND s.max_ended_at <= win_end
      -- With by_totals, only units that have their totals (migration
      -- 00026; every build writes them with the cells, so only a hand edit
      -- leaves a unit without: it is then read from its rows).
      -- (The planner hashes this EXISTS: the range keeps the hash to the
      -- window's units instead of every total of the table, 9,500 for the
      -- 30 days at 10 M rows, more with each day the rollups are kept.)
      AND (NOT by_totals OR EXISTS (
          SELECT 1 FROM measurements_sealed_totals t
          WHERE t.unit_secs = s.unit_secs AND t.unit_start = s.unit_start
            AND t.unit_secs = ANY('{3600,21600,86400}'::int[])
            AND t.unit_start > win_start - '1 day'::interval AND t.unit_start < win_end))
), days AS (
    SELECT u.unit_secs, u.unit_start, u.unit_end FROM usable u
    WHERE u.unit_secs = 86400 AND u.unit_start >= win_start AND u.unit_end <= win_end
), quarters AS (
    SELECT u.unit_secs, u.unit_start, u.unit_end FROM usable u
    WHERE u.unit_secs = 21600 AND u.unit_start >= win_start AND u.unit_end <= win_end
      AND NOT EXISTS (SELECT 1 FROM days d WHERE d.unit_start = date_bin('1 day', u.unit_start, '1970-01-01 00:00:00+00'))
), hours AS (
    SELECT u.unit_secs, u.unit_start, u.unit_end FROM usable u
    WHERE u.unit_secs = 3600 AND u.unit_start >= win_start AND u.unit_end <= win_end
      AND NOT EXISTS (SELECT 1 FROM days d WHERE d.unit_start = date_bin('1 day', u.unit_start, '1970-01-01 00:00:00+00'))
      AND NOT EXISTS (SELECT 1 FROM quarters q WHERE q.unit_start = date_bin('6 hours', u.unit_start, '1970-01-01 00:00:00+00'))
), bins AS (
    SELECT 300 AS unit_secs, b.bin AS unit_start, b.bin + '5 minutes'::interval AS unit_end
    FROM usable u
    CROSS JOIN LATERAL generate_series(u.unit_start, u.unit_end - '5 minutes'::interval, '5 minutes'::interval) AS b (bin)
    WHERE u.unit_secs = 3600 AND (u.unit_start < win_start OR u.unit_end > win_end)
      AND b.bin >= win_start AND b.bin + '5 minutes'::interval <= win_end
), units AS (
    SELECT d.unit_secs, d.unit_start, d.unit_end FROM days d
    UNION ALL
    SELECT q.unit_secs, q.unit_start, q.unit_end FROM quarters q
    UNION ALL
    SELECT h.unit_secs, h.unit_start, h.unit_end FROM hours h
    UNION ALL
    SELECT b.unit_secs, b.unit_start, b.unit_end FROM bins b
), ordered AS (
    SELECT u.unit_start, u.unit_end, lag(u.unit_end) OVER (ORDER BY u.unit_start) AS prev_end FROM units u
), gaps AS (
    -- Before each unit, and after the last (to the window's end, inclusive).
    SELECT coalesce(o.prev_end, win_start) AS gap_start, o.unit_start AS gap_end
    FROM ordered o
    WHERE coalesce(o.prev_end, win_start) < o.unit_start
    UNION ALL
    SELECT coalesce((SELECT max(u.unit_end) FROM units u), win_start), 'infinity'::timestamptz
), bucket AS (
    SELECT telemetry_elapsed_bucket(floor_elapsed)::integer AS b
), gap_buckets AS (
    -- Each gap's buckets above B, up to that of the largest elapsed of the
    -- hourly rollup's cells of its hours (written with the rows, so no row
    -- of the gap is slower), so that its scan names a hundred buckets or so
    -- instead of every one up to the CHECK's bound (571 index descents,
    -- 2 ms a gap at 10 M rows). None when the gap's hours hold no cell
    -- (the bucket of 0 is 0; that of NULL would be 32767).
    SELECT g.gap_start, g.gap_end, ARRAY(
               SELECT generate_series((SELECT k.b FROM bucket k) + 1, (
                   SELECT telemetry_elapsed_bucket(coalesce(max(r.max_elapsed), 0::float8))::integer FROM measurements_hourly r
                   WHERE r.start_hour >= date_bin('1 hour', g.gap_start, '1970-01-01 00:00:00+00')
                     AND r.start_hour < g.gap_end AND r.start_hour <= win_end))::smallint) AS buckets
    FROM gaps g
)
SELECT u.unit_secs, u.unit_start, u.unit_end, NULL::smallint[] FROM units u
UNION ALL
SELECT NULL::integer, g.gap_start, g.gap_end, g.buckets FROM gap_buckets g
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION telemetry_measurements_sealed_tiling(timestamptz, timestamptz, double precision, boolean);
ALTER TABLE measurements_sealed_cells RESET (toast_tuple_target);
ALTER TABLE measurements_sealed_cells
    DROP CONSTRAINT measurements_sealed_cells_above,
    DROP COLUMN above_buckets,
    DROP COLUMN above_counts,
    DROP COLUMN above_sums,
    DROP COLUMN above_mins;
