-- name: CreateDevice :one
-- No row back means the id is taken.
INSERT INTO devices (id, name) VALUES (@id, @name)
ON CONFLICT (id) DO NOTHING
RETURNING id, name, created_at, updated_at;

-- name: GetDevice :one
SELECT id, name, created_at, updated_at FROM devices WHERE id = @id;

-- name: DeviceExists :one
SELECT EXISTS (SELECT 1 FROM devices WHERE id = @id);

-- name: UpdateDevice :one
UPDATE devices SET name = @name, updated_at = now()
WHERE id = @id
RETURNING id, name, created_at, updated_at;

-- name: DeleteDevice :execrows
-- Its metrics go with it (ON DELETE CASCADE).
DELETE FROM devices WHERE id = @id;

-- name: ListDevices :many
-- One page of devices; total beside it as in ListRuns.
SELECT p.id, p.name, p.created_at, p.updated_at, (SELECT count(*) FROM devices c) AS total
FROM (
    SELECT d.id, d.name, d.created_at, d.updated_at
    FROM devices d
    ORDER BY d.id
    LIMIT @row_limit::bigint OFFSET @row_offset::bigint
) p
ORDER BY p.id;

-- name: CountDevices :one
SELECT count(*) FROM devices;

-- name: InsertDeviceMetrics :many
-- Stores a batch of reports in one statement (one commit): each row goes to
-- the history and, the newest per (device, name), to device_metrics_latest.
-- Rows of unknown devices are left out; the answer lists the devices that
-- exist, so the caller can tell which rows were stored. That lookup locks
-- the devices FOR KEY SHARE before any row is written (migration 00043): a
-- DELETE committed while it waited leaves that device's rows out, and a
-- DELETE that comes later waits for this commit and removes these rows too
-- (the foreign key checks took the same lock at the statement's end, after
-- the latest rows: a DELETE in between deadlocked with the report). Latest
-- rows are written in key order so that concurrent batches cannot
-- deadlock. The statement is the body of
-- telemetry_insert_device_metrics (migrations 00033, 00043), which each connection
-- plans once: sent as an unnamed statement, as the service sends its
-- queries, it was parsed and planned at every call, most of its cost.
SELECT d.id::text AS device_id
FROM telemetry_insert_device_metrics(
    @times::timestamptz[], @device_ids::text[], @names::text[], @types::text[], @value_nums::float8[],
    @value_texts::text[], @units::text[], @slopes::text[], @ttls::integer[]) AS d (id);

-- name: ListCurrentDeviceMetrics :many
-- A device's current metrics: the latest report per name unless stale;
-- total beside the page as in ListRuns.
SELECT p.name, p.time, p.type, p.value_num, p.value_text, p.units, p.slope, p.ttl,
       (SELECT count(*) FROM device_metrics_latest c
        WHERE c.device_id = @device_id
          AND c.time + make_interval(secs => c.ttl) > @now::timestamptz) AS total
FROM (
    SELECT l.name, l.time, l.type, l.value_num, l.value_text, l.units, l.slope, l.ttl
    FROM device_metrics_latest l
    WHERE l.device_id = @device_id
      AND l.time + make_interval(secs => l.ttl) > @now::timestamptz
    ORDER BY l.name
    LIMIT @row_limit::bigint OFFSET @row_offset::bigint
) p
ORDER BY p.name;

-- name: CountCurrentDeviceMetrics :one
SELECT count(*) FROM device_metrics_latest
WHERE device_id = @device_id
  AND time + make_interval(secs => ttl) > @now::timestamptz;

-- name: ListCurrentMetricNames :many
-- Metric names reported now across devices; min and max over the numeric
-- values (numeric = 0 means there are none: the metric is a string).
SELECT name,
       count(*) AS devices,
       count(value_num) AS numeric,
       coalesce(min(value_num), 0)::float8 AS min_value,
       coalesce(max(value_num), 0)::float8 AS max_value,
       count(*) OVER () AS total
FROM device_metrics_latest
WHERE time + make_interval(secs => ttl) > @now::timestamptz
GROUP BY name
ORDER BY name
LIMIT @row_limit::bigint OFFSET @row_offset::bigint;

-- name: CountCurrentMetricNames :one
SELECT count(DISTINCT name) FROM device_metrics_latest
WHERE time + make_interval(secs => ttl) > @now::timestamptz;

-- name: ListMetricHistory :many
-- Raw numeric points of one series in [from, to), oldest first, points of
-- one time by value: rows have no key, and reports stamped in the same
-- microsecond share a time, so without the value the offset pages could
-- repeat a point and miss another; points equal in both answer the same.
-- Total beside the page as in ListRuns.
SELECT p.time, p.value, (SELECT count(*) FROM device_metrics c
                         WHERE c.device_id = @device_id AND c.name = @name
                           AND c.time >= @from_time::timestamptz AND c.time < @to_time::timestamptz
                           AND c.value_num IS NOT NULL) AS total
FROM (
    SELECT m.time, m.value_num::float8 AS value
    FROM device_metrics m
    WHERE m.device_id = @device_id AND m.name = @name
      AND m.time >= @from_time::timestamptz AND m.time < @to_time::timestamptz
      AND m.value_num IS NOT NULL
    ORDER BY m.time, m.value_num
    LIMIT @row_limit::bigint OFFSET @row_offset::bigint
) p
ORDER BY p.time, p.value;

-- name: CountMetricHistory :one
SELECT count(*) FROM device_metrics
WHERE device_id = @device_id AND name = @name
  AND time >= @from_time::timestamptz AND time < @to_time::timestamptz
  AND value_num IS NOT NULL;

-- name: ListMetricHistoryBuckets :many
-- Numeric points of one series in [from, to) per bucket of the given width
-- (aligned to the Unix epoch), oldest first; empty buckets are left out;
-- total beside the page as in ListRuns (no row past the last page: the
-- caller counts). The statement is the body of the PL/pgSQL function
-- telemetry_device_metric_buckets (migration 00056), which each connection
-- plans once; it aggregates the page's buckets only. The average is taken
-- over numeric: a float8 sum of two values near the largest double
-- overflows (an error for every reader of the bucket), whereas the numeric
-- sum is exact and the average, between min and max, always fits a float8
-- again. Through text, because float8::numeric keeps 15 digits only (it
-- would round the largest double past the float8 range); float8's text is
-- the shortest exact form. p95 is exact and nearest-rank (percentile_disc:
-- a value of the bucket, so it never overflows as an interpolation between
-- extreme values could).
SELECT b.bucket::timestamptz AS bucket,
       b.avg_value::float8 AS avg_value,
       b.min_value::float8 AS min_value,
       b.max_value::float8 AS max_value,
       b.p95_value::float8 AS p95_value,
       b.points::bigint AS points,
       b.total::bigint AS total
FROM telemetry_device_metric_buckets(@width_seconds::float8, @device_id::text, @name::text,
    @from_time::timestamptz, @to_time::timestamptz, @row_offset::bigint, @row_limit::bigint) AS b;

-- name: CountMetricHistoryBuckets :one
SELECT count(DISTINCT date_bin(make_interval(secs => @width_seconds::float8), time, '1970-01-01 00:00:00+00'::timestamptz))
FROM device_metrics
WHERE device_id = @device_id AND name = @name
  AND time >= @from_time::timestamptz AND time < @to_time::timestamptz
  AND value_num IS NOT NULL;

-- name: ExportDevices :many
-- Every device, in ListDevices' order, for an export (no count, no page).
SELECT id, name, created_at, updated_at
FROM devices
ORDER BY id;

-- name: ExportMetricHistory :many
-- Every raw point of ListMetricHistory's series, in its order, for an
-- export.
SELECT time, value_num::float8 AS value
FROM device_metrics
WHERE device_id = @device_id AND name = @name
  AND time >= @from_time::timestamptz AND time < @to_time::timestamptz
  AND value_num IS NOT NULL
ORDER BY time, value_num;

-- name: ExportMetricHistoryBuckets :many
-- Every bucket of ListMetricHistoryBuckets' series, for an export.
SELECT date_bin(make_interval(secs => @width_seconds::float8), time, '1970-01-01 00:00:00+00'::timestamptz)::timestamptz AS bucket,
       avg(value_num::text::numeric)::float8 AS avg_value,
       min(value_num)::float8 AS min_value,
       max(value_num)::float8 AS max_value,
       (percentile_disc(0.95) WITHIN GROUP (ORDER BY value_num))::float8 AS p95_value,
       count(*) AS points
FROM device_metrics
WHERE device_id = @device_id AND name = @name
  AND time >= @from_time::timestamptz AND time < @to_time::timestamptz
  AND value_num IS NOT NULL
GROUP BY bucket
ORDER BY bucket;
