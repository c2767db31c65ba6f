-- The grouped view with an elapsed filter below 0.25 s sends each sealed
-- cell's histogram from the first bucket above the filter's own bucket B
-- on, instead of whole.
--
-- telemetry_measurements_grouped_above (migration 00028, its body last in
-- 00035) returns, for each group of the page, the histograms of its sealed
-- cells; Go adds up their buckets above B (histogramAbove) for the
-- percentiles. The buckets up to B count rows below the filter or read
-- from the rows, and were sent to be skipped: at 10 M rows, a week and
-- elapsed >= 0.1, 845 histograms of 143 KB a page, of which 22 KB above B.
-- Each cell's histogram is now cut at its first occupied bucket above B,
-- which the cell's suffix statistics already name (above_buckets[k], found
-- by width_bucket): a new header with that first bucket, then the counts
-- from there (the encoding of migration 00013). The page's histograms are
-- 23 KB; the service reads, decodes and collects a sixth of the bytes.
--
-- Measured (docs/performance.md, "Sixteenth session"): the service's CPU
-- per call 2.79-3.24 -> 1.85-2.45 ms; the statement itself within the
-- noise (the cut costs about what the smaller aggregates save). The answers
-- were the same over 36 combinations of filter, order, page and method.

-- +goose Up
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
        -- The cell's histogram from the first occupied bucket above B
        -- (above_buckets[k]) on: its header's first bucket rewritten, the
        -- counts before it cut off (the encoding of migration 00013).
        SELECT c.name, c.method,
               substr(c.hist, 1, 1) || int2send(c.above_buckets[x.k])
                   || substr(c.hist, 4 + (c.above_buckets[x.k] - (get_byte(c.hist, 1) * 256 + get_byte(c.hist, 2)))
                                         * get_byte(c.hist, 0)) AS hist,
               c.max_elapsed,
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

