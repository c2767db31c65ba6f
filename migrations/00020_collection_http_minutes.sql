-- collection_http_minute: the service's own requests (the measurements of
-- app 'telemetry', self-profiling's) per (minute of started_at, URL path,
-- method), so that a metrics collection's httpUrls read a window's whole
-- minutes from these cells and only its first and last partial minutes from
-- the rows. Until now collection_http (migration 00015) read every request
-- of the window: a collection's figures cost grew with the traffic since it
-- was opened (92-116 ms of PostgreSQL after 5 minutes of the mixed load,
-- a quarter of that load's CPU). Written in the same transaction as the
-- rows, after the other rollups (queries/measurements.sql); kept as long as
-- they are (ROLLUPS_RETENTION). Filled here from the rows that exist.
--
-- One request's fields, the same in the writer, the fill and the reader:
-- path = coalesce(context->>'path', the url without its query, name); a
-- self-profiling summary row (internal/selfprofile/summary.go) stands for
-- context.count requests (a whole number; anything else counts as one),
-- elapsed is their mean and context.elapsedMax (a number; elapsed
-- otherwise) their longest. Until now a count or elapsedMax that was not a
-- number made the collection's read fail.

-- +goose Up
CREATE TABLE collection_http_minute (
    minute      timestamptz      NOT NULL,
    path        text             NOT NULL,
    method      text             NOT NULL,
    hits        bigint           NOT NULL,
    sum_elapsed double precision NOT NULL,
    max_elapsed double precision NOT NULL,
    CONSTRAINT collection_http_minute_pkey PRIMARY KEY (minute, path, method),
    CONSTRAINT collection_http_minute_aligned CHECK (extract(second FROM minute) = 0),
    CONSTRAINT collection_http_minute_hits_positive CHECK (hits > 0)
);

COMMENT ON TABLE collection_http_minute IS
    'The service''s own requests (measurements of app ''telemetry'') per (minute of started_at, URL path, method), written in the same transaction as the rows: a metrics collection reads its window''s whole minutes from these cells.';
COMMENT ON COLUMN collection_http_minute.minute IS 'started_at rounded down to the minute (UTC).';
COMMENT ON COLUMN collection_http_minute.path IS 'The request path without its query (context path, else the url before ?, else name).';
COMMENT ON COLUMN collection_http_minute.hits IS 'Requests, a self-profiling summary row counting as its context.count.';
COMMENT ON COLUMN collection_http_minute.sum_elapsed IS 'Sum of the requests'' elapsed seconds.';
COMMENT ON COLUMN collection_http_minute.max_elapsed IS 'The longest request, seconds.';

-- A set-returning SQL function, so that the planner inlines it into the
-- queries that use it (in FROM) instead of calling it for every row.
-- +goose StatementBegin
CREATE FUNCTION collection_http_fields(context jsonb, name text, elapsed float8)
RETURNS TABLE (path text, hits bigint, longest float8)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(context->>'path', split_part(context->>'url', '?', 1), name),
           -- Nested CASEs: each cast only after its check.
           CASE WHEN jsonb_typeof(context->'count') = 'number'
                THEN CASE WHEN (context->>'count') ~ '^[0-9]{1,18}$' THEN greatest((context->>'count')::bigint, 1) ELSE 1 END
                ELSE 1 END,
           CASE WHEN jsonb_typeof(context->'elapsedMax') = 'number'
                THEN CASE WHEN abs((context->'elapsedMax')::numeric) < 1e300 THEN (context->'elapsedMax')::numeric::float8 ELSE elapsed END
                ELSE elapsed END
$$;
-- +goose StatementEnd

INSERT INTO collection_http_minute (minute, path, method, hits, sum_elapsed, max_elapsed)
SELECT date_trunc('minute', m.started_at, 'UTC'), f.path, m.method, sum(f.hits), sum(m.elapsed * f.hits), max(f.longest)
FROM measurements m, collection_http_fields(m.context, m.name, m.elapsed) f
WHERE m.app = 'telemetry'
GROUP BY 1, 2, 3;

-- The figures of [since, until]: the whole minutes from the cells, the
-- partial ones (at most a minute at each end) from the rows.
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

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION collection_http(since timestamptz, until timestamptz)
RETURNS TABLE (path text, method text, hits bigint, avg_elapsed float8, max_elapsed float8)
LANGUAGE sql STABLE PARALLEL SAFE
SET enable_sort = off
SET jit = off
AS $$
    SELECT g.path, g.method, g.hits, g.avg_elapsed, g.max_elapsed
    FROM (
        SELECT r.path, r.method,
               sum(r.n)::bigint AS hits,
               (sum(r.elapsed * r.n) / sum(r.n))::float8 AS avg_elapsed,
               max(r.longest)::float8 AS max_elapsed
        FROM (
            SELECT coalesce(m.context->>'path', split_part(m.context->>'url', '?', 1), m.name)::text AS path,
                   m.method, m.elapsed,
                   coalesce((m.context->>'count')::bigint, 1) AS n,
                   coalesce((m.context->>'elapsedMax')::float8, m.elapsed) AS longest
            FROM measurements m
            WHERE m.app = 'telemetry'
              AND m.started_at >= since AND m.started_at <= until
            OFFSET 0
        ) r
        GROUP BY 1, 2
    ) g
    ORDER BY g.path, g.method
$$;
-- +goose StatementEnd
DROP FUNCTION IF EXISTS collection_http_fields(jsonb, text, float8);
DROP TABLE IF EXISTS collection_http_minute;
