-- Indexes for the flows filters and summary (GET /flows with from_hour,
-- to_hour, src_app, dest_app, vpc_id; GET /flows/summary). The primary key
-- (hour, src_app, dest_app, vpc_id) already serves an hour range; these
-- serve a range narrowed to one application or VPC without reading the
-- range's other keys. They hold key columns only, never the byte counters:
-- the upsert of POST /flows changes only the counters, so it stays a HOT
-- update that touches no index (docs/flows-storage.md).

--
-- Elapsed histograms for the grouped measurements' percentiles
-- (p50Elapsed, p95Elapsed, p99Elapsed): per cell of measurements_hourly and
-- measurements_daily, the number of measurements in each bucket of a fixed
-- log scale (telemetry_elapsed_bucket). One row per occupied bucket, so the
-- write path adds counts with the same ON CONFLICT upsert as the rollups
-- and a window merges cells by summing rows (docs/measurements.md gives the
-- error bound). Plain tables on PostgreSQL and TimescaleDB alike, as the
-- rollups are; existing rollups are backfilled from the raw rows.

-- +goose Up
CREATE INDEX flows_src_app_hour_idx ON flows (src_app, hour);
CREATE INDEX flows_dest_app_hour_idx ON flows (dest_app, hour);
CREATE INDEX flows_vpc_id_hour_idx ON flows (vpc_id, hour);

-- The bucket of an elapsed time: 0 for at most 1 microsecond, else
-- 1 + floor(ln(elapsed / 1e-6) / ln(1.05)): bucket b >= 1 holds
-- [1e-6 * 1.05^(b-1), 1e-6 * 1.05^b). internal/store/postgres
-- (elapsedBucket) computes the same in Go.
-- +goose StatementBegin
CREATE FUNCTION telemetry_elapsed_bucket(elapsed double precision) RETURNS smallint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (CASE WHEN elapsed <= 1e-6::float8 THEN 0
                 ELSE least(1 + floor(ln(elapsed / 1e-6::float8) / ln(1.05::float8)), 32767) END)::smallint
$$;
-- +goose StatementEnd

CREATE TABLE measurements_hourly_hist (
    start_hour timestamptz NOT NULL,
    end_hour   timestamptz NOT NULL,
    app        text        NOT NULL,
    name       text        NOT NULL,
    method     text        NOT NULL,
    bucket     smallint    NOT NULL,
    count      bigint      NOT NULL,
    CONSTRAINT measurements_hourly_hist_pkey PRIMARY KEY (start_hour, end_hour, app, name, method, bucket),
    CONSTRAINT measurements_hourly_hist_count_positive CHECK (count > 0),
    CONSTRAINT measurements_hourly_hist_bucket_nonnegative CHECK (bucket >= 0)
);
CREATE INDEX measurements_hourly_hist_end_idx ON measurements_hourly_hist (end_hour, start_hour);

COMMENT ON TABLE measurements_hourly_hist IS
    'Elapsed histogram of each measurements_hourly cell: how many of its measurements fall in each bucket of telemetry_elapsed_bucket (a log scale of ratio 1.05). Written in the same transaction as the rows; the grouped view''s p50/p95/p99 are read from it, so they survive the raw rows.';
COMMENT ON COLUMN measurements_hourly_hist.bucket IS 'telemetry_elapsed_bucket(elapsed): 0 is at most 1 microsecond; b >= 1 is [1e-6 * 1.05^(b-1), 1e-6 * 1.05^b) seconds.';
COMMENT ON COLUMN measurements_hourly_hist.count IS 'Measurements of the cell in that bucket.';

CREATE TABLE measurements_daily_hist (
    start_day timestamptz NOT NULL,
    end_day   timestamptz NOT NULL,
    app       text        NOT NULL,
    name      text        NOT NULL,
    method    text        NOT NULL,
    bucket    smallint    NOT NULL,
    count     bigint      NOT NULL,
    CONSTRAINT measurements_daily_hist_pkey PRIMARY KEY (start_day, end_day, app, name, method, bucket),
    CONSTRAINT measurements_daily_hist_count_positive CHECK (count > 0),
    CONSTRAINT measurements_daily_hist_bucket_nonnegative CHECK (bucket >= 0)
);

COMMENT ON TABLE measurements_daily_hist IS
    'Elapsed histogram of each measurements_daily cell (see measurements_hourly_hist).';
COMMENT ON COLUMN measurements_daily_hist.bucket IS 'telemetry_elapsed_bucket(elapsed).';
COMMENT ON COLUMN measurements_daily_hist.count IS 'Measurements of the cell in that bucket.';

-- Backfill: every existing rollup cell from its raw rows.
INSERT INTO measurements_hourly_hist (start_hour, end_hour, app, name, method, bucket, count)
SELECT date_trunc('hour', started_at, 'UTC'), date_trunc('hour', ended_at, 'UTC'), app, name, method,
       telemetry_elapsed_bucket(elapsed), count(*)
FROM measurements
GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO measurements_daily_hist (start_day, end_day, app, name, method, bucket, count)
SELECT date_trunc('day', start_hour, 'UTC'), date_trunc('day', end_hour, 'UTC'), app, name, method, bucket, sum(count)
FROM measurements_hourly_hist
GROUP BY 1, 2, 3, 4, 5, 6;

-- +goose Down
DROP TABLE IF EXISTS measurements_daily_hist;
DROP TABLE IF EXISTS measurements_hourly_hist;
DROP FUNCTION IF EXISTS telemetry_elapsed_bucket(double precision);
DROP INDEX IF EXISTS flows_vpc_id_hour_idx;
DROP INDEX IF EXISTS flows_dest_app_hour_idx;
DROP INDEX IF EXISTS flows_src_app_hour_idx;
