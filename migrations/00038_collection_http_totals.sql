-- A metrics collection's httpUrls kept as running totals per (collection,
-- path, method), added to by the statement that writes the service's own
-- requests, so that reading a collection costs its answer's entries and no
-- longer the length of its window.
--
-- Until now a read summed the window's minute cells, bins and edge rows
-- (collection_http, migrations 00020, 00031, 00037): minutes x paths
-- cells, growing for as long as the collection stayed open. In the
-- 30-minute mixed load (docs/performance-mixed.md) a read cost 82 ms of CPU
-- at the end, 42 % of the load's, and the rate fell from 786 to about 300
-- requests/s; a collection left open for a day would read about 290,000
-- cells a read.
--
-- collection_http_totals holds, for each collection, the sums of its
-- window's requests (started at or after its started_at). The write
-- (telemetry_add_collection_http_cells, in the transaction of the rows)
-- adds each request to the totals of every collection whose window it
-- started in. A create, clear or delete takes the collections table in
-- SHARE ROW EXCLUSIVE mode (LockCollections) and the write takes it in ROW
-- EXCLUSIVE mode before its statement, so the two never overlap: a write
-- either committed before the create or clear (whose window it then
-- entered through the cells, read by collection_http_sums when the
-- totals are started) or sees the collection's new window. A rebuild of
-- the rollups (RebuildRollup) recomputes every collection's totals from
-- the cells and rows. The totals outlive the rows (MEASUREMENTS_RETENTION)
-- and the cells: they are a collection's, deleted with it.
--
-- collection_http (the figures of any window, from the cells) stays, now
-- over collection_http_sums, the same reads returning sums: the totals are
-- started from it without dividing and multiplying back.

-- +goose Up
CREATE TABLE collection_http_totals (
    collection_id bigint           NOT NULL,
    path          text             NOT NULL,
    method        text             NOT NULL,
    hits          bigint           NOT NULL,
    sum_elapsed   double precision NOT NULL,
    max_elapsed   double precision NOT NULL,
    CONSTRAINT collection_http_totals_pkey PRIMARY KEY (collection_id, path, method),
    CONSTRAINT collection_http_totals_collection_fkey FOREIGN KEY (collection_id) REFERENCES collections (id) ON DELETE CASCADE,
    CONSTRAINT collection_http_totals_hits_positive CHECK (hits > 0)
);

COMMENT ON TABLE collection_http_totals IS
    'A metrics collection''s httpUrls as running totals: the service''s own requests (measurements of app ''telemetry'') started in the collection''s window, per (collection, URL path, method), added to in the transaction that writes the rows; recomputed from the cells at each clear and rebuild; deleted with the collection.';
COMMENT ON COLUMN collection_http_totals.collection_id IS 'The collection (collections.id).';
COMMENT ON COLUMN collection_http_totals.path IS 'The request path without its query (context path, else the url before ?, else name).';
COMMENT ON COLUMN collection_http_totals.method IS 'The request''s HTTP method.';
COMMENT ON COLUMN collection_http_totals.hits IS 'Requests, a self-profiling summary row counting as its context.count.';
COMMENT ON COLUMN collection_http_totals.sum_elapsed IS 'Sum of the requests'' elapsed seconds.';
COMMENT ON COLUMN collection_http_totals.max_elapsed IS 'The longest request, seconds.';

-- +goose StatementBegin
CREATE FUNCTION collection_http_sums(since timestamptz, until timestamptz)
RETURNS TABLE (path text, method text, hits bigint, sum_elapsed float8, max_elapsed float8)
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
    SELECT p.path, p.method, sum(p.hits)::bigint, sum(p.sum_elapsed)::float8, max(p.max_elapsed)::float8
    FROM parts p
    GROUP BY 1, 2
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION collection_http(since timestamptz, until timestamptz)
RETURNS TABLE (path text, method text, hits bigint, avg_elapsed float8, max_elapsed float8)
LANGUAGE sql STABLE PARALLEL SAFE
SET enable_sort = off
SET jit = off
AS $$
    SELECT s.path, s.method, s.hits, (s.sum_elapsed / s.hits)::float8, s.max_elapsed
    FROM collection_http_sums(since, until) s
    ORDER BY s.path, s.method
$$;
-- +goose StatementEnd

INSERT INTO collection_http_totals (collection_id, path, method, hits, sum_elapsed, max_elapsed)
SELECT c.id, s.path, s.method, s.hits, s.sum_elapsed, s.max_elapsed
FROM collections c, collection_http_sums(c.started_at, clock_timestamp() + interval '100 years') s;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION telemetry_add_collection_http_cells(timestamptz[], text[], text[], float8[], jsonb[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    -- Before the statement, so that its snapshot holds every collection
    -- created or cleared before this transaction got the lock, and none
    -- can be created, cleared or deleted until it commits.
    LOCK TABLE collections IN ROW EXCLUSIVE MODE;
    WITH t AS MATERIALIZED (
        SELECT t.started_at, f.path, t.method, f.hits, t.elapsed * f.hits AS sum_elapsed, f.longest
        FROM ROWS FROM (
            unnest($1::timestamptz[]),
            unnest($2::text[]),
            unnest($3::text[]),
            unnest($4::float8[]),
            unnest($5::jsonb[])
        ) AS t (started_at, name, method, elapsed, context),
        LATERAL collection_http_fields(t.context, t.name, t.elapsed) AS f (path, hits, longest)
    ), minutes AS (
        INSERT INTO collection_http_minute AS c (minute, path, method, hits, sum_elapsed, max_elapsed)
        SELECT date_trunc('minute', t.started_at, 'UTC'), t.path, t.method, sum(t.hits), sum(t.sum_elapsed), max(t.longest)
        FROM t
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (minute, path, method) DO UPDATE
        SET hits = c.hits + excluded.hits, sum_elapsed = c.sum_elapsed + excluded.sum_elapsed,
            max_elapsed = greatest(c.max_elapsed, excluded.max_elapsed)
    ), totals AS (
        -- Each request into every collection whose window it started in.
        INSERT INTO collection_http_totals AS c (collection_id, path, method, hits, sum_elapsed, max_elapsed)
        SELECT w.id, t.path, t.method, sum(t.hits), sum(t.sum_elapsed), max(t.longest)
        FROM t JOIN collections w ON t.started_at >= w.started_at
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (collection_id, path, method) DO UPDATE
        SET hits = c.hits + excluded.hits, sum_elapsed = c.sum_elapsed + excluded.sum_elapsed,
            max_elapsed = greatest(c.max_elapsed, excluded.max_elapsed)
    )
    INSERT INTO collection_http_10s AS c (bin, path, method, hits, sum_elapsed, max_elapsed)
    SELECT date_bin('10 seconds', t.started_at, '1970-01-01 00:00:00+00'), t.path, t.method, sum(t.hits), sum(t.sum_elapsed), max(t.longest)
    FROM t
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (bin, path, method) DO UPDATE
    SET hits = c.hits + excluded.hits, sum_elapsed = c.sum_elapsed + excluded.sum_elapsed,
        max_elapsed = greatest(c.max_elapsed, excluded.max_elapsed);
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION telemetry_add_collection_http_cells(timestamptz[], text[], text[], float8[], jsonb[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    WITH t AS MATERIALIZED (
        SELECT t.started_at, f.path, t.method, f.hits, t.elapsed * f.hits AS sum_elapsed, f.longest
        FROM ROWS FROM (
            unnest($1::timestamptz[]),
            unnest($2::text[]),
            unnest($3::text[]),
            unnest($4::float8[]),
            unnest($5::jsonb[])
        ) AS t (started_at, name, method, elapsed, context),
        LATERAL collection_http_fields(t.context, t.name, t.elapsed) AS f (path, hits, longest)
    ), minutes AS (
        INSERT INTO collection_http_minute AS c (minute, path, method, hits, sum_elapsed, max_elapsed)
        SELECT date_trunc('minute', t.started_at, 'UTC'), t.path, t.method, sum(t.hits), sum(t.sum_elapsed), max(t.longest)
        FROM t
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (minute, path, method) DO UPDATE
        SET hits = c.hits + excluded.hits, sum_elapsed = c.sum_elapsed + excluded.sum_elapsed,
            max_elapsed = greatest(c.max_elapsed, excluded.max_elapsed)
    )
    INSERT INTO collection_http_10s AS c (bin, path, method, hits, sum_elapsed, max_elapsed)
    SELECT date_bin('10 seconds', t.started_at, '1970-01-01 00:00:00+00'), t.path, t.method, sum(t.hits), sum(t.sum_elapsed), max(t.longest)
    FROM t
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (bin, path, method) DO UPDATE
    SET hits = c.hits + excluded.hits, sum_elapsed = c.sum_elapsed + excluded.sum_elapsed,
        max_elapsed = greatest(c.max_elapsed, excluded.max_elapsed);
END
$$;
-- +goose StatementEnd
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
DROP FUNCTION collection_http_sums(timestamptz, timestamptz);
DROP TABLE collection_http_totals;
