-- The grouped view's function (telemetry_measurements_grouped, migration
-- 00023; edge B's expiry since migration 00040) reads edge A, the part of
-- the window before its first whole hour, from the 5-minute bins sealed
-- with the hour before it ([a5, h1), measurements_sealed_cells) and the
-- rows before a5. The bins hold what the rows held when the hour was
-- sealed; once the maintenance pass may have expired rows at or after a5
-- (retention_watermarks: rows started before deleted_before), they no
-- longer match the rows: on PostgreSQL the bin holding the cutoff kept
-- counting deleted rows, and on TimescaleDB, where drop_chunks keeps rows
-- a chunk longer than the bins before the cutoff, the rows still there were
-- missed. The grouped count then disagreed with the list's total and the
-- method distribution for the same window (found by an audit). Edge A is
-- now read from what is left of its rows in that case, as edge B is and as
-- docs/lifecycle.md says. The function is otherwise unchanged; Down
-- restores migration 00040's definition.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION telemetry_measurements_grouped(
    p_h1 timestamptz, p_h2 timestamptz, p_h2_next timestamptz, p_d1 timestamptz, p_d2 timestamptz,
    p_a5 timestamptz, p_started_at timestamptz, p_ended_at timestamptz, p_name text, p_methods text[],
    p_sort_key text, p_descending boolean, p_row_offset bigint, p_row_limit bigint)
RETURNS TABLE (name text, method text, count bigint, avg_elapsed double precision, min_elapsed double precision,
               max_elapsed double precision, total bigint, hists bytea[], edge_buckets smallint[])
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
    ), sealed_cells AS (
        SELECT c.name, c.method, c.count, c.sum_elapsed, c.min_elapsed, c.max_elapsed, c.hist
        FROM units u
        CROSS JOIN LATERAL (
            SELECT c.name, c.method, c.count, c.sum_elapsed, c.min_elapsed, c.max_elapsed, c.hist
            FROM measurements_sealed_cells c
            WHERE c.unit_secs = u.unit_secs AND c.unit_start = u.unit_start
              AND (p_name IS NULL OR c.name = p_name)
              AND (cardinality(p_methods) = 0 OR c.method = ANY(p_methods))
            OFFSET 0
        ) AS c
        UNION ALL
        SELECT c.name, c.method, c.count, c.sum_elapsed, c.min_elapsed, c.max_elapsed, c.hist
        FROM measurements_sealed_cells c
        WHERE c.unit_secs = 300 AND c.unit_start >= p_a5 AND c.unit_start < p_h1
          AND (p_name IS NULL OR c.name = p_name)
          AND (cardinality(p_methods) = 0 OR c.method = ANY(p_methods))
          AND (SELECT e.found FROM edge_sealed e)
    ), sealed_groups AS (
        SELECT c.name, c.method, sum(c.count)::bigint AS count, sum(c.sum_elapsed) AS sum_elapsed,
               min(c.min_elapsed) AS min_elapsed, max(c.max_elapsed) AS max_elapsed, array_agg(c.hist) AS hists
        FROM sealed_cells c
        GROUP BY c.name, c.method
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
        UNION ALL
        SELECT s.name, s.method, s.count, s.sum_elapsed, s.min_elapsed, s.max_elapsed
        FROM sealed_groups s
    ), groups AS (
        SELECT p.name, p.method, sum(p.count)::bigint AS count,
               (sum(p.sum_elapsed) / sum(p.count))::float8 AS avg_elapsed,
               min(p.min_elapsed)::float8 AS min_elapsed, max(p.max_elapsed)::float8 AS max_elapsed,
               CASE p_sort_key
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
                   CASE WHEN p_descending THEN g.sort_value END DESC,
                   CASE WHEN NOT p_descending THEN g.sort_value END ASC,
                   CASE WHEN p_descending AND p_sort_key = 'name' THEN g.name END DESC,
                   CASE WHEN p_descending AND p_sort_key = 'name' THEN g.method END DESC,
                   g.name, g.method))::bigint AS ord,
               (count(*) OVER ())::bigint AS total
        FROM groups g
    ), page AS MATERIALIZED (
        SELECT r.name, r.method, r.count, r.avg_elapsed, r.min_elapsed, r.max_elapsed, r.ord, r.total
        FROM ranked r
        WHERE r.ord > p_row_offset AND r.ord - p_row_offset <= p_row_limit
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
            JOIN page p ON p.name = r.name AND p.method = r.method
            UNION ALL
            SELECT r.name, r.method, r.hist
            FROM open_hours o
            CROSS JOIN LATERAL (
                SELECT r.name, r.method, r.hist FROM measurements_hourly_hist r
                WHERE r.start_hour = o.start_hour AND r.end_hour < p_h2
                OFFSET 0
            ) AS r
            JOIN page p ON p.name = r.name AND p.method = r.method
            UNION ALL
            SELECT r.name, r.method, r.hist
            FROM measurements_hourly_hist r JOIN page p ON p.name = r.name AND p.method = r.method
            WHERE r.end_hour >= p_d2 AND r.end_hour < p_h2
              AND r.start_hour >= p_d1 AND r.start_hour < p_d2
              AND date_trunc('day', r.start_hour, 'UTC') IN (SELECT o.start_day FROM open_days o)
              AND EXISTS (SELECT 1 FROM open_days)
            UNION ALL
            SELECT r.name, r.method, r.hist
            FROM measurements_hourly_hist r JOIN page p ON p.name = r.name AND p.method = r.method
            WHERE r.end_hour = p_h2 AND r.start_hour >= p_h1
              AND NOT (SELECT l.found FROM late l)
        ) h
        GROUP BY h.name, h.method
    )
    SELECT p.name, p.method, p.count, p.avg_elapsed, p.min_elapsed, p.max_elapsed, p.total,
           (COALESCE(h.hists, '{}') || COALESCE(s.hists, '{}'))::bytea[] AS hists,
           COALESCE(e.buckets, '{}')::smallint[] AS edge_buckets
    FROM page p
    LEFT JOIN hists h ON h.name = p.name AND h.method = p.method
    LEFT JOIN sealed_groups s ON s.name = p.name AND s.method = p.method
    LEFT JOIN edge_groups e ON e.name = p.name AND e.method = p.method
    ORDER BY p.ord;
END
$fn$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION telemetry_measurements_grouped(
    p_h1 timestamptz, p_h2 timestamptz, p_h2_next timestamptz, p_d1 timestamptz, p_d2 timestamptz,
    p_a5 timestamptz, p_started_at timestamptz, p_ended_at timestamptz, p_name text, p_methods text[],
    p_sort_key text, p_descending boolean, p_row_offset bigint, p_row_limit bigint)
RETURNS TABLE (name text, method text, count bigint, avg_elapsed double precision, min_elapsed double precision,
               max_elapsed double precision, total bigint, hists bytea[], edge_buckets smallint[])
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
        SELECT p_a5 < p_h1 AND EXISTS (
            SELECT 1 FROM measurements_sealed s
            WHERE s.unit_secs = 3600 AND s.unit_start = (p_h1) - '1 hour'::interval
              AND s.max_ended_at < p_h2
        ) AS found
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
    ), sealed_cells AS (
        SELECT c.name, c.method, c.count, c.sum_elapsed, c.min_elapsed, c.max_elapsed, c.hist
        FROM units u
        CROSS JOIN LATERAL (
            SELECT c.name, c.method, c.count, c.sum_elapsed, c.min_elapsed, c.max_elapsed, c.hist
            FROM measurements_sealed_cells c
            WHERE c.unit_secs = u.unit_secs AND c.unit_start = u.unit_start
              AND (p_name IS NULL OR c.name = p_name)
              AND (cardinality(p_methods) = 0 OR c.method = ANY(p_methods))
            OFFSET 0
        ) AS c
        UNION ALL
        SELECT c.name, c.method, c.count, c.sum_elapsed, c.min_elapsed, c.max_elapsed, c.hist
        FROM measurements_sealed_cells c
        WHERE c.unit_secs = 300 AND c.unit_start >= p_a5 AND c.unit_start < p_h1
          AND (p_name IS NULL OR c.name = p_name)
          AND (cardinality(p_methods) = 0 OR c.method = ANY(p_methods))
          AND (SELECT e.found FROM edge_sealed e)
    ), sealed_groups AS (
        SELECT c.name, c.method, sum(c.count)::bigint AS count, sum(c.sum_elapsed) AS sum_elapsed,
               min(c.min_elapsed) AS min_elapsed, max(c.max_elapsed) AS max_elapsed, array_agg(c.hist) AS hists
        FROM sealed_cells c
        GROUP BY c.name, c.method
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
        UNION ALL
        SELECT s.name, s.method, s.count, s.sum_elapsed, s.min_elapsed, s.max_elapsed
        FROM sealed_groups s
    ), groups AS (
        SELECT p.name, p.method, sum(p.count)::bigint AS count,
               (sum(p.sum_elapsed) / sum(p.count))::float8 AS avg_elapsed,
               min(p.min_elapsed)::float8 AS min_elapsed, max(p.max_elapsed)::float8 AS max_elapsed,
               CASE p_sort_key
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
                   CASE WHEN p_descending THEN g.sort_value END DESC,
                   CASE WHEN NOT p_descending THEN g.sort_value END ASC,
                   CASE WHEN p_descending AND p_sort_key = 'name' THEN g.name END DESC,
                   CASE WHEN p_descending AND p_sort_key = 'name' THEN g.method END DESC,
                   g.name, g.method))::bigint AS ord,
               (count(*) OVER ())::bigint AS total
        FROM groups g
    ), page AS MATERIALIZED (
        SELECT r.name, r.method, r.count, r.avg_elapsed, r.min_elapsed, r.max_elapsed, r.ord, r.total
        FROM ranked r
        WHERE r.ord > p_row_offset AND r.ord - p_row_offset <= p_row_limit
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
            JOIN page p ON p.name = r.name AND p.method = r.method
            UNION ALL
            SELECT r.name, r.method, r.hist
            FROM open_hours o
            CROSS JOIN LATERAL (
                SELECT r.name, r.method, r.hist FROM measurements_hourly_hist r
                WHERE r.start_hour = o.start_hour AND r.end_hour < p_h2
                OFFSET 0
            ) AS r
            JOIN page p ON p.name = r.name AND p.method = r.method
            UNION ALL
            SELECT r.name, r.method, r.hist
            FROM measurements_hourly_hist r JOIN page p ON p.name = r.name AND p.method = r.method
            WHERE r.end_hour >= p_d2 AND r.end_hour < p_h2
              AND r.start_hour >= p_d1 AND r.start_hour < p_d2
              AND date_trunc('day', r.start_hour, 'UTC') IN (SELECT o.start_day FROM open_days o)
              AND EXISTS (SELECT 1 FROM open_days)
            UNION ALL
            SELECT r.name, r.method, r.hist
            FROM measurements_hourly_hist r JOIN page p ON p.name = r.name AND p.method = r.method
            WHERE r.end_hour = p_h2 AND r.start_hour >= p_h1
              AND NOT (SELECT l.found FROM late l)
        ) h
        GROUP BY h.name, h.method
    )
    SELECT p.name, p.method, p.count, p.avg_elapsed, p.min_elapsed, p.max_elapsed, p.total,
           (COALESCE(h.hists, '{}') || COALESCE(s.hists, '{}'))::bytea[] AS hists,
           COALESCE(e.buckets, '{}')::smallint[] AS edge_buckets
    FROM page p
    LEFT JOIN hists h ON h.name = p.name AND h.method = p.method
    LEFT JOIN sealed_groups s ON s.name = p.name AND s.method = p.method
    LEFT JOIN edge_groups e ON e.name = p.name AND e.method = p.method
    ORDER BY p.ord;
END
$fn$;
-- +goose StatementEnd
