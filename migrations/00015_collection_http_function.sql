-- The figures per URL of a metrics collection (queries/collections.sql,
-- CollectionHTTP) as a function, so that its plan can be fixed: the window
-- is recent, often past the planner's statistics of measurements.started_at,
-- so the planner expects a row or two and groups by sorting every request of
-- the window by its path (text from the context JSON). Hashing them instead
-- and sorting only the groups is about 3 times cheaper with 20,000 requests
-- in the window (docs/performance-mixed.md). A function with its own
-- enable_sort setting is planned apart (it is never inlined), and the
-- setting applies to nothing else. jit is off with it: the penalty cost
-- enable_sort adds to the final sort of the groups would otherwise make
-- every call pay for compiling the query (hundreds of ms).
-- A self-profiling summary row (internal/selfprofile/summary.go) stands for
-- context.count requests: elapsed is their mean, context.elapsedMax their
-- longest.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION collection_http(since timestamptz, until timestamptz)
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
            -- Each field of the context read once per row (OFFSET 0 keeps
            -- the planner from copying the expressions into each aggregate).
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

-- +goose Down
DROP FUNCTION collection_http(timestamptz, timestamptz);
