-- name: UpsertFlows :exec
-- Adds a batch to the hourly totals. Duplicated keys inside the batch are
-- summed first (ON CONFLICT cannot touch one row twice in a statement), and
-- rows are written in key order so that concurrent batches lock the same
-- keys in the same order and cannot deadlock each other.
INSERT INTO flows AS f (hour, src_app, dest_app, vpc_id, bytes_tx, bytes_rx)
SELECT t.hour, t.src_app, t.dest_app, t.vpc_id, sum(t.bytes_tx)::bigint, sum(t.bytes_rx)::bigint
FROM ROWS FROM (
    unnest(@hours::timestamptz[]),
    unnest(@src_apps::text[]),
    unnest(@dest_apps::text[]),
    unnest(@vpc_ids::text[]),
    unnest(@bytes_tx::bigint[]),
    unnest(@bytes_rx::bigint[])
) AS t (hour, src_app, dest_app, vpc_id, bytes_tx, bytes_rx)
GROUP BY t.hour, t.src_app, t.dest_app, t.vpc_id
ORDER BY t.hour, t.src_app, t.dest_app, t.vpc_id
ON CONFLICT (hour, src_app, dest_app, vpc_id) DO UPDATE
SET bytes_tx = f.bytes_tx + excluded.bytes_tx,
    bytes_rx = f.bytes_rx + excluded.bytes_rx;

-- The flows lists: one page of the hourly totals of [@from_hour, @to_hour)
-- matching the optional filters, one query per order so that each is a
-- plain ORDER BY ... LIMIT the planner can serve from an index (key order)
-- or with a bounded top-N sort (bytes order); the exact total is CountFlows.
-- A window count(*) OVER () here made every page sort the whole range
-- (BenchmarkFlowsRange10M, docs/flows-storage.md).
-- name: ListFlowsByKeyAsc :many
SELECT hour, src_app, dest_app, vpc_id, bytes_tx, bytes_rx
FROM flows
WHERE hour >= @from_hour::timestamptz AND hour < @to_hour::timestamptz
  AND (sqlc.narg('src_app')::text IS NULL OR src_app = sqlc.narg('src_app')::text)
  AND (sqlc.narg('dest_app')::text IS NULL OR dest_app = sqlc.narg('dest_app')::text)
  AND (sqlc.narg('vpc_id')::text IS NULL OR vpc_id = sqlc.narg('vpc_id')::text)
ORDER BY hour, src_app, dest_app, vpc_id
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListFlowsByKeyDesc :many
SELECT hour, src_app, dest_app, vpc_id, bytes_tx, bytes_rx
FROM flows
WHERE hour >= @from_hour::timestamptz AND hour < @to_hour::timestamptz
  AND (sqlc.narg('src_app')::text IS NULL OR src_app = sqlc.narg('src_app')::text)
  AND (sqlc.narg('dest_app')::text IS NULL OR dest_app = sqlc.narg('dest_app')::text)
  AND (sqlc.narg('vpc_id')::text IS NULL OR vpc_id = sqlc.narg('vpc_id')::text)
ORDER BY hour DESC, src_app DESC, dest_app DESC, vpc_id DESC
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListFlowsByBytesDesc :many
-- Top talkers: bytes_tx + bytes_rx summed as numeric, so two large
-- counters cannot overflow; ties by key.
SELECT hour, src_app, dest_app, vpc_id, bytes_tx, bytes_rx
FROM flows
WHERE hour >= @from_hour::timestamptz AND hour < @to_hour::timestamptz
  AND (sqlc.narg('src_app')::text IS NULL OR src_app = sqlc.narg('src_app')::text)
  AND (sqlc.narg('dest_app')::text IS NULL OR dest_app = sqlc.narg('dest_app')::text)
  AND (sqlc.narg('vpc_id')::text IS NULL OR vpc_id = sqlc.narg('vpc_id')::text)
ORDER BY bytes_tx::numeric + bytes_rx DESC, hour, src_app, dest_app, vpc_id
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: ListFlowsByBytesAsc :many
SELECT hour, src_app, dest_app, vpc_id, bytes_tx, bytes_rx
FROM flows
WHERE hour >= @from_hour::timestamptz AND hour < @to_hour::timestamptz
  AND (sqlc.narg('src_app')::text IS NULL OR src_app = sqlc.narg('src_app')::text)
  AND (sqlc.narg('dest_app')::text IS NULL OR dest_app = sqlc.narg('dest_app')::text)
  AND (sqlc.narg('vpc_id')::text IS NULL OR vpc_id = sqlc.narg('vpc_id')::text)
ORDER BY bytes_tx::numeric + bytes_rx, hour, src_app, dest_app, vpc_id
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
