-- collection_http_10s: the service's own requests per (10-second bin of
-- started_at, URL path, method), beside the minute cells of migration
-- 00020, so that a metrics collection's read takes its partial first and
-- last minutes from these bins and only the partial bins at its two ends
-- (under 10 s each) from the rows. Until now it read up to two minutes of
-- rows: under the mixed load (docs/performance-mixed.md) 57-67 ms of
-- PostgreSQL a read, a quarter of that load's CPU.
--
-- The bins stand in for rows, not for the rollups: the maintenance pass
-- keeps them as long as the rows (MEASUREMENTS_RETENTION), where the minute
-- cells are kept ROLLUPS_RETENTION. Written in the statement that writes
-- the minute cells (queries/measurements.sql), so in the same transaction
-- as the rows; recomputed by RebuildRollup with the minute cells. Filled
-- here from the rows that exist. The fields of a request are
-- collection_http_fields' (migration 00020), as for the minute cells.

-- +goose Up
CREATE TABLE collection_http_10s (
    bin         timestamptz      NOT NULL,
    path        text             NOT NULL,
    method      text             NOT NULL,
    hits        bigint           NOT NULL,
    sum_elapsed double precision NOT NULL,
    max_elapsed double precision NOT NULL,
    CONSTRAINT collection_http_10s_pkey PRIMARY KEY (bin, path, method),
    CONSTRAINT collection_http_10s_aligned CHECK (date_bin('10 seconds', bin, '1970-01-01 00:00:00+00') = bin),
    CONSTRAINT collection_http_10s_hits_positive CHECK (hits > 0)
);

COMMENT ON TABLE collection_http_10s IS
    'The service''s own requests (measurements of app ''telemetry'') per (10-second bin of started_at, URL path, method), written in the same transaction as the rows and kept as long as they are: a metrics collection reads the whole bins of its partial first and last minutes from these cells.';
COMMENT ON COLUMN collection_http_10s.bin IS 'started_at rounded down to 10 seconds (bins aligned on the Unix epoch, so on UTC minutes).';
COMMENT ON COLUMN collection_http_10s.path IS 'The request path without its query (context path, else the url before ?, else name).';
COMMENT ON COLUMN collection_http_10s.method IS 'The request''s HTTP method.';
COMMENT ON COLUMN collection_http_minute.method IS 'The request''s HTTP method.';
COMMENT ON COLUMN collection_http_10s.hits IS 'Requests, a self-profiling summary row counting as its context.count.';
COMMENT ON COLUMN collection_http_10s.sum_elapsed IS 'Sum of the requests'' elapsed seconds.';
COMMENT ON COLUMN collection_http_10s.max_elapsed IS 'The longest request, seconds.';

INSERT INTO collection_http_10s (bin, path, method, hits, sum_elapsed, max_elapsed)
SELECT date_bin('10 seconds', m.started_at, '1970-01-01 00:00:00+00'), f.path, m.method,
       sum(f.hits), sum(m.elapsed * f.hits), max(f.longest)
FROM measurements m, collection_http_fields(m.context, m.name, m.elapsed) f
WHERE m.app = 'telemetry'
GROUP BY 1, 2, 3;

-- The figures of [since, until]: the whole minutes from the minute cells,
-- the whole 10-second bins outside them from the bins, the rest (under 10
-- s at each end) from the rows.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION collection_http(since timestamptz, until timestamptz)
RETURNS TABLE (path text, method text, hits bigint, avg_elapsed float8, max_elapsed float8)
LANGUAGE sql STABLE PARALLEL SAFE
SET enable_sort = off
SET jit = off
AS $$
    WITH b AS (
        -- m1 / s1: since rounded up to the minute / the 10 s; m2 / s2:
        -- until rounded down, or m1 / s1 when the window holds no whole
        -- minute / bin. When m1 < m2, [m1, m2) lies inside [s1, s2).
        SELECT x.m1, greatest(x.m1, date_trunc('minute', until, 'UTC')) AS m2,
               x.s1, greatest(x.s1, date_bin('10 seconds', until, '1970-01-01 00:00:00+00')) AS s2
        FROM (SELECT date_trunc('minute', since, 'UTC')
                     + CASE WHEN date_trunc('minute', since, 'UTC') = since THEN interval '0' ELSE interval '1 minute' END AS m1,
                     date_bin('10 seconds', since, '1970-01-01 00:00:00+00')
                     + CASE WHEN date_bin('10 seconds', since, '1970-01-01 00:00:00+00') = since
                            THEN interval '0' ELSE interval '10 seconds' END AS s1) x
    ), parts AS (
        SELECT c.path, c.method, c.hits, c.sum_elapsed, c.max_elapsed
        FROM collection_http_minute c, b
        WHERE c.minute >= b.m1 AND c.minute < b.m2
        UNION ALL
        SELECT c.path, c.method, c.hits, c.sum_elapsed, c.max_elapsed
        FROM collection_http_10s c, b
        -- Two ranges of the key: [s1, m1) and [m2, s2), or [s1, s2) when
        -- no minute is whole (m1 = m2).
        WHERE (c.bin >= b.s1 AND c.bin < least(b.m1, b.s2))
           OR (c.bin >= greatest(b.m2, b.s1) AND c.bin < b.s2)
        UNION ALL
        -- Each field of the context read once per row (OFFSET 0 keeps the
        -- planner from copying the expressions into each aggregate).
        SELECT r.path, r.method, r.hits, r.elapsed * r.hits, r.longest
        FROM (
            SELECT f.path, m.method, m.elapsed, f.hits, f.longest
            FROM b, measurements m, collection_http_fields(m.context, m.name, m.elapsed) f
            WHERE m.app = 'telemetry'
              AND ((m.started_at >= since AND m.started_at < b.s1 AND m.started_at <= until)
                OR (m.started_at >= b.s2 AND m.started_at <= until))
            OFFSET 0
        ) r
    )
    SELECT g.path, g.method, g.hits, g.avg_elapsed, g.max_elapsed
    FROM (
        SELECT p.path, p.method, sum(p.hits)::bigint AS hits,
               (sum(p.sum_elapsed) / sum(p.hits))::float8 AS avg_elapsed,
               max(p.max_elapsed)::float8 AS max_elapsed
        FROM parts p
        GROUP BY 1, 2
    ) g
    ORDER BY g.path, g.method
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION collection_http(since timestamptz, until timestamptz)
RETURNS TABLE (path text, method text, hits bigint, avg_elapsed float8, max_elapsed float8)
LANGUAGE sql STABLE PARALLEL SAFE
SET enable_sort = off
SET jit = off
AS $$
    WITH b AS (
        -- m1: since rounded up to the minute; m2: until rounded down, or m1
        -- when the window holds no whole minute.
        SELECT x.m1, greatest(x.m1, date_trunc('minute', until, 'UTC')) AS m2
        FROM (SELECT date_trunc('minute', since, 'UTC')
                     + CASE WHEN date_trunc('minute', since, 'UTC') = since THEN interval '0' ELSE interval '1 minute' END AS m1) x
    ), parts AS (
        SELECT c.path, c.method, c.hits, c.sum_elapsed, c.max_elapsed
        FROM collection_http_minute c, b
        WHERE c.minute >= b.m1 AND c.minute < b.m2
        UNION ALL
        -- Each field of the context read once per row (OFFSET 0 keeps the
        -- planner from copying the expressions into each aggregate).
        SELECT r.path, r.method, r.hits, r.elapsed * r.hits, r.longest
        FROM (
            SELECT f.path, m.method, m.elapsed, f.hits, f.longest
            FROM b, measurements m, collection_http_fields(m.context, m.name, m.elapsed) f
            WHERE m.app = 'telemetry'
              AND ((m.started_at >= since AND m.started_at < b.m1 AND m.started_at <= until)
                OR (m.started_at >= b.m2 AND m.started_at <= until))
            OFFSET 0
        ) r
    )
    SELECT g.path, g.method, g.hits, g.avg_elapsed, g.max_elapsed
    FROM (
        SELECT p.path, p.method, sum(p.hits)::bigint AS hits,
               (sum(p.sum_elapsed) / sum(p.hits))::float8 AS avg_elapsed,
               max(p.max_elapsed)::float8 AS max_elapsed
        FROM parts p
        GROUP BY 1, 2
    ) g
    ORDER BY g.path, g.method
$$;
-- +goose StatementEnd
COMMENT ON COLUMN collection_http_minute.method IS NULL;
DROP TABLE IF EXISTS collection_http_10s;
