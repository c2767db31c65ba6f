-- name: UpsertFlows :exec
-- Adds a batch to the hourly totals and to their rollup flows_hourly
-- (migration 00014), in one statement. The caller sums the batch first
-- (postgres.FlowUpsert): one element per key (ON CONFLICT cannot touch one
-- row twice in a statement), and the rollup's byte sums per dimension, hour
-- and key (@r_*; a key may come more than once when its sum passes 64 bits,
-- since the rollup's bytes are numeric). Rows are written in key order,
-- flows first and then flows_hourly, so that concurrent batches lock the
-- same rows in the same order and cannot deadlock each other (the batch
-- comes sorted: the sorts find it so). The rollup gets the batch's bytes
-- and one more row for each flows row the upsert inserted (xmax = 0: an
-- inserted row, not an updated one). Summing the batch and its rollup here
-- was a third of a 1,000-key round (docs/flows-storage.md).
WITH up AS (
    INSERT INTO flows AS f (hour, src_app, dest_app, vpc_id, bytes_tx, bytes_rx)
    SELECT t.hour, t.src_app, t.dest_app, t.vpc_id, t.bytes_tx, t.bytes_rx
    FROM ROWS FROM (
        unnest(@hours::timestamptz[]),
        unnest(@src_apps::text[]),
        unnest(@dest_apps::text[]),
        unnest(@vpc_ids::text[]),
        unnest(@bytes_tx::bigint[]),
        unnest(@bytes_rx::bigint[])
    ) AS t (hour, src_app, dest_app, vpc_id, bytes_tx, bytes_rx)
    ORDER BY t.hour, t.src_app, t.dest_app, t.vpc_id
    ON CONFLICT (hour, src_app, dest_app, vpc_id) DO UPDATE
    SET bytes_tx = f.bytes_tx + excluded.bytes_tx,
        bytes_rx = f.bytes_rx + excluded.bytes_rx
    RETURNING f.hour, f.src_app, f.dest_app, f.vpc_id, (f.xmax = 0) AS inserted
), sums AS (
    SELECT s.dim, s.hour, s.key, s.bytes_tx, s.bytes_rx
    FROM ROWS FROM (
        unnest(@r_dims::text[]),
        unnest(@r_hours::timestamptz[]),
        unnest(@r_keys::text[]),
        unnest(@r_bytes_tx::bigint[]),
        unnest(@r_bytes_rx::bigint[])
    ) AS s (dim, hour, key, bytes_tx, bytes_rx)
)
INSERT INTO flows_hourly AS r (dim, hour, key, flows, bytes_tx, bytes_rx)
SELECT x.dim, x.hour, x.key, sum(x.flows), sum(x.bytes_tx), sum(x.bytes_rx)
FROM (
    SELECT s.dim, s.hour, s.key, 0 AS flows, s.bytes_tx, s.bytes_rx
    FROM sums s
    UNION ALL
    SELECT d.dim, u.hour, d.key, 1, 0, 0
    FROM up u
    CROSS JOIN LATERAL (VALUES ('all', ''), ('src_app', u.src_app), ('dest_app', u.dest_app), ('vpc_id', u.vpc_id)) AS d (dim, key)
    WHERE u.inserted
) AS x
GROUP BY x.dim, x.hour, x.key
ORDER BY x.dim, x.hour, x.key
ON CONFLICT (dim, hour, key) DO UPDATE
SET flows = r.flows + excluded.flows,
    bytes_tx = r.bytes_tx + excluded.bytes_tx,
    bytes_rx = r.bytes_rx + excluded.bytes_rx;

-- The flows lists: one page of the hourly totals of [@from_hour, @to_hour)
-- matching the optional filters, one query per order so that each is a
-- plain ORDER BY ... LIMIT the planner can serve from an index (key order)
-- or with a bounded top-N sort (bytes order). Each row carries the exact
-- total, read in the page's statement (so in its snapshot) by the CTE
-- total: from flows_hourly when at most one filter is given (@rollup_dim
-- the filtered column or 'all', @rollup_key its value), else CountFlows's
-- count; '' as @rollup_dim picks the count. Only the CASE's chosen branch
-- runs. The total is an init plan, computed once, and the page's scan is
-- gated on @row_offset < total: a page past the last reads no row (the
-- caller asks CountFlows or CountFlowsRollup for the total then). A window
-- count(*) OVER () here made every page sort the whole range
-- (BenchmarkFlowsRange10M, docs/flows-storage.md).
-- name: ListFlowsByKeyAsc :many
WITH total AS (
    SELECT CASE WHEN @rollup_dim::text <> '' THEN (
               SELECT coalesce(sum(r.flows), 0)::bigint FROM flows_hourly r
               WHERE r.dim = @rollup_dim::text AND r.hour >= @from_hour::timestamptz AND r.hour < @to_hour::timestamptz
                 AND r.key = @rollup_key::text)
           ELSE (
               SELECT count(*) FROM flows c
               WHERE c.hour >= @from_hour::timestamptz AND c.hour < @to_hour::timestamptz
                 AND (sqlc.narg('src_app')::text IS NULL OR c.src_app = sqlc.narg('src_app')::text)
                 AND (sqlc.narg('dest_app')::text IS NULL OR c.dest_app = sqlc.narg('dest_app')::text)
                 AND (sqlc.narg('vpc_id')::text IS NULL OR c.vpc_id = sqlc.narg('vpc_id')::text))
           END AS n
)
SELECT hour, src_app, dest_app, vpc_id, bytes_tx, bytes_rx, (SELECT n FROM total)::bigint AS total
FROM flows
WHERE hour >= @from_hour::timestamptz AND hour < @to_hour::timestamptz
  AND (sqlc.narg('src_app')::text IS NULL OR src_app = sqlc.narg('src_app')::text)
  AND (sqlc.narg('dest_app')::text IS NULL OR dest_app = sqlc.narg('dest_app')::text)
  AND (sqlc.narg('vpc_id')::text IS NULL OR vpc_id = sqlc.narg('vpc_id')::text)
  AND @row_offset::bigint < (SELECT n FROM total)
ORDER BY hour, src_app, dest_app, vpc_id
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListFlowsByKeyDesc :many
WITH total AS (
    SELECT CASE WHEN @rollup_dim::text <> '' THEN (
               SELECT coalesce(sum(r.flows), 0)::bigint FROM flows_hourly r
               WHERE r.dim = @rollup_dim::text AND r.hour >= @from_hour::timestamptz AND r.hour < @to_hour::timestamptz
                 AND r.key = @rollup_key::text)
           ELSE (
               SELECT count(*) FROM flows c
               WHERE c.hour >= @from_hour::timestamptz AND c.hour < @to_hour::timestamptz
                 AND (sqlc.narg('src_app')::text IS NULL OR c.src_app = sqlc.narg('src_app')::text)
                 AND (sqlc.narg('dest_app')::text IS NULL OR c.dest_app = sqlc.narg('dest_app')::text)
                 AND (sqlc.narg('vpc_id')::text IS NULL OR c.vpc_id = sqlc.narg('vpc_id')::text))
           END AS n
)
SELECT hour, src_app, dest_app, vpc_id, bytes_tx, bytes_rx, (SELECT n FROM total)::bigint AS total
FROM flows
WHERE hour >= @from_hour::timestamptz AND hour < @to_hour::timestamptz
  AND (sqlc.narg('src_app')::text IS NULL OR src_app = sqlc.narg('src_app')::text)
  AND (sqlc.narg('dest_app')::text IS NULL OR dest_app = sqlc.narg('dest_app')::text)
  AND (sqlc.narg('vpc_id')::text IS NULL OR vpc_id = sqlc.narg('vpc_id')::text)
  AND @row_offset::bigint < (SELECT n FROM total)
ORDER BY hour DESC, src_app DESC, dest_app DESC, vpc_id DESC
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListFlowsByBytesDesc :many
-- Top talkers: ordered by bytes_tx + bytes_rx, ties by key. The sum of
-- two large counters can pass 64 bits, so the order is that of two bigint
-- keys, h and l, with bytes_tx + bytes_rx = 2h + l exactly: h adds the two
-- halves and the carry of their low bits, l is 1 when exactly one of them
-- is odd. Neither can overflow (bytes are >= 0). A numeric sum did the same
-- at twice the cost: at 10 M rows the top talkers of a day sort 60,000
-- rows (migration 00032).
WITH total AS (
    SELECT CASE WHEN @rollup_dim::text <> '' THEN (
               SELECT coalesce(sum(r.flows), 0)::bigint FROM flows_hourly r
               WHERE r.dim = @rollup_dim::text AND r.hour >= @from_hour::timestamptz AND r.hour < @to_hour::timestamptz
                 AND r.key = @rollup_key::text)
           ELSE (
               SELECT count(*) FROM flows c
               WHERE c.hour >= @from_hour::timestamptz AND c.hour < @to_hour::timestamptz
                 AND (sqlc.narg('src_app')::text IS NULL OR c.src_app = sqlc.narg('src_app')::text)
                 AND (sqlc.narg('dest_app')::text IS NULL OR c.dest_app = sqlc.narg('dest_app')::text)
                 AND (sqlc.narg('vpc_id')::text IS NULL OR c.vpc_id = sqlc.narg('vpc_id')::text))
           END AS n
)
SELECT hour, src_app, dest_app, vpc_id, bytes_tx, bytes_rx, (SELECT n FROM total)::bigint AS total
FROM flows
WHERE hour >= @from_hour::timestamptz AND hour < @to_hour::timestamptz
  AND (sqlc.narg('src_app')::text IS NULL OR src_app = sqlc.narg('src_app')::text)
  AND (sqlc.narg('dest_app')::text IS NULL OR dest_app = sqlc.narg('dest_app')::text)
  AND (sqlc.narg('vpc_id')::text IS NULL OR vpc_id = sqlc.narg('vpc_id')::text)
  AND @row_offset::bigint < (SELECT n FROM total)
ORDER BY (bytes_tx >> 1) + (bytes_rx >> 1) + (bytes_tx & bytes_rx & 1) DESC, (bytes_tx # bytes_rx) & 1 DESC, hour, src_app, dest_app, vpc_id
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListFlowsByBytesAsc :many
WITH total AS (
    SELECT CASE WHEN @rollup_dim::text <> '' THEN (
               SELECT coalesce(sum(r.flows), 0)::bigint FROM flows_hourly r
               WHERE r.dim = @rollup_dim::text AND r.hour >= @from_hour::timestamptz AND r.hour < @to_hour::timestamptz
                 AND r.key = @rollup_key::text)
           ELSE (
               SELECT count(*) FROM flows c
               WHERE c.hour >= @from_hour::timestamptz AND c.hour < @to_hour::timestamptz
                 AND (sqlc.narg('src_app')::text IS NULL OR c.src_app = sqlc.narg('src_app')::text)
                 AND (sqlc.narg('dest_app')::text IS NULL OR c.dest_app = sqlc.narg('dest_app')::text)
                 AND (sqlc.narg('vpc_id')::text IS NULL OR c.vpc_id = sqlc.narg('vpc_id')::text))
           END AS n
)
SELECT hour, src_app, dest_app, vpc_id, bytes_tx, bytes_rx, (SELECT n FROM total)::bigint AS total
FROM flows
WHERE hour >= @from_hour::timestamptz AND hour < @to_hour::timestamptz
  AND (sqlc.narg('src_app')::text IS NULL OR src_app = sqlc.narg('src_app')::text)
  AND (sqlc.narg('dest_app')::text IS NULL OR dest_app = sqlc.narg('dest_app')::text)
  AND (sqlc.narg('vpc_id')::text IS NULL OR vpc_id = sqlc.narg('vpc_id')::text)
  AND @row_offset::bigint < (SELECT n FROM total)
ORDER BY (bytes_tx >> 1) + (bytes_rx >> 1) + (bytes_tx & bytes_rx & 1), (bytes_tx # bytes_rx) & 1, hour, src_app, dest_app, vpc_id
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: CountFlows :one
-- The rows the flows lists' filter matches.
SELECT count(*) FROM flows
WHERE hour >= @from_hour::timestamptz AND hour < @to_hour::timestamptz
  AND (sqlc.narg('src_app')::text IS NULL OR src_app = sqlc.narg('src_app')::text)
  AND (sqlc.narg('dest_app')::text IS NULL OR dest_app = sqlc.narg('dest_app')::text)
  AND (sqlc.narg('vpc_id')::text IS NULL OR vpc_id = sqlc.narg('vpc_id')::text);

-- name: SummarizeFlows :many
-- Totals per @by (src_app, dest_app or vpc_id; checked by the caller) over
-- the filter's rows, one page, largest bytes_tx + bytes_rx first, ties by
-- key; total is the number of keys. Sums are numeric: a total past 64 bits
-- fails the cast (22003) instead of wrapping.
WITH totals AS (
    SELECT CASE @by::text WHEN 'src_app' THEN src_app WHEN 'dest_app' THEN dest_app ELSE vpc_id END AS key,
           sum(bytes_tx) AS tx, sum(bytes_rx) AS rx
    FROM flows
    WHERE hour >= @from_hour::timestamptz AND hour < @to_hour::timestamptz
      AND (sqlc.narg('src_app')::text IS NULL OR src_app = sqlc.narg('src_app')::text)
      AND (sqlc.narg('dest_app')::text IS NULL OR dest_app = sqlc.narg('dest_app')::text)
      AND (sqlc.narg('vpc_id')::text IS NULL OR vpc_id = sqlc.narg('vpc_id')::text)
    GROUP BY 1
)
SELECT t.key::text AS key, t.tx::bigint AS bytes_tx, t.rx::bigint AS bytes_rx, (t.tx + t.rx)::bigint AS bytes,
       count(*) OVER () AS total
FROM totals t
ORDER BY t.tx + t.rx DESC, t.key
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: CountFlowKeys :one
-- The keys SummarizeFlows's filter has (for a page past the last).
SELECT count(DISTINCT CASE @by::text WHEN 'src_app' THEN src_app WHEN 'dest_app' THEN dest_app ELSE vpc_id END)
FROM flows
WHERE hour >= @from_hour::timestamptz AND hour < @to_hour::timestamptz
  AND (sqlc.narg('src_app')::text IS NULL OR src_app = sqlc.narg('src_app')::text)
  AND (sqlc.narg('dest_app')::text IS NULL OR dest_app = sqlc.narg('dest_app')::text)
  AND (sqlc.narg('vpc_id')::text IS NULL OR vpc_id = sqlc.narg('vpc_id')::text);

-- name: ListFlowsTopByHourDesc :many
-- Top talkers of a range without a src_app or dest_app filter, in
-- ListFlowsByBytesDesc's order: the range's first offset + limit rows are
-- among the first offset + limit rows (@per_hour) of each of its hours
-- (@first_hour to @last_hour, in hours since the epoch), so each hour's
-- rows, read through the primary key, go through a top-N sort of that
-- size, and the hours' winners through a second one. The hours are an
-- integer series, whose row count the planner knows: a timestamptz series
-- is estimated at 1,000 rows, which priced the query past
-- jit_above_cost and spent 7 ms compiling it (EXPLAIN ANALYZE in
-- BenchmarkFlowsRange10M). Until migration 00032 flows_bytes_idx gave each
-- hour's rows in this order.
WITH total AS (
    SELECT CASE WHEN @rollup_dim::text <> '' THEN (
               SELECT coalesce(sum(r.flows), 0)::bigint FROM flows_hourly r
               WHERE r.dim = @rollup_dim::text AND r.hour >= @from_hour::timestamptz AND r.hour < @to_hour::timestamptz
                 AND r.key = @rollup_key::text)
           ELSE (
               SELECT count(*) FROM flows c
               WHERE c.hour >= @from_hour::timestamptz AND c.hour < @to_hour::timestamptz
                 AND (sqlc.narg('src_app')::text IS NULL OR c.src_app = sqlc.narg('src_app')::text)
                 AND (sqlc.narg('dest_app')::text IS NULL OR c.dest_app = sqlc.narg('dest_app')::text)
                 AND (sqlc.narg('vpc_id')::text IS NULL OR c.vpc_id = sqlc.narg('vpc_id')::text))
           END AS n
)
SELECT f.hour, f.src_app, f.dest_app, f.vpc_id, f.bytes_tx, f.bytes_rx, (SELECT n FROM total)::bigint AS total
FROM generate_series(@first_hour::bigint, @last_hour::bigint) AS h (n)
CROSS JOIN LATERAL (
    SELECT x.hour, x.src_app, x.dest_app, x.vpc_id, x.bytes_tx, x.bytes_rx
    FROM flows x
    WHERE x.hour = to_timestamp(h.n * 3600)
      AND (sqlc.narg('src_app')::text IS NULL OR x.src_app = sqlc.narg('src_app')::text)
      AND (sqlc.narg('dest_app')::text IS NULL OR x.dest_app = sqlc.narg('dest_app')::text)
      AND (sqlc.narg('vpc_id')::text IS NULL OR x.vpc_id = sqlc.narg('vpc_id')::text)
    ORDER BY (x.bytes_tx >> 1) + (x.bytes_rx >> 1) + (x.bytes_tx & x.bytes_rx & 1) DESC, (x.bytes_tx # x.bytes_rx) & 1 DESC, x.src_app, x.dest_app, x.vpc_id
    LIMIT @per_hour::bigint
) AS f
WHERE @row_offset::bigint < (SELECT n FROM total)
ORDER BY (f.bytes_tx >> 1) + (f.bytes_rx >> 1) + (f.bytes_tx & f.bytes_rx & 1) DESC, (f.bytes_tx # f.bytes_rx) & 1 DESC, f.hour, f.src_app, f.dest_app, f.vpc_id
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListFlowsTopByHourAsc :many
-- ListFlowsTopByHourDesc, smallest first.
WITH total AS (
    SELECT CASE WHEN @rollup_dim::text <> '' THEN (
               SELECT coalesce(sum(r.flows), 0)::bigint FROM flows_hourly r
               WHERE r.dim = @rollup_dim::text AND r.hour >= @from_hour::timestamptz AND r.hour < @to_hour::timestamptz
                 AND r.key = @rollup_key::text)
           ELSE (
               SELECT count(*) FROM flows c
               WHERE c.hour >= @from_hour::timestamptz AND c.hour < @to_hour::timestamptz
                 AND (sqlc.narg('src_app')::text IS NULL OR c.src_app = sqlc.narg('src_app')::text)
                 AND (sqlc.narg('dest_app')::text IS NULL OR c.dest_app = sqlc.narg('dest_app')::text)
                 AND (sqlc.narg('vpc_id')::text IS NULL OR c.vpc_id = sqlc.narg('vpc_id')::text))
           END AS n
)
SELECT f.hour, f.src_app, f.dest_app, f.vpc_id, f.bytes_tx, f.bytes_rx, (SELECT n FROM total)::bigint AS total
FROM generate_series(@first_hour::bigint, @last_hour::bigint) AS h (n)
CROSS JOIN LATERAL (
    SELECT x.hour, x.src_app, x.dest_app, x.vpc_id, x.bytes_tx, x.bytes_rx
    FROM flows x
    WHERE x.hour = to_timestamp(h.n * 3600)
      AND (sqlc.narg('src_app')::text IS NULL OR x.src_app = sqlc.narg('src_app')::text)
      AND (sqlc.narg('dest_app')::text IS NULL OR x.dest_app = sqlc.narg('dest_app')::text)
      AND (sqlc.narg('vpc_id')::text IS NULL OR x.vpc_id = sqlc.narg('vpc_id')::text)
    ORDER BY (x.bytes_tx >> 1) + (x.bytes_rx >> 1) + (x.bytes_tx & x.bytes_rx & 1), (x.bytes_tx # x.bytes_rx) & 1, x.src_app, x.dest_app, x.vpc_id
    LIMIT @per_hour::bigint
) AS f
WHERE @row_offset::bigint < (SELECT n FROM total)
ORDER BY (f.bytes_tx >> 1) + (f.bytes_rx >> 1) + (f.bytes_tx & f.bytes_rx & 1), (f.bytes_tx # f.bytes_rx) & 1, f.hour, f.src_app, f.dest_app, f.vpc_id
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: CountFlowsRollup :one
-- CountFlows for no filter (@dim 'all', @key empty) or one filter (@dim the
-- filtered column, @key its value), from flows_hourly: 24 rows a day for
-- the whole hour, 24 x keys for one key.
SELECT coalesce(sum(flows), 0)::bigint FROM flows_hourly
WHERE dim = @dim::text AND hour >= @from_hour::timestamptz AND hour < @to_hour::timestamptz AND key = @key::text;

-- name: SummarizeFlowsRollup :many
-- SummarizeFlows when no filter names another column than @by (the only
-- possible filter is @by's own value, @key), from flows_hourly.
WITH totals AS (
    SELECT key, sum(bytes_tx) AS tx, sum(bytes_rx) AS rx
    FROM flows_hourly
    WHERE dim = @by::text AND hour >= @from_hour::timestamptz AND hour < @to_hour::timestamptz
      AND (sqlc.narg('key')::text IS NULL OR key = sqlc.narg('key')::text)
    GROUP BY key
    HAVING sum(flows) > 0
)
SELECT t.key::text AS key, t.tx::bigint AS bytes_tx, t.rx::bigint AS bytes_rx, (t.tx + t.rx)::bigint AS bytes,
       count(*) OVER () AS total
FROM totals t
ORDER BY t.tx + t.rx DESC, t.key
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: CountFlowKeysRollup :one
-- CountFlowKeys for SummarizeFlowsRollup.
SELECT count(*) FROM (
    SELECT key FROM flows_hourly
    WHERE dim = @by::text AND hour >= @from_hour::timestamptz AND hour < @to_hour::timestamptz
      AND (sqlc.narg('key')::text IS NULL OR key = sqlc.narg('key')::text)
    GROUP BY key
    HAVING sum(flows) > 0
) k;

-- name: FlowTotalsOfKeys :many
-- The stored totals of the given keys (one array element per key; keys not
-- stored are left out): what a batch that overflowed a total is checked
-- against, to name its flow that passed the limit (flows_writer.go).
SELECT f.hour, f.src_app, f.dest_app, f.vpc_id, f.bytes_tx, f.bytes_rx
FROM flows f
JOIN ROWS FROM (
        unnest(@hours::timestamptz[]),
        unnest(@src_apps::text[]),
        unnest(@dest_apps::text[]),
        unnest(@vpc_ids::text[])
    ) AS k (hour, src_app, dest_app, vpc_id)
    ON f.hour = k.hour AND f.src_app = k.src_app AND f.dest_app = k.dest_app AND f.vpc_id = k.vpc_id;
