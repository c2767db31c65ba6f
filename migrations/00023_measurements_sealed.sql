-- Sealed units of measurements: per closed UTC hour (with its twelve
-- 5-minute bins), per closed quarter of a UTC day (6 hours) and per closed
-- UTC day, the grouped view's statistics per (name, method), with no app
-- and no end hour, and each cell's elapsed histogram in the same row. The
-- grouped measurements without an app or elapsed filter read a window's
-- partial days (by quarters and hours), whole days and its first partial
-- hour's whole 5-minute bins from here when they are sealed (the function
-- telemetry_measurements_grouped below, called by
-- queries/measurements_sealed.sql), instead of the app- and end-hour-keyed
-- rollups and their separate histogram rows: a sixth of the cells for a
-- week at 10 M rows, each read once.
--
-- Nothing here is written by the ingest: the maintenance pass builds a unit
-- once it is closed (internal/store/postgres/measurements_sealed.go), each
-- in its own transaction holding an exclusive transaction-level advisory
-- lock on the unit; an ingest transaction takes the shared lock of every
-- hour, quarter and day its rows start in and then deletes their
-- measurements_sealed rows. So a build either sees every batch of its unit
-- that committed before it, or the batch waits for the build to commit and
-- then unseals the unit: a sealed unit's cells always match its rows. A read uses a unit only
-- when measurements_sealed has it, and only when every row of the unit ended
-- before the window's last hour (max_ended_at), so that none of them is
-- counted twice or outside the window.

-- +goose Up
CREATE TABLE measurements_sealed (
    unit_secs    integer     NOT NULL,
    unit_start   timestamptz NOT NULL,
    max_ended_at timestamptz NOT NULL,
    sealed_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT measurements_sealed_pkey PRIMARY KEY (unit_secs, unit_start),
    CONSTRAINT measurements_sealed_unit CHECK (
        unit_secs IN (3600, 21600, 86400) AND extract(epoch FROM unit_start)::bigint % unit_secs = 0)
);

COMMENT ON TABLE measurements_sealed IS
    'Units (UTC hours with their 5-minute bins, quarters of UTC days, UTC days) whose measurements_sealed_cells match their rows; the ingest deletes the units its rows start in.';
COMMENT ON COLUMN measurements_sealed.unit_secs IS 'Width of the unit in seconds: 3600 (an hour and its twelve 5-minute bins), 21600 (a quarter of a UTC day) or 86400 (a day).';
COMMENT ON COLUMN measurements_sealed.unit_start IS 'Start of the unit (UTC, aligned on its width).';
COMMENT ON COLUMN measurements_sealed.max_ended_at IS 'Latest ended_at of the rows started in the unit (-infinity when none).';
COMMENT ON COLUMN measurements_sealed.sealed_at IS 'When the maintenance pass built the unit.';

CREATE TABLE measurements_sealed_cells (
    unit_secs   integer          NOT NULL,
    unit_start  timestamptz      NOT NULL,
    name        text             NOT NULL,
    method      text             NOT NULL,
    count       bigint           NOT NULL,
    sum_elapsed double precision NOT NULL,
    min_elapsed double precision NOT NULL,
    max_elapsed double precision NOT NULL,
    hist        bytea            NOT NULL,
    CONSTRAINT measurements_sealed_cells_pkey PRIMARY KEY (unit_secs, unit_start, name, method),
    CONSTRAINT measurements_sealed_cells_unit CHECK (
        unit_secs IN (300, 3600, 21600, 86400) AND extract(epoch FROM unit_start)::bigint % unit_secs = 0),
    CONSTRAINT measurements_sealed_cells_count_positive CHECK (count > 0)
);

COMMENT ON TABLE measurements_sealed_cells IS
    'Per sealed unit (measurements_sealed) and its 5-minute bins: count and elapsed statistics per (name, method) of the rows started in it, all apps, with their elapsed histogram. Valid only while measurements_sealed holds the unit (the hour, for a 5-minute bin).';
COMMENT ON COLUMN measurements_sealed_cells.unit_secs IS '300 (a 5-minute bin of a sealed hour), 3600, 21600 or 86400.';
COMMENT ON COLUMN measurements_sealed_cells.unit_start IS 'Start of the bin, hour, quarter or day (UTC).';
COMMENT ON COLUMN measurements_sealed_cells.count IS 'Number of measurements started in the unit with this name and method.';
COMMENT ON COLUMN measurements_sealed_cells.sum_elapsed IS 'Sum of their elapsed seconds.';
COMMENT ON COLUMN measurements_sealed_cells.min_elapsed IS 'Smallest elapsed.';
COMMENT ON COLUMN measurements_sealed_cells.max_elapsed IS 'Largest elapsed.';
COMMENT ON COLUMN measurements_sealed_cells.hist IS 'Their elapsed histogram, encoded as in measurements_hourly_hist (telemetry_hist_buckets decodes it).';

-- (telemetry_analyst reads them through migration 00011's default privileges.)

-- The grouped view of a window with no app or elapsed filter, one page of
-- it, read from the sealed units where it can (the queries file's
-- GroupMeasurementsPageSealed calls it; its comment there says how the
-- window is split). A PL/pgSQL function so that PostgreSQL keeps its plan:
-- the statement's plan is the same whatever the window (each part is read
-- by its key or a narrow range, the row parts by time alone), and planning
-- it took 4-6 ms of a 17 ms call at 10 M rows, parsing more; a prepared
-- statement would do the same but does not survive PgBouncer's
-- transaction pooling. plan_cache_mode = force_generic_plan makes it plan
-- once per connection.
-- +goose StatementBegin
CREATE FUNCTION telemetry_measurements_grouped(
    p_h1 timestamptz, p_h2 timestamptz, p_h2_next timestamptz, p_d1 timestamptz, p_d2 timestamptz,
    p_a5 timestamptz, p_started_at timestamptz, p_ended_at timestamptz, p_name text, p_methods text[],
    p_sort_key text, p_descending boolean, p_row_offset bigint, p_row_limit bigint)
RETURNS TABLE (name text, method text, count bigint, avg_elapsed double precision, min_elapsed double precision,
               max_elapsed double precision, total bigint, hists bytea[], edge_buckets smallint[])
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH RECURSIVE late AS (
        -- By end time alone (OFFSET 0): a generic plan otherwise ANDs it with
        -- the week's start times.
        SELECT EXISTS (
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

-- +goose Down
DROP FUNCTION IF EXISTS telemetry_measurements_grouped;
DROP TABLE IF EXISTS measurements_sealed_cells;
DROP TABLE IF EXISTS measurements_sealed;
