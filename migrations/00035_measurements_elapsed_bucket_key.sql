-- The filter's own bucket of the grouped view below 0.25 s (migration
-- 00027, "The grouped view with an elapsed filter below 0.25 s" in
-- docs/measurements.md) read without the second index lookup per row.
--
-- measurements_elapsed_bucket_idx (migration 00024) was keyed by (bucket,
-- started_at) and held elapsed as an INCLUDE column. A plain index scan
-- cannot test an INCLUDE column before it fetches the row, so
-- telemetry_measurements_grouped_above found the rows of the filter's
-- bucket B that pass the filter in two steps: their distinct (started_at,
-- elapsed) from the index alone, then each row again by those two through
-- measurements_start_idx, for its name and method. elapsed is now the
-- index's third key column (ended_at stays included): the scan of bucket B
-- over the window tests elapsed >= filter in the index and fetches only
-- the rows that pass, once each. The key still starts with (bucket,
-- started_at), so inserts land where they did (the right end of each
-- bucket's range), the elapsed orders read it as before (bucket by bucket,
-- each sorted on its own), and the list's count still reads it alone.
-- The index is the same size (473 MB at 10 M rows).
--
-- At 10 M rows, a week, elapsed >= 0.1, the statement alone (pgbench, two
-- alternating runs each): one client 13.9-14.6 -> 10.8-11.7 ms a call,
-- four clients 33.6-37.2 -> 21.0-24.3 ms; with a name 9.5-11.8 -> 6.6-7.3
-- ms; at the bottom of a bucket (0.0955, every row of bucket B passes)
-- 290-357 -> 193-251 ms. The answers were the same over 70 combinations of
-- filter, name, methods, sort key and direction.
--
-- The index is built again: writes to measurements wait for the build (16 s
-- at 10 M rows on the machines of docs/performance.md; see the README,
-- "Migrating").

-- +goose Up
DROP INDEX measurements_elapsed_bucket_idx;
CREATE INDEX measurements_elapsed_bucket_idx ON measurements (telemetry_elapsed_bucket(elapsed), started_at, elapsed)
    INCLUDE (ended_at);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION telemetry_measurements_grouped_above(
    p_started_at timestamptz, p_ended_at timestamptz, p_min_elapsed double precision, p_name text, p_methods text[],
    p_sort_key text, p_descending boolean, p_row_offset bigint, p_row_limit bigint)
RETURNS TABLE (name text, method text, count bigint, avg_elapsed double precision, min_elapsed double precision,
               max_elapsed double precision, total bigint, hists bytea[], edge_buckets smallint[], floor_bucket smallint)
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
    ), cells AS (
        SELECT c.name, c.method, c.hist, c.max_elapsed,
               c.above_counts[x.k] AS count, c.above_sums[x.k] AS sum_elapsed, c.above_mins[x.k] AS min_elapsed
        FROM tiling t
        JOIN measurements_sealed_cells c ON c.unit_secs = t.tile_secs AND c.unit_start = t.tile_start
        CROSS JOIN LATERAL (SELECT width_bucket((SELECT k.b FROM bucket k), c.above_buckets) + 1 AS k) x
        WHERE t.tile_secs IS NOT NULL AND x.k <= cardinality(c.above_buckets)
          AND (p_name IS NULL OR c.name = p_name)
          AND (cardinality(p_methods) = 0 OR c.method = ANY(p_methods))
    ), rows_above AS (
        -- Bucket B's rows that pass the filter: elapsed is a key column of
        -- the bucket index, so the scan tests it before fetching a row.
        SELECT m.name, m.method, m.elapsed, telemetry_elapsed_bucket(m.elapsed) AS bucket FROM measurements m
        WHERE telemetry_elapsed_bucket(m.elapsed) = (SELECT k.b FROM bucket k)
          AND m.elapsed >= p_min_elapsed
          AND m.started_at >= p_started_at AND m.started_at <= p_ended_at
          AND m.ended_at <= p_ended_at
          AND (p_name IS NULL OR m.name = p_name)
          AND (cardinality(p_methods) = 0 OR m.method = ANY(p_methods))
        UNION ALL
        -- One scan per gap (LATERAL: as a join, the planner read the whole
        -- window's higher buckets and filtered them by gap, see the count).
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
    ), edge_groups AS (
        SELECT r.name, r.method, count(*)::bigint AS count, sum(r.elapsed)::float8 AS sum_elapsed,
               min(r.elapsed)::float8 AS min_elapsed, max(r.elapsed)::float8 AS max_elapsed,
               array_agg(r.bucket)::smallint[] AS buckets
        FROM rows_above r
        GROUP BY r.name, r.method
    ), parts AS (
        SELECT c.name, c.method, c.count, c.sum_elapsed, c.min_elapsed, c.max_elapsed, c.hist FROM cells c
        UNION ALL
        SELECT e.name, e.method, e.count, e.sum_elapsed, e.min_elapsed, e.max_elapsed, NULL::bytea FROM edge_groups e
    ), groups AS (
        -- The histograms are gathered with the statistics, in the one pass
        -- over the cells (the rows' parts have none).
        SELECT p.name, p.method, sum(p.count)::bigint AS count,
               (sum(p.sum_elapsed) / sum(p.count))::float8 AS avg_elapsed,
               min(p.min_elapsed)::float8 AS min_elapsed, max(p.max_elapsed)::float8 AS max_elapsed,
               array_agg(p.hist) FILTER (WHERE p.hist IS NOT NULL) AS hists,
               CASE p_sort_key
                   WHEN 'count' THEN sum(p.count)::float8
                   WHEN 'avgElapsed' THEN (sum(p.sum_elapsed) / sum(p.count))::float8
                   WHEN 'minElapsed' THEN min(p.min_elapsed)::float8
                   WHEN 'maxElapsed' THEN max(p.max_elapsed)::float8
               END AS sort_value
        FROM parts p
        GROUP BY p.name, p.method
    ), ranked AS (
        SELECT g.name, g.method, g.count, g.avg_elapsed, g.min_elapsed, g.max_elapsed, g.hists,
               (row_number() OVER (ORDER BY
                   CASE WHEN p_descending THEN g.sort_value END DESC,
                   CASE WHEN NOT p_descending THEN g.sort_value END ASC,
                   CASE WHEN p_descending AND p_sort_key = 'name' THEN g.name END DESC,
                   CASE WHEN p_descending AND p_sort_key = 'name' THEN g.method END DESC,
                   g.name, g.method))::bigint AS ord,
               (count(*) OVER ())::bigint AS total
        FROM groups g
    ), page AS MATERIALIZED (
        SELECT r.name, r.method, r.count, r.avg_elapsed, r.min_elapsed, r.max_elapsed, r.hists, r.ord, r.total
        FROM ranked r
        WHERE r.ord > p_row_offset AND r.ord - p_row_offset <= p_row_limit
    )
    SELECT p.name, p.method, p.count, p.avg_elapsed, p.min_elapsed, p.max_elapsed, p.total,
           COALESCE(p.hists, '{}')::bytea[] AS hists,
           COALESCE(e.buckets, '{}')::smallint[] AS edge_buckets,
           (SELECT k.b FROM bucket k)::smallint AS floor_bucket
    FROM page p
    LEFT JOIN edge_groups e ON e.name = p.name AND e.method = p.method
    ORDER BY p.ord;
END
$fn$;
-- +goose StatementEnd

-- +goose Down
DROP INDEX measurements_elapsed_bucket_idx;
CREATE INDEX measurements_elapsed_bucket_idx ON measurements (telemetry_elapsed_bucket(elapsed), started_at)
    INCLUDE (elapsed, ended_at);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION telemetry_measurements_grouped_above(
    p_started_at timestamptz, p_ended_at timestamptz, p_min_elapsed double precision, p_name text, p_methods text[],
    p_sort_key text, p_descending boolean, p_row_offset bigint, p_row_limit bigint)
RETURNS TABLE (name text, method text, count bigint, avg_elapsed double precision, min_elapsed double precision,
               max_elapsed double precision, total bigint, hists bytea[], edge_buckets smallint[], floor_bucket smallint)
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
    ), cells AS (
        SELECT c.name, c.method, c.hist, c.max_elapsed,
               c.above_counts[x.k] AS count, c.above_sums[x.k] AS sum_elapsed, c.above_mins[x.k] AS min_elapsed
        FROM tiling t
        JOIN measurements_sealed_cells c ON c.unit_secs = t.tile_secs AND c.unit_start = t.tile_start
        CROSS JOIN LATERAL (SELECT width_bucket((SELECT k.b FROM bucket k), c.above_buckets) + 1 AS k) x
        WHERE t.tile_secs IS NOT NULL AND x.k <= cardinality(c.above_buckets)
          AND (p_name IS NULL OR c.name = p_name)
          AND (cardinality(p_methods) = 0 OR c.method = ANY(p_methods))
    ), below_keys AS MATERIALIZED (
        SELECT DISTINCT m.started_at, m.elapsed FROM measurements m
        WHERE telemetry_elapsed_bucket(m.elapsed) = (SELECT k.b FROM bucket k)
          AND m.elapsed >= p_min_elapsed
          AND m.started_at >= p_started_at AND m.started_at <= p_ended_at
          AND m.ended_at <= p_ended_at
    ), rows_above AS (
        SELECT r.name, r.method, r.elapsed, r.bucket
        FROM below_keys k
        CROSS JOIN LATERAL (
            SELECT m.name, m.method, m.elapsed, telemetry_elapsed_bucket(m.elapsed) AS bucket FROM measurements m
            WHERE m.started_at = k.started_at AND m.elapsed = k.elapsed AND m.ended_at <= p_ended_at
              AND (p_name IS NULL OR m.name = p_name)
              AND (cardinality(p_methods) = 0 OR m.method = ANY(p_methods))) r
        UNION ALL
        -- One scan per gap (LATERAL: as a join, the planner read the whole
        -- window's higher buckets and filtered them by gap, see the count).
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
    ), edge_groups AS (
        SELECT r.name, r.method, count(*)::bigint AS count, sum(r.elapsed)::float8 AS sum_elapsed,
               min(r.elapsed)::float8 AS min_elapsed, max(r.elapsed)::float8 AS max_elapsed,
               array_agg(r.bucket)::smallint[] AS buckets
        FROM rows_above r
        GROUP BY r.name, r.method
    ), parts AS (
        SELECT c.name, c.method, c.count, c.sum_elapsed, c.min_elapsed, c.max_elapsed, c.hist FROM cells c
        UNION ALL
        SELECT e.name, e.method, e.count, e.sum_elapsed, e.min_elapsed, e.max_elapsed, NULL::bytea FROM edge_groups e
    ), groups AS (
        -- The histograms are gathered with the statistics, in the one pass
        -- over the cells (the rows' parts have none).
        SELECT p.name, p.method, sum(p.count)::bigint AS count,
               (sum(p.sum_elapsed) / sum(p.count))::float8 AS avg_elapsed,
               min(p.min_elapsed)::float8 AS min_elapsed, max(p.max_elapsed)::float8 AS max_elapsed,
               array_agg(p.hist) FILTER (WHERE p.hist IS NOT NULL) AS hists,
               CASE p_sort_key
                   WHEN 'count' THEN sum(p.count)::float8
                   WHEN 'avgElapsed' THEN (sum(p.sum_elapsed) / sum(p.count))::float8
                   WHEN 'minElapsed' THEN min(p.min_elapsed)::float8
                   WHEN 'maxElapsed' THEN max(p.max_elapsed)::float8
               END AS sort_value
        FROM parts p
        GROUP BY p.name, p.method
    ), ranked AS (
        SELECT g.name, g.method, g.count, g.avg_elapsed, g.min_elapsed, g.max_elapsed, g.hists,
               (row_number() OVER (ORDER BY
                   CASE WHEN p_descending THEN g.sort_value END DESC,
                   CASE WHEN NOT p_descending THEN g.sort_value END ASC,
                   CASE WHEN p_descending AND p_sort_key = 'name' THEN g.name END DESC,
                   CASE WHEN p_descending AND p_sort_key = 'name' THEN g.method END DESC,
                   g.name, g.method))::bigint AS ord,
               (count(*) OVER ())::bigint AS total
        FROM groups g
    ), page AS MATERIALIZED (
        SELECT r.name, r.method, r.count, r.avg_elapsed, r.min_elapsed, r.max_elapsed, r.hists, r.ord, r.total
        FROM ranked r
        WHERE r.ord > p_row_offset AND r.ord - p_row_offset <= p_row_limit
    )
    SELECT p.name, p.method, p.count, p.avg_elapsed, p.min_elapsed, p.max_elapsed, p.total,
           COALESCE(p.hists, '{}')::bytea[] AS hists,
           COALESCE(e.buckets, '{}')::smallint[] AS edge_buckets,
           (SELECT k.b FROM bucket k)::smallint AS floor_bucket
    FROM page p
    LEFT JOIN edge_groups e ON e.name = p.name AND e.method = p.method
    ORDER BY p.ord;
END
$fn$;
-- +goose StatementEnd
