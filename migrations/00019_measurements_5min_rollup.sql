-- measurements_5min: the number of measurements per (5-minute bin of
-- started_at, 5-minute bin of ended_at), bins aligned on the Unix epoch, so
-- that the timeseries in 5- and 15-minute buckets read a window's whole
-- bins from these cells, as the hourly and daily buckets read
-- measurements_method_hourly. Until now those widths counted the window's
-- rows: 4.7-6.6 s for the default 7 days at 10 M rows (2.3 M rows, each
-- fetched from the heap for its ended_at). Written in the same transaction
-- as the rows, after the other rollups (queries/measurements.sql); kept as
-- long as they are (ROLLUPS_KEPT). The cells hold no method, app or name:
-- the timeseries has no filter. Filled here from the rows that exist.

-- +goose Up
CREATE TABLE measurements_5min (
    start_bin timestamptz NOT NULL,
    end_bin   timestamptz NOT NULL,
    count     bigint      NOT NULL,
    CONSTRAINT measurements_5min_pkey PRIMARY KEY (start_bin, end_bin),
    CONSTRAINT measurements_5min_bins_aligned CHECK (
        extract(epoch FROM start_bin) % 300 = 0 AND extract(epoch FROM end_bin) % 300 = 0 AND end_bin >= start_bin),
    CONSTRAINT measurements_5min_count_positive CHECK (count > 0)
);

COMMENT ON TABLE measurements_5min IS
    'Number of measurements per (5-minute bin of started_at, 5-minute bin of ended_at), bins aligned on the Unix epoch, written in the same transaction as the rows: the timeseries in 5- and 15-minute buckets read a window''s whole bins from these cells.';
COMMENT ON COLUMN measurements_5min.start_bin IS 'started_at rounded down to 5 minutes (date_bin from the Unix epoch).';
COMMENT ON COLUMN measurements_5min.end_bin IS 'ended_at rounded down to 5 minutes.';
COMMENT ON COLUMN measurements_5min.count IS 'Number of measurements in the cell.';

INSERT INTO measurements_5min (start_bin, end_bin, count)
SELECT date_bin('5 minutes', started_at, '1970-01-01 00:00:00+00'), date_bin('5 minutes', ended_at, '1970-01-01 00:00:00+00'), count(*)
FROM measurements
GROUP BY 1, 2;

-- +goose Down
DROP TABLE IF EXISTS measurements_5min;
