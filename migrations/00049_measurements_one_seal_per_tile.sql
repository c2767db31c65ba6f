-- One seal per tile in the grouped view's parts. A 5-minute bin has at
-- most one seal, its own or its hour's (migration 00048), as long as every
-- hour build deletes its bins' own seals; an hour built by an instance from
-- before migration 00048 (a rolling upgrade: a pass that began before the
-- migration) rewrites the bins' cells but leaves their own seals. The
-- tiling (the count) already skipped such bins' own seals, but
-- telemetry_measurements_grouped_above_parts named both seals of such a
-- bin, and the service's kept cells then added the bin's cells twice
-- (found by an audit, reproduced: 332 rows counted for 232). A bin's own
-- seal now counts only while its hour has none, here and in
-- MeasurementSealedTileCells (queries/measurements_sealed.sql).

-- +goose Up
-- +goose StatementBegin
-- A bin tile's own seal only while its hour has none.
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
    -- The tile's own seal (a unit, or a 5-minute bin sealed on its own
    -- while its hour is not), else, for a bin, its hour's: one seal per
    -- tile, even if a bin's own seal outlived its hour's build (migration
    -- 00049).
    CROSS JOIN LATERAL (
        SELECT o.sealed_at, o.xmin AS row_xmin FROM measurements_sealed o
        WHERE o.unit_secs = t.tile_secs AND o.unit_start = t.tile_start
          AND NOT (t.tile_secs = 300 AND EXISTS (
              SELECT 1 FROM measurements_sealed x
              WHERE x.unit_secs = 3600 AND x.unit_start = date_bin('1 hour', t.tile_start, '1970-01-01 00:00:00+00')))
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

-- +goose Down
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
