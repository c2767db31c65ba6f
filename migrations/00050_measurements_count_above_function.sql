-- CountMeasurementsAboveSealed without a name or methods (the list's total
-- with an elapsed filter below the slow-row threshold and no filter but the
-- window: flask-profiler's dashboard sends elapsed with every request) as a
-- PL/pgSQL function whose plan PostgreSQL keeps, as the grouped view's
-- functions do (migrations 00023, 00028): at 10 M rows planning the
-- statement took 1.8-2.4 ms of a call whose execution took 2.6-3.8. Its
-- plan does not depend on the values: the units are read by their keys,
-- the filter's bucket by the bucket index's key and the window, the gaps
-- by keys and ranges known only while it runs. plan_cache_mode =
-- force_generic_plan makes it plan once per connection (a prepared
-- statement would too, but not through PgBouncer's transaction pooling).
-- enable_bitmapscan = off: the generic plan otherwise ANDed a week of
-- measurements_end_idx (1.2 M entries, from the default estimate of a
-- range on a parameter) with the bucket index for each gap: 79 ms instead
-- of 3. With a name or methods the statement stays (queries/
-- measurements_sealed.sql): its best plan depends on the name.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION telemetry_measurements_count_above(
    p_started_at timestamptz, p_ended_at timestamptz, p_min_elapsed double precision)
RETURNS TABLE (rows_below bigint, rows_above bigint, bucket integer, hists bytea[])
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_bitmapscan = off
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH tiling AS MATERIALIZED (
        SELECT t.tile_secs::integer AS tile_secs, t.tile_start::timestamptz AS tile_start,
               t.tile_end::timestamptz AS tile_end, t.gap_buckets::smallint[] AS gap_buckets
        FROM telemetry_measurements_sealed_tiling(p_started_at, p_ended_at, p_min_elapsed, true)
            AS t (tile_secs, tile_start, tile_end, gap_buckets)
    ), bucket AS (
        SELECT telemetry_elapsed_bucket(p_min_elapsed)::integer AS b
    )
    SELECT
        (SELECT count(*) FROM measurements m
         WHERE telemetry_elapsed_bucket(m.elapsed) = (SELECT k.b FROM bucket k)::smallint
           AND m.elapsed >= p_min_elapsed
           AND m.started_at >= p_started_at AND m.started_at <= p_ended_at
           AND m.ended_at <= p_ended_at
           AND m.ended_at >= p_started_at)::bigint,
        (SELECT coalesce(sum((
             SELECT count(*) FROM measurements m
             WHERE telemetry_elapsed_bucket(m.elapsed) = ANY(g.gap_buckets)
               AND m.started_at >= g.tile_start AND m.started_at < g.tile_end
               AND m.started_at >= p_started_at AND m.started_at <= p_ended_at
               AND m.ended_at <= p_ended_at AND m.ended_at >= g.tile_start
         )), 0) FROM tiling g WHERE g.tile_secs IS NULL)::bigint,
        (SELECT k.b FROM bucket k)::integer,
        coalesce((SELECT array_agg(x.hist) FROM tiling u
                  CROSS JOIN LATERAL (
                      SELECT t.hist FROM measurements_sealed_totals t
                      WHERE t.unit_secs = u.tile_secs AND t.unit_start = u.tile_start AND t.hist IS NOT NULL
                      OFFSET 0) x
                  WHERE u.tile_secs IS NOT NULL), '{}')::bytea[];
END
$fn$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION telemetry_measurements_count_above(timestamptz, timestamptz, double precision);
