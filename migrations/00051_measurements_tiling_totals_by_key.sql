-- The tiling's check that its units have their totals, made for the units
-- it keeps rather than for every candidate. With by_totals (the list's count
-- without a name or methods, telemetry_measurements_count_above of
-- migration 00050) the candidates of a week's window were checked against
-- a hash of the window's totals rows: 2,529 of them (one per 5-minute bin
-- of every sealed hour) hashed to check 210 candidate units, of which 22
-- were kept. Now the 22 are looked up by key. At 1 M rows, a week,
-- elapsed >= 0.1 (a throwaway probe, warm, one client, 800 calls each):
-- the count function p50 1.21 -> 0.82 ms, with the same answers over nine
-- windows and filters. A unit without totals (only a hand edit leaves one:
-- every build writes them with the cells) was replaced by the finer units
-- inside it that have theirs; now it becomes part of a gap, whose rows are
-- counted: the same count, more rows read. by_totals false (the grouped
-- view, and the count with a name or methods) is unchanged.

-- +goose Up

-- +goose StatementBegin
-- The tiling of a window [win_start, win_end] by sealed units (migrations
-- 00027, 00048): one row per unit and one per gap between them. A SQL
-- function of one statement, so PostgreSQL inlines it into the calling
-- query. With by_totals only units that have their totals rows are kept;
-- the others are left to the gaps.
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
), chosen AS (
    SELECT d.unit_secs, d.unit_start, d.unit_end FROM days d
    UNION ALL
    SELECT q.unit_secs, q.unit_start, q.unit_end FROM quarters q
    UNION ALL
    SELECT h.unit_secs, h.unit_start, h.unit_end FROM hours h
    UNION ALL
    SELECT b.unit_secs, b.unit_start, b.unit_end FROM bins b
    UNION ALL
    SELECT o.unit_secs, o.unit_start, o.unit_end FROM own_bins o
), units AS (
    -- With by_totals, only the chosen units that have their totals
    -- (migration 00026; every build writes them with the cells, so only a
    -- hand edit leaves a unit without): one lookup by key each. A chosen
    -- unit without becomes part of a gap, read from its rows.
    SELECT c.unit_secs, c.unit_start, c.unit_end FROM chosen c
    WHERE NOT by_totals OR EXISTS (
        SELECT 1 FROM measurements_sealed_totals t
        WHERE t.unit_secs = c.unit_secs AND t.unit_start = c.unit_start)
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

-- +goose StatementBegin
-- Migration 00048's tiling: every candidate checked for its totals.
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
