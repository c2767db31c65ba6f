-- collection_http (migration 00031) takes its edge rows, the partial
-- 10-second bins at the two ends of a window, from measurements through
-- measurements_start_idx: two short ranges of started_at. Their bounds were
-- columns of the one-row CTE b, so in the function's generic plan (a SQL
-- function's statements are planned with their parameters unknown) each
-- bound was a join clause of unknown selectivity, a third of the table per
-- side. Once measurements grew large enough, an ANALYZE made a parallel
-- sequential scan filtered on app = 'telemetry', joined to the bounds
-- afterwards, the cheaper plan on paper: 7-10 s a read where the index
-- ranges take milliseconds, the collapse of the mixed load after 28 minutes
-- (docs/performance-mixed.md, "Thirty minutes of the mix").
--
-- Each range is now a branch of its own whose bounds are scalar subqueries
-- of b: parameters of the scan, which the planner prices as a narrow range
-- of the index (its default for a range between two unknown values)
-- whatever the statistics say. The minute cells and the 10-second bins are
-- read the same way. Same answers: the ranges are those of 00031.

-- +goose Up
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
        -- minute / bin. When m1 < m2, [m1, m2) lies inside [s1, s2), and
        -- the bins outside the whole minutes are [s1, e1) and [e2, s2)
        -- ([s1, s2) when no minute is whole: then e1 = e2 = m1).
        SELECT y.m1, y.m2, y.s1, y.s2, least(y.m1, y.s2) AS e1, greatest(y.m2, y.s1) AS e2
        FROM (
            SELECT x.m1, greatest(x.m1, date_trunc('minute', until, 'UTC')) AS m2,
                   x.s1, greatest(x.s1, date_bin('10 seconds', until, '1970-01-01 00:00:00+00')) AS s2
            FROM (SELECT date_trunc('minute', since, 'UTC')
                         + CASE WHEN date_trunc('minute', since, 'UTC') = since THEN interval '0' ELSE interval '1 minute' END AS m1,
                         date_bin('10 seconds', since, '1970-01-01 00:00:00+00')
                         + CASE WHEN date_bin('10 seconds', since, '1970-01-01 00:00:00+00') = since
                                THEN interval '0' ELSE interval '10 seconds' END AS s1) x
        ) y
    ), parts AS (
        -- Every bound is a scalar subquery (a parameter of the scan, not a
        -- join clause): see the head of migration 00037.
        SELECT c.path, c.method, c.hits, c.sum_elapsed, c.max_elapsed
        FROM collection_http_minute c
        WHERE c.minute >= (SELECT b.m1 FROM b) AND c.minute < (SELECT b.m2 FROM b)
        UNION ALL
        SELECT c.path, c.method, c.hits, c.sum_elapsed, c.max_elapsed
        FROM collection_http_10s c
        WHERE c.bin >= (SELECT b.s1 FROM b) AND c.bin < (SELECT b.e1 FROM b)
        UNION ALL
        SELECT c.path, c.method, c.hits, c.sum_elapsed, c.max_elapsed
        FROM collection_http_10s c
        WHERE c.bin >= (SELECT b.e2 FROM b) AND c.bin < (SELECT b.s2 FROM b)
        UNION ALL
        -- Each field of the context read once per row (OFFSET 0 keeps the
        -- planner from copying the expressions into each aggregate).
        SELECT r.path, r.method, r.hits, r.elapsed * r.hits, r.longest
        FROM (
            SELECT f.path, e.method, e.elapsed, f.hits, f.longest
            FROM (
                -- [since, s1), and [s2, until]: under 10 s each.
                SELECT m.context, m.name, m.method, m.elapsed
                FROM measurements m
                WHERE m.app = 'telemetry'
                  AND m.started_at >= since AND m.started_at < (SELECT b.s1 FROM b) AND m.started_at <= until
                UNION ALL
                SELECT m.context, m.name, m.method, m.elapsed
                FROM measurements m
                WHERE m.app = 'telemetry'
                  AND m.started_at >= (SELECT b.s2 FROM b) AND m.started_at <= until
            ) e, collection_http_fields(e.context, e.name, e.elapsed) f
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
