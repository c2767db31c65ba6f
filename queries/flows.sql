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

-- name: ListFlowsByHour :many
-- One page of an hour's totals; total is the number of keys in that hour.
SELECT src_app, dest_app, vpc_id, bytes_tx, bytes_rx, count(*) OVER () AS total
FROM flows
WHERE hour = @hour
ORDER BY src_app, dest_app, vpc_id
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: CountFlowsByHour :one
SELECT count(*) FROM flows WHERE hour = @hour;

-- name: ExportFlowsByHour :many
-- Every total of an hour, in ListFlowsByHour's order, for an export: no
-- window count (it would make PostgreSQL read every row before the first
-- one is sent) and no page. The store reads its rows one at a time.
SELECT src_app, dest_app, vpc_id, bytes_tx, bytes_rx
FROM flows
WHERE hour = @hour
ORDER BY src_app, dest_app, vpc_id;
