-- A page of a device metric's history buckets (GET
-- /mrd/devices/{id}/metrics/{name}/history?bucket=...) as a PL/pgSQL
-- function, so that each connection plans its statement once
-- (queries/devices.sql, ListMetricHistoryBuckets).
--
-- The statement aggregated every bucket of the window for every page (the
-- numeric average and an exact p95, a sort per bucket), counted them with a
-- window function, then cut the page. BenchmarkDevicesReads10M
-- (docs/devices.md, "At volume") measured it at 10 M rows with one series of
-- a report a minute for 90 days (125,000 points): a page of 1-minute buckets
-- 640-940 ms p50 at 4 clients, 165-300 ms of PostgreSQL CPU per request;
-- 1-hour and 1-day buckets 400-520 ms p50. It now walks the window once in
-- time order (the index's order, no sort), keeps the first point of each
-- bucket (date_bin grows with time, so a bucket starts where it differs
-- from the previous point's), numbers them, and takes the page's first and
-- last bucket and the total from that pass; only the points between them
-- are aggregated. The answers are the same.
--
-- That statement is longer to parse and plan than the one it replaces:
-- sent as an unnamed statement, as the service sends its queries
-- (DATABASE_EXEC_MODE cache_describe, docs/scaling.md), a page of a small
-- window (24 hours of 1-hour buckets) cost about twice the PostgreSQL CPU
-- it did (1.1 against 0.5 ms a request). A PL/pgSQL function keeps its
-- statement's plan for the life of the server connection, whichever client
-- a pooler gives it to (as telemetry_insert_device_metrics does, migration
-- 00033): the small pages cost less than before and the large ones keep
-- the gain. After its first calls the plan is generic (the parameters as
-- such): the same index-only scans of device_metrics_values_idx, bounded
-- by the parameters at run time (TimescaleDB excludes chunks at run time
-- too).
--
-- SECURITY INVOKER (the default): a caller needs SELECT on device_metrics,
-- as it did. STABLE: it only reads.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION telemetry_device_metric_buckets(
    p_width_seconds float8, p_device_id text, p_name text, p_from timestamptz, p_to timestamptz,
    p_offset bigint, p_limit bigint)
RETURNS TABLE (bucket timestamptz, avg_value float8, min_value float8, max_value float8, p95_value float8,
               points bigint, total bigint)
LANGUAGE plpgsql STABLE
AS $$
#variable_conflict use_column
BEGIN
    -- page: the first and last bucket of the page and the total, from one
    -- pass over the window's points in time order.
    RETURN QUERY
    WITH page AS (
        SELECT min(s.bucket) FILTER (WHERE s.n > p_offset) AS first_bucket,
               max(s.bucket) FILTER (WHERE s.n - p_offset <= p_limit) AS last_bucket,
               count(*) AS total
        FROM (
            SELECT r.bucket, row_number() OVER (ORDER BY r.time) AS n
            FROM (
                SELECT w.time,
                       date_bin(make_interval(secs => p_width_seconds), w.time, '1970-01-01 00:00:00+00'::timestamptz) AS bucket,
                       lag(date_bin(make_interval(secs => p_width_seconds), w.time, '1970-01-01 00:00:00+00'::timestamptz))
                           OVER (ORDER BY w.time) AS previous
                FROM device_metrics w
                WHERE w.device_id = p_device_id AND w.name = p_name
                  AND w.time >= p_from AND w.time < p_to
                  AND w.value_num IS NOT NULL
            ) r
            WHERE r.previous IS DISTINCT FROM r.bucket
        ) s
    )
    -- The average over numeric through text (exact; float8::numeric keeps
    -- 15 digits), p95 nearest-rank: as queries/devices.sql explains.
    SELECT date_bin(make_interval(secs => p_width_seconds), m.time, '1970-01-01 00:00:00+00'::timestamptz),
           avg(m.value_num::text::numeric)::float8,
           min(m.value_num)::float8,
           max(m.value_num)::float8,
           (percentile_disc(0.95) WITHIN GROUP (ORDER BY m.value_num))::float8,
           count(*),
           (SELECT p.total FROM page p)
    FROM device_metrics m
    WHERE m.device_id = p_device_id AND m.name = p_name
      AND m.time >= p_from AND m.time < p_to
      AND m.time >= (SELECT p.first_bucket FROM page p)
      AND m.time < (SELECT p.last_bucket FROM page p) + make_interval(secs => p_width_seconds)
      AND m.value_num IS NOT NULL
    GROUP BY 1
    ORDER BY 1;
END
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION telemetry_device_metric_buckets(float8, text, text, timestamptz, timestamptz, bigint, bigint) IS
    'A page of the buckets of one device metric''s numeric history (GET /mrd/devices/{id}/metrics/{name}/history?bucket=): p_width_seconds wide, aligned to the Unix epoch, over [p_from, p_to), empty buckets left out, the p_limit buckets after the first p_offset, oldest first, each with its average, min, max, nearest-rank p95 and number of points, and total, the number of non-empty buckets. No row past the last page. Aggregates the page''s buckets only; a function so that each connection plans its statement once (migration 00056).';

-- +goose Down
DROP FUNCTION telemetry_device_metric_buckets(float8, text, text, timestamptz, timestamptz, bigint, bigint);
