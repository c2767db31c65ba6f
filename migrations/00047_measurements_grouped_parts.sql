-- The grouped view without an elapsed filter and without an app
-- (telemetry_measurements_grouped, migrations 00023-00041) keeps the sealed
-- cells it reads in memory too, as the view with a low filter does since
-- migration 00046 (docs/measurements.md, "The sealed cells kept in
-- memory"). This function is telemetry_measurements_grouped without its
-- sealed cells, ranking and page, its other parts read exactly as there:
--   - one row per sealed unit it would read, and per 5-minute bin of edge A
--     when the bins are used (tile_secs > 0), with the seal the tile is
--     valid under (the unit's measurements_sealed row, the hour's for a
--     bin: sealed_at and xmin);
--   - one row per (name, method) of every other part (tile_secs = 0): the
--     open days' and hours' rollups, the partial days' hourly cells, the
--     edges' rows, added up, with the parts' histograms (every group's, not
--     only a page's: the page is cut in Go) and the edges' rows' buckets.
-- One statement, so one snapshot. Unused columns are '' / 0 / the epoch.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION telemetry_measurements_grouped_parts(
    p_h1 timestamptz, p_h2 timestamptz, p_h2_next timestamptz, p_d1 timestamptz, p_d2 timestamptz,
    p_a5 timestamptz, p_started_at timestamptz, p_ended_at timestamptz, p_name text, p_methods text[])
RETURNS TABLE (tile_secs integer, tile_start timestamptz, sealed_at timestamptz, seal_xmin bigint,
               name text, method text, count bigint, sum_elapsed double precision, min_elapsed double precision,
               max_elapsed double precision, hists bytea[], buckets smallint[])
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_sort = off
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH RECURSIVE late AS (
        -- By end time alone (OFFSET 0): a generic plan otherwise ANDs it with
        -- the week's start times.
        -- Once rows of edge B may have expired (retention_watermarks), a
        -- late row may be gone: edge B is then read from what is left of
        -- its rows (migration 00040).
        SELECT coalesce((SELECT w.deleted_before > p_h1 FROM retention_watermarks w
                         WHERE w.table_name = 'measurements'), true)
            OR EXISTS (
            SELECT 1
            FROM (
                SELECT m.started_at, m.name, m.method FROM measurements m
                WHERE m.ended_at > p_ended_at AND m.ended_at < p_h2_next
                OFFSET 0
            ) AS m
            WHERE m.started_at >= p_h1 AND m.started_at < p_h2_next
              AND (p_name IS NULL OR m.name = p_name)
              AND (cardinality(p_methods) = 0 OR m.method = ANY(p_methods))
        ) AS found
    ), quarters AS (
        SELECT s.unit_secs, s.unit_start
        FROM measurements_sealed s
        WHERE s.max_ended_at < p_h2 AND s.unit_secs = 21600
          AND ((s.unit_start >= p_h1 AND s.unit_start < least(p_d1, p_h2))
            OR (s.unit_start >= greatest(p_d1, p_d2) AND s.unit_start < p_h2))
    ), units AS (
        -- A quarter's hours are read from the quarter when it is used.
        SELECT q.unit_secs, q.unit_start FROM quarters q
        UNION ALL
        SELECT s.unit_secs, s.unit_start
        FROM measurements_sealed s
        WHERE s.max_ended_at < p_h2
          AND ((s.unit_secs = 3600
                AND ((s.unit_start >= p_h1 AND s.unit_start < least(p_d1, p_h2))
                  OR (s.unit_start >= greatest(p_d1, p_d2) AND s.unit_start < p_h2))
                AND NOT EXISTS (SELECT 1 FROM quarters q WHERE q.unit_start = date_bin('6 hours', s.unit_start, '1970-01-01 00:00:00+00')))
            OR (s.unit_secs = 86400 AND s.unit_start >= p_d1 AND s.unit_start < p_d2))
    ), edge_sealed AS (
        -- The 5-minute bins [a5, h1) hold what the rows held when they were
        -- sealed: once rows at or after a5 may have expired
        -- (retention_watermarks), edge A is read from what is left of the
        -- rows (migration 00041).
        SELECT p_a5 < p_h1 AND EXISTS (
            SELECT 1 FROM measurements_sealed s
            WHERE s.unit_secs = 3600 AND s.unit_start = (p_h1) - '1 hour'::interval
              AND s.max_ended_at < p_h2
        ) AND coalesce((SELECT w.deleted_before <= p_a5 FROM retention_watermarks w
                        WHERE w.table_name = 'measurements'), false) AS found
    ), open_hours AS (
        -- The partial days' hours: [h1, d1) and [d2, h2) (or [h1, h2) within a day).
        SELECT h.start_hour
        FROM (
            SELECT generate_series(p_h1, least(p_d1, p_h2) - '1 hour'::interval, '1 hour'::interval)
            UNION ALL
            SELECT generate_series(greatest(p_d1, p_d2), (p_h2) - '1 hour'::interval, '1 hour'::interval)
        ) AS h (start_hour)
        WHERE NOT EXISTS (SELECT 1 FROM units u WHERE u.unit_secs = 3600 AND u.unit_start = h.start_hour)
          AND NOT EXISTS (SELECT 1 FROM quarters q WHERE q.unit_start = date_bin('6 hours', h.start_hour, '1970-01-01 00:00:00+00'))
    ), cell_days AS (
        -- The whole days that hold daily cells, one index probe each (a
        -- window may span millennia; a series of its days would not do).
        SELECT min(r.start_day) AS start_day FROM measurements_daily r
        WHERE r.start_day >= p_d1 AND r.start_day < p_d2
        UNION ALL
        SELECT (SELECT min(r.start_day) FROM measurements_daily r WHERE r.start_day > c.start_day AND r.start_day < p_d2)
        FROM cell_days c
        WHERE c.start_day IS NOT NULL
    ), open_days AS (
        SELECT d.start_day
        FROM cell_days d
        WHERE d.start_day IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM units u WHERE u.unit_secs = 86400 AND u.unit_start = d.start_day)
    ), edges AS (
        -- Edge A by time alone (the filters outside, OFFSET 0): with a name
        -- the planner, not knowing where the CASE ends the range, chose to AND
        -- it with the name's 200,000 rows (100 ms instead of 0.2 at 10 M rows).
        SELECT m.name, m.method, m.elapsed
        FROM (
            SELECT m.name, m.method, m.elapsed FROM measurements m
            WHERE m.started_at >= p_started_at
              AND m.started_at < CASE WHEN (SELECT e.found FROM edge_sealed e) THEN p_a5 ELSE p_h1 END
              AND m.started_at <= p_ended_at AND m.ended_at <= p_ended_at
            OFFSET 0
        ) AS m
        WHERE (p_name IS NULL OR m.name = p_name)
          AND (cardinality(p_methods) = 0 OR m.method = ANY(p_methods))
        UNION ALL
        SELECT m.name, m.method, m.elapsed
        FROM (
            SELECT m.started_at, m.name, m.method, m.elapsed FROM measurements m
            WHERE m.ended_at >= p_h2 AND m.ended_at <= p_ended_at
              AND (SELECT l.found FROM late l)
            OFFSET 0
        ) AS m
        WHERE m.started_at >= p_h1 AND m.started_at <= p_ended_at
          AND (p_name IS NULL OR m.name = p_name)
          AND (cardinality(p_methods) = 0 OR m.method = ANY(p_methods))
    ), edge_groups AS (
        SELECT e.name, e.method, count(*)::bigint AS count, sum(e.elapsed) AS sum_elapsed,
               min(e.elapsed) AS min_elapsed, max(e.elapsed) AS max_elapsed,
               array_agg(telemetry_elapsed_bucket(e.elapsed)) AS buckets
        FROM edges e
        GROUP BY e.name, e.method
    ), parts AS (
        SELECT r.name, r.method, r.count, r.sum_elapsed, r.min_elapsed, r.max_elapsed
        FROM open_days o
        CROSS JOIN LATERAL (
            SELECT r.name, r.method, r.count, r.sum_elapsed, r.min_elapsed, r.max_elapsed
            FROM measurements_daily r
            WHERE r.start_day = o.start_day AND r.end_day < p_d2
              AND (p_name IS NULL OR r.name = p_name)
              AND (cardinality(p_methods) = 0 OR r.method = ANY(p_methods))
            OFFSET 0
        ) AS r
        UNION ALL
        SELECT r.name, r.method, r.count, r.sum_elapsed, r.min_elapsed, r.max_elapsed
        FROM open_hours o
        CROSS JOIN LATERAL (
            SELECT r.name, r.method, r.count, r.sum_elapsed, r.min_elapsed, r.max_elapsed
            FROM measurements_hourly r
            WHERE r.start_hour = o.start_hour AND r.end_hour < p_h2
              AND (p_name IS NULL OR r.name = p_name)
              AND (cardinality(p_methods) = 0 OR r.method = ANY(p_methods))
            OFFSET 0
        ) AS r
        UNION ALL
        SELECT r.name, r.method, r.count, r.sum_elapsed, r.min_elapsed, r.max_elapsed
        FROM measurements_hourly r
        WHERE r.end_hour >= p_d2 AND r.end_hour < p_h2
          AND r.start_hour >= p_d1 AND r.start_hour < p_d2
          AND date_trunc('day', r.start_hour, 'UTC') IN (SELECT o.start_day FROM open_days o)
          AND (p_name IS NULL OR r.name = p_name)
          AND (cardinality(p_methods) = 0 OR r.method = ANY(p_methods))
          AND EXISTS (SELECT 1 FROM open_days)
        UNION ALL
        SELECT r.name, r.method, r.count, r.sum_elapsed, r.min_elapsed, r.max_elapsed
        FROM measurements_hourly r
        WHERE r.end_hour = p_h2 AND r.start_hour >= p_h1
          AND (p_name IS NULL OR r.name = p_name)
          AND (cardinality(p_methods) = 0 OR r.method = ANY(p_methods))
          AND NOT (SELECT l.found FROM late l)
        UNION ALL
        SELECT e.name, e.method, e.count, e.sum_elapsed, e.min_elapsed, e.max_elapsed
        FROM edge_groups e
    ), hists AS (
        SELECT h.name, h.method, array_agg(h.hist) AS hists
        FROM (
            SELECT r.name, r.method, r.hist
            FROM open_days o
            CROSS JOIN LATERAL (
                SELECT r.name, r.method, r.hist FROM measurements_daily_hist r
                WHERE r.start_day = o.start_day AND r.end_day < p_d2
                OFFSET 0
            ) AS r
            WHERE (p_name IS NULL OR r.name = p_name)
              AND (cardinality(p_methods) = 0 OR r.method = ANY(p_methods))
            UNION ALL
            SELECT r.name, r.method, r.hist
            FROM open_hours o
            CROSS JOIN LATERAL (
                SELECT r.name, r.method, r.hist FROM measurements_hourly_hist r
                WHERE r.start_hour = o.start_hour AND r.end_hour < p_h2
                OFFSET 0
            ) AS r
            WHERE (p_name IS NULL OR r.name = p_name)
              AND (cardinality(p_methods) = 0 OR r.method = ANY(p_methods))
            UNION ALL
            SELECT r.name, r.method, r.hist
            FROM measurements_hourly_hist r
            WHERE (p_name IS NULL OR r.name = p_name)
              AND (cardinality(p_methods) = 0 OR r.method = ANY(p_methods))
              AND r.end_hour >= p_d2 AND r.end_hour < p_h2
              AND r.start_hour >= p_d1 AND r.start_hour < p_d2
              AND date_trunc('day', r.start_hour, 'UTC') IN (SELECT o.start_day FROM open_days o)
              AND EXISTS (SELECT 1 FROM open_days)
            UNION ALL
            SELECT r.name, r.method, r.hist
            FROM measurements_hourly_hist r
            WHERE (p_name IS NULL OR r.name = p_name)
              AND (cardinality(p_methods) = 0 OR r.method = ANY(p_methods))
              AND r.end_hour = p_h2 AND r.start_hour >= p_h1
              AND NOT (SELECT l.found FROM late l)
        ) h
        GROUP BY h.name, h.method
    ), tiles AS (
        -- The sealed units read, and edge A's 5-minute bins [a5, h1) of the
        -- hour before h1 when they are used: the service keeps their cells.
        SELECT u.unit_secs, u.unit_start FROM units u
        UNION ALL
        SELECT 300, b.bin
        FROM generate_series(p_a5, (p_h1) - '5 minutes'::interval, '5 minutes'::interval) AS b (bin)
        WHERE (SELECT e.found FROM edge_sealed e)
    ), groups AS (
        SELECT p.name, p.method, sum(p.count)::bigint AS count, sum(p.sum_elapsed)::float8 AS sum_elapsed,
               min(p.min_elapsed)::float8 AS min_elapsed, max(p.max_elapsed)::float8 AS max_elapsed
        FROM parts p
        GROUP BY p.name, p.method
    )
    SELECT t.unit_secs, t.unit_start, s.sealed_at, s.xmin::text::bigint, ''::text, ''::text, 0::bigint,
           0::float8, 0::float8, 0::float8, '{}'::bytea[], '{}'::smallint[]
    FROM tiles t
    JOIN measurements_sealed s
      ON s.unit_secs = greatest(t.unit_secs, 3600)
     AND s.unit_start = date_bin(make_interval(secs => greatest(t.unit_secs, 3600)), t.unit_start,
                                 '1970-01-01 00:00:00+00')
    UNION ALL
    SELECT 0, 'epoch'::timestamptz, 'epoch'::timestamptz, 0::bigint, g.name, g.method, g.count,
           g.sum_elapsed, g.min_elapsed, g.max_elapsed,
           COALESCE(h.hists, '{}')::bytea[], COALESCE(e.buckets, '{}')::smallint[]
    FROM groups g
    LEFT JOIN hists h ON h.name = g.name AND h.method = g.method
    LEFT JOIN edge_groups e ON e.name = g.name AND e.method = g.method;
END
$fn$;
-- +goose StatementEnd

COMMENT ON FUNCTION telemetry_measurements_grouped_parts(timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, text, text[]) IS
    'The parts of the grouped measurements without an elapsed filter that the service does not keep in memory: the window''s sealed units and edge bins with their seal (sealed_at, xmin), and per name and method the sum of every other part with its histograms and the edge rows'' buckets. Used by the service only.';

-- +goose Down
DROP FUNCTION telemetry_measurements_grouped_parts(timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, text, text[]);
