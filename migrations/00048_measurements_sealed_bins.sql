-- 5-minute bins sealed on their own. A unit is sealed 15 minutes after it
-- ends (SealDelay), so a window ending now had the whole current hour and,
-- for its first 15 minutes, the hour before unsealed: 15 to 75 minutes of
-- rows, which the count and the grouped view with an elapsed filter read
-- from the table (the gaps' rows above the filter, each fetched from the
-- heap for its name and method; docs/measurements.md, "The sealed cells
-- kept in memory"). Now the maintenance pass also seals each closed
-- 5-minute bin of an hour that is not sealed yet, on its own: a
-- measurements_sealed row of width 300 with the bin's cells and totals,
-- built under its hour's advisory lock. A build of the hour deletes its
-- bins' own seals in the same transaction (its bins' cells are rewritten
-- then), and a bin is not built while its hour is sealed, so a bin has at
-- most one seal: its own or its hour's. The ingest unseals the bins its
-- rows start in along with their hours, quarters and days
-- (telemetry_unseal_measurement_units with a fourth array; the three-array
-- form, which instances from before this migration call, deletes every
-- bin seal of the hours it is given). The window's unsealed tail is then
-- 15 to 20 minutes.
--
-- The tiling (count and grouped view with an elapsed filter) uses such bins
-- inside the window; the grouped view without a filter is unchanged (it
-- reads an unsealed hour from the hourly rollup, not from the rows).

-- +goose Up
ALTER TABLE measurements_sealed DROP CONSTRAINT measurements_sealed_unit;
ALTER TABLE measurements_sealed ADD CONSTRAINT measurements_sealed_unit CHECK (
    unit_secs IN (300, 3600, 21600, 86400) AND extract(epoch FROM unit_start)::bigint % unit_secs = 0);

COMMENT ON TABLE measurements_sealed IS
    'Units (UTC hours with their 5-minute bins, quarters of UTC days, UTC days, and 5-minute bins of hours not sealed yet) whose measurements_sealed_cells match their rows; the ingest deletes the units its rows start in.';
COMMENT ON COLUMN measurements_sealed.unit_secs IS 'Width of the unit in seconds: 300 (a 5-minute bin sealed on its own, only while its hour is not), 3600 (an hour and its twelve 5-minute bins), 21600 (a quarter of a UTC day) or 86400 (a day).';
COMMENT ON COLUMN measurements_sealed_cells.unit_secs IS '300 (a 5-minute bin of a sealed hour, or sealed on its own), 3600, 21600 or 86400.';
COMMENT ON COLUMN measurements_sealed_totals.unit_secs IS '300 (a 5-minute bin of a sealed hour, or sealed on its own), 3600, 21600 or 86400.';

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
-- 5-minute bins of the sealed hours only partly inside it, then the
-- 5-minute bins sealed on their own (migration 00048) inside it outside the
-- days and quarters, whose hour is not sealed; each only when
-- every row of it ended by win_end (max_ended_at) and it starts at or after
-- the rows' retention mark (retention_watermarks: an older unit may count
-- rows since expired). They do not overlap: a day excludes its quarters and
-- hours, a quarter its hours, and a bin's hour is not inside the window, so
-- no day, quarter or hour inside it holds it.
CREATE OR REPLACE FUNCTION telemetry_measurements_sealed_tiling(
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
    WHERE s.unit_secs = ANY('{300,3600,21600,86400}'::int[])
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
            AND t.unit_secs = ANY('{300,3600,21600,86400}'::int[])
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
), own_bins AS (
    -- The 5-minute bins sealed on their own (migration 00048) inside the
    -- window, outside the days and quarters used, and only while their
    -- hour is not sealed (a build of the hour deletes them; a bin is not
    -- built while its hour is sealed): so never one of the bins above.
    SELECT u.unit_secs, u.unit_start, u.unit_end FROM usable u
    WHERE u.unit_secs = 300 AND u.unit_start >= win_start AND u.unit_end <= win_end
      AND NOT EXISTS (SELECT 1 FROM days d WHERE d.unit_start = date_bin('1 day', u.unit_start, '1970-01-01 00:00:00+00'))
      AND NOT EXISTS (SELECT 1 FROM quarters q WHERE q.unit_start = date_bin('6 hours', u.unit_start, '1970-01-01 00:00:00+00'))
      AND NOT EXISTS (SELECT 1 FROM measurements_sealed h
                      WHERE h.unit_secs = 3600 AND h.unit_start = date_bin('1 hour', u.unit_start, '1970-01-01 00:00:00+00'))
), units AS (
    SELECT d.unit_secs, d.unit_start, d.unit_end FROM days d
    UNION ALL
    SELECT q.unit_secs, q.unit_start, q.unit_end FROM quarters q
    UNION ALL
    SELECT h.unit_secs, h.unit_start, h.unit_end FROM hours h
    UNION ALL
    SELECT b.unit_secs, b.unit_start, b.unit_end FROM bins b
    UNION ALL
    SELECT o.unit_secs, o.unit_start, o.unit_end FROM own_bins o
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

-- +goose StatementBegin
-- The tiles' seals: a bin sealed on its own has its own row.
CREATE OR REPLACE FUNCTION telemetry_measurements_grouped_above_parts(
    p_started_at timestamptz, p_ended_at timestamptz, p_min_elapsed double precision, p_name text, p_methods text[])
RETURNS TABLE (tile_secs integer, tile_start timestamptz, sealed_at timestamptz, seal_xmin bigint,
               name text, method text, count bigint, sum_elapsed double precision, min_elapsed double precision,
               max_elapsed double precision, buckets smallint[], floor_bucket smallint)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_sort = off
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH tiling AS MATERIALIZED (
        SELECT t.tile_secs::integer AS tile_secs, t.tile_start::timestamptz AS tile_start,
               t.tile_end::timestamptz AS tile_end, t.gap_buckets::smallint[] AS gap_buckets
        FROM telemetry_measurements_sealed_tiling(p_started_at, p_ended_at, p_min_elapsed, false)
            AS t (tile_secs, tile_start, tile_end, gap_buckets)
    ), bucket AS (
        SELECT telemetry_elapsed_bucket(p_min_elapsed)::smallint AS b
    ), rows_above AS (
        -- As telemetry_measurements_grouped_above reads them: bucket B's
        -- rows that pass the filter, then one scan per gap.
        SELECT m.name, m.method, m.elapsed, telemetry_elapsed_bucket(m.elapsed) AS bucket FROM measurements m
        WHERE telemetry_elapsed_bucket(m.elapsed) = (SELECT k.b FROM bucket k)
          AND m.elapsed >= p_min_elapsed
          AND m.started_at >= p_started_at AND m.started_at <= p_ended_at
          AND m.ended_at <= p_ended_at
          AND (p_name IS NULL OR m.name = p_name)
          AND (cardinality(p_methods) = 0 OR m.method = ANY(p_methods))
        UNION ALL
        SELECT r.name, r.method, r.elapsed, r.bucket
        FROM tiling t
        CROSS JOIN LATERAL (
            SELECT m.name, m.method, m.elapsed, telemetry_elapsed_bucket(m.elapsed) AS bucket FROM measurements m
            WHERE telemetry_elapsed_bucket(m.elapsed) = ANY(t.gap_buckets)
              AND m.started_at >= t.tile_start AND m.started_at < t.tile_end
              AND m.started_at >= p_started_at AND m.started_at <= p_ended_at
              AND m.ended_at <= p_ended_at AND m.ended_at >= t.tile_start
              AND (p_name IS NULL OR m.name = p_name)
              AND (cardinality(p_methods) = 0 OR m.method = ANY(p_methods))) r
        WHERE t.tile_secs IS NULL
    )
    SELECT t.tile_secs, t.tile_start, s.sealed_at, s.row_xmin::text::bigint, ''::text, ''::text, 0::bigint,
           0::float8, 0::float8, 0::float8, '{}'::smallint[], (SELECT k.b FROM bucket k)
    FROM tiling t
    -- The tile's own seal (a unit, or a 5-minute bin sealed on its own),
    -- else, for a bin, its hour's: never both (migration 00048).
    CROSS JOIN LATERAL (
        SELECT o.sealed_at, o.xmin AS row_xmin FROM measurements_sealed o
        WHERE o.unit_secs = t.tile_secs AND o.unit_start = t.tile_start
        UNION ALL
        SELECT h.sealed_at, h.xmin AS row_xmin FROM measurements_sealed h
        WHERE t.tile_secs = 300 AND h.unit_secs = 3600
          AND h.unit_start = date_bin('1 hour', t.tile_start, '1970-01-01 00:00:00+00')
    ) s
    WHERE t.tile_secs IS NOT NULL
    UNION ALL
    SELECT 0, 'epoch'::timestamptz, 'epoch'::timestamptz, 0::bigint, r.name, r.method, count(*)::bigint,
           sum(r.elapsed)::float8, min(r.elapsed)::float8, max(r.elapsed)::float8,
           array_agg(r.bucket)::smallint[], (SELECT k.b FROM bucket k)
    FROM rows_above r
    GROUP BY r.name, r.method;
END
$fn$;
-- +goose StatementEnd

-- +goose StatementBegin
-- UnsealMeasurementUnits with the 5-minute bins the rows start in ($4).
CREATE FUNCTION telemetry_unseal_measurement_units(timestamptz[], timestamptz[], timestamptz[], timestamptz[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    DELETE FROM measurements_sealed
    WHERE (unit_secs = 3600 AND unit_start = ANY($1::timestamptz[]))
       OR (unit_secs = 21600 AND unit_start = ANY($2::timestamptz[]))
       OR (unit_secs = 86400 AND unit_start = ANY($3::timestamptz[]))
       OR (unit_secs = 300 AND unit_start = ANY($4::timestamptz[]));
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- The form instances from before this migration call: without the bins,
-- every bin of the given hours is unsealed.
CREATE OR REPLACE FUNCTION telemetry_unseal_measurement_units(timestamptz[], timestamptz[], timestamptz[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    DELETE FROM measurements_sealed
    WHERE (unit_secs = 3600 AND unit_start = ANY($1::timestamptz[]))
       OR (unit_secs = 21600 AND unit_start = ANY($2::timestamptz[]))
       OR (unit_secs = 86400 AND unit_start = ANY($3::timestamptz[]))
       OR (unit_secs = 300 AND unit_start = ANY(ARRAY(
              SELECT h.h + b.n * '5 minutes'::interval
              FROM unnest($1::timestamptz[]) AS h (h) CROSS JOIN generate_series(0, 11) AS b (n))));
END
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION telemetry_unseal_measurement_units(timestamptz[], timestamptz[], timestamptz[], timestamptz[]) IS
    'The ingest''s statement UnsealMeasurementUnits (queries/*.sql) as a function, planned once per connection (migrations 00034, 00048).';
COMMENT ON FUNCTION telemetry_unseal_measurement_units(timestamptz[], timestamptz[], timestamptz[]) IS
    'The ingest''s statement UnsealMeasurementUnits before migration 00048, for instances of that time: it also unseals every 5-minute bin of the given hours.';

-- +goose Down
DELETE FROM measurements_sealed_totals t
WHERE t.unit_secs = 300 AND EXISTS (SELECT 1 FROM measurements_sealed s WHERE s.unit_secs = 300 AND s.unit_start = t.unit_start);
DELETE FROM measurements_sealed_cells c
WHERE c.unit_secs = 300 AND EXISTS (SELECT 1 FROM measurements_sealed s WHERE s.unit_secs = 300 AND s.unit_start = c.unit_start);
DELETE FROM measurements_sealed WHERE unit_secs = 300;
DROP FUNCTION telemetry_unseal_measurement_units(timestamptz[], timestamptz[], timestamptz[], timestamptz[]);

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION telemetry_unseal_measurement_units(timestamptz[], timestamptz[], timestamptz[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    DELETE FROM measurements_sealed
    WHERE (unit_secs = 3600 AND unit_start = ANY($1::timestamptz[]))
       OR (unit_secs = 21600 AND unit_start = ANY($2::timestamptz[]))
       OR (unit_secs = 86400 AND unit_start = ANY($3::timestamptz[]));
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION telemetry_unseal_measurement_units(timestamptz[], timestamptz[], timestamptz[]) IS
    'The ingest''s statement UnsealMeasurementUnits (queries/*.sql) as a function, planned once per connection (migration 00034).';

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION telemetry_measurements_grouped_above_parts(
    p_started_at timestamptz, p_ended_at timestamptz, p_min_elapsed double precision, p_name text, p_methods text[])
RETURNS TABLE (tile_secs integer, tile_start timestamptz, sealed_at timestamptz, seal_xmin bigint,
               name text, method text, count bigint, sum_elapsed double precision, min_elapsed double precision,
               max_elapsed double precision, buckets smallint[], floor_bucket smallint)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_sort = off
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH tiling AS MATERIALIZED (
        SELECT t.tile_secs::integer AS tile_secs, t.tile_start::timestamptz AS tile_start,
               t.tile_end::timestamptz AS tile_end, t.gap_buckets::smallint[] AS gap_buckets
        FROM telemetry_measurements_sealed_tiling(p_started_at, p_ended_at, p_min_elapsed, false)
            AS t (tile_secs, tile_start, tile_end, gap_buckets)
    ), bucket AS (
        SELECT telemetry_elapsed_bucket(p_min_elapsed)::smallint AS b
    ), rows_above AS (
        -- As telemetry_measurements_grouped_above reads them: bucket B's
        -- rows that pass the filter, then one scan per gap.
        SELECT m.name, m.method, m.elapsed, telemetry_elapsed_bucket(m.elapsed) AS bucket FROM measurements m
        WHERE telemetry_elapsed_bucket(m.elapsed) = (SELECT k.b FROM bucket k)
          AND m.elapsed >= p_min_elapsed
          AND m.started_at >= p_started_at AND m.started_at <= p_ended_at
          AND m.ended_at <= p_ended_at
          AND (p_name IS NULL OR m.name = p_name)
          AND (cardinality(p_methods) = 0 OR m.method = ANY(p_methods))
        UNION ALL
        SELECT r.name, r.method, r.elapsed, r.bucket
        FROM tiling t
        CROSS JOIN LATERAL (
            SELECT m.name, m.method, m.elapsed, telemetry_elapsed_bucket(m.elapsed) AS bucket FROM measurements m
            WHERE telemetry_elapsed_bucket(m.elapsed) = ANY(t.gap_buckets)
              AND m.started_at >= t.tile_start AND m.started_at < t.tile_end
              AND m.started_at >= p_started_at AND m.started_at <= p_ended_at
              AND m.ended_at <= p_ended_at AND m.ended_at >= t.tile_start
              AND (p_name IS NULL OR m.name = p_name)
              AND (cardinality(p_methods) = 0 OR m.method = ANY(p_methods))) r
        WHERE t.tile_secs IS NULL
    )
    SELECT t.tile_secs, t.tile_start, s.sealed_at, s.xmin::text::bigint, ''::text, ''::text, 0::bigint,
           0::float8, 0::float8, 0::float8, '{}'::smallint[], (SELECT k.b FROM bucket k)
    FROM tiling t
    JOIN measurements_sealed s
      ON s.unit_secs = greatest(t.tile_secs, 3600)
     AND s.unit_start = date_bin(make_interval(secs => greatest(t.tile_secs, 3600)), t.tile_start,
                                 '1970-01-01 00:00:00+00')
    WHERE t.tile_secs IS NOT NULL
    UNION ALL
    SELECT 0, 'epoch'::timestamptz, 'epoch'::timestamptz, 0::bigint, r.name, r.method, count(*)::bigint,
           sum(r.elapsed)::float8, min(r.elapsed)::float8, max(r.elapsed)::float8,
           array_agg(r.bucket)::smallint[], (SELECT k.b FROM bucket k)
    FROM rows_above r
    GROUP BY r.name, r.method;
END
$fn$;
-- +goose StatementEnd

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
CREATE OR REPLACE FUNCTION telemetry_measurements_sealed_tiling(
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

COMMENT ON TABLE measurements_sealed IS
    'Units (UTC hours with their 5-minute bins, quarters of UTC days, UTC days) whose measurements_sealed_cells match their rows; the ingest deletes the units its rows start in.';
COMMENT ON COLUMN measurements_sealed.unit_secs IS 'Width of the unit in seconds: 3600 (an hour and its twelve 5-minute bins), 21600 (a quarter of a UTC day) or 86400 (a day).';
COMMENT ON COLUMN measurements_sealed_cells.unit_secs IS '300 (a 5-minute bin of a sealed hour), 3600, 21600 or 86400.';
COMMENT ON COLUMN measurements_sealed_totals.unit_secs IS '300 (a 5-minute bin of a sealed hour), 3600, 21600 or 86400.';
ALTER TABLE measurements_sealed DROP CONSTRAINT measurements_sealed_unit;
ALTER TABLE measurements_sealed ADD CONSTRAINT measurements_sealed_unit CHECK (
    unit_secs IN (3600, 21600, 86400) AND extract(epoch FROM unit_start)::bigint % unit_secs = 0);
