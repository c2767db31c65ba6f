-- The elapsed histograms of migration 00010 reshaped: one row per rollup
-- cell instead of one row per (cell, occupied bucket). At 10 M measurements
-- the per-bucket tables held about as many rows as the measurements
-- themselves (a cell of a few hundred requests occupies a hundred buckets),
-- so a grouped page's percentiles read millions of rows. Now the buckets of
-- a cell are one bytea value, `hist`, read whole and merged in Go
-- (internal/store/postgres/measurements_percentiles.go, docs/measurements.md):
--
--   byte 0        w, the width in bytes of each count: 1, 2, 4 or 8
--   bytes 1-2     lo, the first bucket (big-endian; buckets are 0..822)
--   bytes 3..     the counts of buckets lo, lo+1, ..., each w bytes,
--                 big-endian, zeros included (the last one is not zero)
--
-- A bytea travels as one value (an array would be sent element by element)
-- and is small: w is the narrowest width that holds the cell's largest
-- count, so an hourly cell of a few hundred requests takes one byte per
-- bucket between its fastest and its slowest. The bucket function
-- (telemetry_elapsed_bucket) is unchanged, and so is the error bound.
-- Plain tables on PostgreSQL and TimescaleDB alike, as before.

-- +goose Up

-- The encoding above of a histogram given as (bucket, count) pairs with
-- distinct buckets and positive counts; NULL when there are none. Used by
-- this backfill and by the rebuild from the rows (queries/measurements.sql);
-- the write path encodes in Go (histEncode), identically.
-- +goose StatementBegin
CREATE FUNCTION telemetry_hist_encode(buckets integer[], counts bigint[]) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    WITH pairs AS (
        SELECT p.b, p.c FROM unnest(buckets, counts) AS p (b, c) WHERE p.c > 0
    ), shape AS (
        SELECT min(p.b) AS lo, max(p.b) AS hi,
               CASE WHEN max(p.c) < 256 THEN 1 WHEN max(p.c) < 65536 THEN 2
                    WHEN max(p.c) < 4294967296 THEN 4 ELSE 8 END AS w
        FROM pairs p
    )
    SELECT substr(int2send(s.w::smallint), 2) || int2send(s.lo::smallint)
           || string_agg(substr(int8send(coalesce(p.c, 0)), 9 - s.w), ''::bytea ORDER BY g.b)
    FROM shape s
    CROSS JOIN LATERAL generate_series(s.lo, s.hi) AS g (b)
    LEFT JOIN pairs p ON p.b = g.b
    WHERE s.lo IS NOT NULL
    GROUP BY s.w, s.lo
$$;
-- +goose StatementEnd

-- The occupied buckets of an encoded histogram, for psql (docs/analysts.md):
-- SELECT h.* FROM measurements_daily_hist, telemetry_hist_buckets(hist) h.
-- +goose StatementBegin
CREATE FUNCTION telemetry_hist_buckets(hist bytea, OUT bucket integer, OUT count bigint) RETURNS SETOF record
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT x.bucket, x.count
    FROM (SELECT get_byte(hist, 0) AS w, get_byte(hist, 1) * 256 + get_byte(hist, 2) AS lo) AS s
    CROSS JOIN LATERAL (
        SELECT s.lo + i AS bucket,
               (SELECT sum(get_byte(hist, 3 + i * s.w + j)::numeric * (256::numeric ^ (s.w - 1 - j)))
                FROM generate_series(0, s.w - 1) AS j)::bigint AS count
        FROM generate_series(0, (length(hist) - 3) / s.w - 1) AS i
    ) AS x
    WHERE x.count > 0
$$;
-- +goose StatementEnd

CREATE TABLE measurements_hourly_hist_cells (
    start_hour timestamptz NOT NULL,
    end_hour   timestamptz NOT NULL,
    app        text        NOT NULL,
    name       text        NOT NULL,
    method     text        NOT NULL,
    hist       bytea       NOT NULL,
    CONSTRAINT measurements_hourly_hist_cells_pkey PRIMARY KEY (start_hour, end_hour, app, name, method),
    CONSTRAINT measurements_hourly_hist_cells_hist_shape CHECK (length(hist) >= 4)
);

CREATE TABLE measurements_daily_hist_cells (
    start_day timestamptz NOT NULL,
    end_day   timestamptz NOT NULL,
    app       text        NOT NULL,
    name      text        NOT NULL,
    method    text        NOT NULL,
    hist      bytea       NOT NULL,
    CONSTRAINT measurements_daily_hist_cells_pkey PRIMARY KEY (start_day, end_day, app, name, method),
    CONSTRAINT measurements_daily_hist_cells_hist_shape CHECK (length(hist) >= 4)
);

INSERT INTO measurements_hourly_hist_cells (start_hour, end_hour, app, name, method, hist)
SELECT start_hour, end_hour, app, name, method, telemetry_hist_encode(array_agg(bucket::integer), array_agg(count))
FROM measurements_hourly_hist
GROUP BY start_hour, end_hour, app, name, method;

INSERT INTO measurements_daily_hist_cells (start_day, end_day, app, name, method, hist)
SELECT start_day, end_day, app, name, method, telemetry_hist_encode(array_agg(bucket::integer), array_agg(count))
FROM measurements_daily_hist
GROUP BY start_day, end_day, app, name, method;

DROP TABLE measurements_hourly_hist;
DROP TABLE measurements_daily_hist;
ALTER TABLE measurements_hourly_hist_cells RENAME TO measurements_hourly_hist;
ALTER TABLE measurements_hourly_hist RENAME CONSTRAINT measurements_hourly_hist_cells_pkey TO measurements_hourly_hist_pkey;
ALTER TABLE measurements_hourly_hist RENAME CONSTRAINT measurements_hourly_hist_cells_hist_shape TO measurements_hourly_hist_shape;
ALTER TABLE measurements_daily_hist_cells RENAME TO measurements_daily_hist;
ALTER TABLE measurements_daily_hist RENAME CONSTRAINT measurements_daily_hist_cells_pkey TO measurements_daily_hist_pkey;
ALTER TABLE measurements_daily_hist RENAME CONSTRAINT measurements_daily_hist_cells_hist_shape TO measurements_daily_hist_shape;
-- The last partial day of a window reads its hourly cells by end_hour.
CREATE INDEX measurements_hourly_hist_end_idx ON measurements_hourly_hist (end_hour, start_hour);

COMMENT ON TABLE measurements_hourly_hist IS
    'Elapsed histogram of each measurements_hourly cell: how many of its measurements fall in each bucket of telemetry_elapsed_bucket (a log scale of ratio 1.05), encoded in hist. Written in the same transaction as the rows; the grouped view''s p50/p95/p99 are read from it, so they survive the raw rows.';
COMMENT ON COLUMN measurements_hourly_hist.hist IS
    'The counts per bucket: byte 0 the width w of each count (1, 2, 4 or 8 bytes), bytes 1-2 the first bucket, then one big-endian count of w bytes per bucket from it. telemetry_hist_buckets(hist) lists the occupied buckets.';
COMMENT ON TABLE measurements_daily_hist IS
    'Elapsed histogram of each measurements_daily cell (see measurements_hourly_hist).';
COMMENT ON COLUMN measurements_daily_hist.hist IS 'The counts per bucket (see measurements_hourly_hist.hist).';

-- +goose Down
CREATE TABLE measurements_hourly_hist_rows (
    start_hour timestamptz NOT NULL,
    end_hour   timestamptz NOT NULL,
    app        text        NOT NULL,
    name       text        NOT NULL,
    method     text        NOT NULL,
    bucket     smallint    NOT NULL,
    count      bigint      NOT NULL,
    CONSTRAINT measurements_hourly_hist_rows_pkey PRIMARY KEY (start_hour, end_hour, app, name, method, bucket),
    CONSTRAINT measurements_hourly_hist_count_positive CHECK (count > 0),
    CONSTRAINT measurements_hourly_hist_bucket_nonnegative CHECK (bucket >= 0)
);
CREATE TABLE measurements_daily_hist_rows (
    start_day timestamptz NOT NULL,
    end_day   timestamptz NOT NULL,
    app       text        NOT NULL,
    name      text        NOT NULL,
    method    text        NOT NULL,
    bucket    smallint    NOT NULL,
    count     bigint      NOT NULL,
    CONSTRAINT measurements_daily_hist_rows_pkey PRIMARY KEY (start_day, end_day, app, name, method, bucket),
    CONSTRAINT measurements_daily_hist_count_positive CHECK (count > 0),
    CONSTRAINT measurements_daily_hist_bucket_nonnegative CHECK (bucket >= 0)
);
INSERT INTO measurements_hourly_hist_rows (start_hour, end_hour, app, name, method, bucket, count)
SELECT c.start_hour, c.end_hour, c.app, c.name, c.method, b.bucket, b.count
FROM measurements_hourly_hist c, telemetry_hist_buckets(c.hist) b;
INSERT INTO measurements_daily_hist_rows (start_day, end_day, app, name, method, bucket, count)
SELECT c.start_day, c.end_day, c.app, c.name, c.method, b.bucket, b.count
FROM measurements_daily_hist c, telemetry_hist_buckets(c.hist) b;
DROP TABLE measurements_hourly_hist;
DROP TABLE measurements_daily_hist;
ALTER TABLE measurements_hourly_hist_rows RENAME TO measurements_hourly_hist;
ALTER TABLE measurements_hourly_hist RENAME CONSTRAINT measurements_hourly_hist_rows_pkey TO measurements_hourly_hist_pkey;
ALTER TABLE measurements_daily_hist_rows RENAME TO measurements_daily_hist;
ALTER TABLE measurements_daily_hist RENAME CONSTRAINT measurements_daily_hist_rows_pkey TO measurements_daily_hist_pkey;
CREATE INDEX measurements_hourly_hist_end_idx ON measurements_hourly_hist (end_hour, start_hour);
COMMENT ON TABLE measurements_hourly_hist IS
    'Elapsed histogram of each measurements_hourly cell: how many of its measurements fall in each bucket of telemetry_elapsed_bucket (a log scale of ratio 1.05). Written in the same transaction as the rows; the grouped view''s p50/p95/p99 are read from it, so they survive the raw rows.';
COMMENT ON COLUMN measurements_hourly_hist.bucket IS 'telemetry_elapsed_bucket(elapsed): 0 is at most 1 microsecond; b >= 1 is [1e-6 * 1.05^(b-1), 1e-6 * 1.05^b) seconds.';
COMMENT ON COLUMN measurements_hourly_hist.count IS 'Measurements of the cell in that bucket.';
COMMENT ON TABLE measurements_daily_hist IS
    'Elapsed histogram of each measurements_daily cell (see measurements_hourly_hist).';
COMMENT ON COLUMN measurements_daily_hist.bucket IS 'telemetry_elapsed_bucket(elapsed).';
COMMENT ON COLUMN measurements_daily_hist.count IS 'Measurements of the cell in that bucket.';
DROP FUNCTION telemetry_hist_buckets(bytea);
DROP FUNCTION telemetry_hist_encode(integer[], bigint[]);
