-- The grouped view with an elapsed filter below the slow-row threshold and no
-- app (docs/measurements.md, "The sealed cells kept in memory"): the service
-- keeps the cells of the sealed units it has read, keyed by their seal, and
-- asks PostgreSQL only for what is not sealed. This function is
-- telemetry_measurements_grouped_above (migrations 00028-00036) without its
-- cells, grouping and ranking: it answers
--   - one row per tile of telemetry_measurements_sealed_tiling that is a
--     sealed unit or bin (tile_secs > 0), with the seal it is valid under:
--     the unit's measurements_sealed row (its hour's, for a 5-minute bin),
--     named by sealed_at and the row's xmin, which every build and every
--     unseal changes;
--   - one row per (name, method) of the window's rows read from the table
--     (tile_secs = 0): bucket B's rows that pass the filter and the gaps'
--     rows of the higher buckets, with their statistics and buckets.
-- Every row carries the filter's bucket B (floor_bucket). Both kinds come
-- from one statement, so from one snapshot: the rows read are exactly those
-- the sealed tiles do not hold. Unused columns are '' / 0 / the epoch
-- (sqlc cannot type a table function's columns as nullable).

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION telemetry_measurements_grouped_above_parts(
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

COMMENT ON FUNCTION telemetry_measurements_grouped_above_parts(timestamptz, timestamptz, double precision, text, text[]) IS
    'The parts of the grouped measurements with an elapsed filter that the service does not keep in memory: the window''s sealed tiles with their seal (sealed_at, xmin), and per name and method the rows read from the table (bucket B that pass the filter, the gaps'' higher buckets). Used by the service only.';

COMMENT ON TABLE measurements_sealed_cells IS
    'Per sealed unit (measurements_sealed) and its 5-minute bins: count and elapsed statistics per (name, method) of the rows started in it, all apps, with their elapsed histogram. Valid only while measurements_sealed holds the unit (the hour, for a 5-minute bin). The service keeps the cells it has read in memory for as long as their unit''s measurements_sealed row stays the same (its sealed_at and xmin): a cell changed by hand is seen only once that row is changed too.';

-- +goose Down
COMMENT ON TABLE measurements_sealed_cells IS
    'Per sealed unit (measurements_sealed) and its 5-minute bins: count and elapsed statistics per (name, method) of the rows started in it, all apps, with their elapsed histogram. Valid only while measurements_sealed holds the unit (the hour, for a 5-minute bin).';
DROP FUNCTION telemetry_measurements_grouped_above_parts(timestamptz, timestamptz, double precision, text, text[]);
