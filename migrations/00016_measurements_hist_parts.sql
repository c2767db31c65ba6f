-- The percentile histograms of migration 00013 may hold a cell in several
-- rows ("parts"), so that concurrent ingest batches of the same routes do
-- not queue on one row.
--
-- A batch used to lock each of its cells' histogram row, read it, add its
-- counts in Go and write it back, holding the lock until its commit: under
-- the mixed load (docs/performance-mixed.md) batches of the same routes in
-- the current hour queued behind each other for seconds, and some ran into
-- the database timeout (503). Now a batch takes, for each of its cells, a
-- part that no other transaction holds (SELECT ... FOR UPDATE SKIP LOCKED)
-- and adds to it; when every part of a cell is taken it adds a new part.
-- So a cell has about as many parts as batches ever wrote it at the same
-- moment (usually one), and readers add a cell's parts up, as they already
-- add up the cells of a window (queries/measurements_percentiles.sql).
-- The rebuild from the rows writes part 0.
--
-- measurements_hourly_hist_end_idx gains the cell's other key columns: a
-- batch finds its cells' parts by their whole key, and with the recent
-- hours past the planner's statistics it chose this index over the
-- primary key and read every cell of the hour to keep one (about 500 rows
-- per cell under the mixed load: 15-30 ms per statement).

-- +goose Up
ALTER TABLE measurements_hourly_hist ADD COLUMN part smallint NOT NULL DEFAULT 0;
ALTER TABLE measurements_hourly_hist DROP CONSTRAINT measurements_hourly_hist_pkey,
    ADD CONSTRAINT measurements_hourly_hist_pkey PRIMARY KEY (start_hour, end_hour, app, name, method, part);
ALTER TABLE measurements_daily_hist ADD COLUMN part smallint NOT NULL DEFAULT 0;
ALTER TABLE measurements_daily_hist DROP CONSTRAINT measurements_daily_hist_pkey,
    ADD CONSTRAINT measurements_daily_hist_pkey PRIMARY KEY (start_day, end_day, app, name, method, part);
DROP INDEX measurements_hourly_hist_end_idx;
CREATE INDEX measurements_hourly_hist_end_idx ON measurements_hourly_hist (end_hour, start_hour, app, name, method);
COMMENT ON COLUMN measurements_hourly_hist.part IS
    'A cell may be held in several rows (parts), written by concurrent ingest batches: its histogram is the sum of its parts.';
COMMENT ON COLUMN measurements_daily_hist.part IS
    'A cell may be held in several rows (parts), written by concurrent ingest batches: its histogram is the sum of its parts.';

-- +goose Down
DROP INDEX measurements_hourly_hist_end_idx;
CREATE INDEX measurements_hourly_hist_end_idx ON measurements_hourly_hist (end_hour, start_hour);
-- Each cell's parts added up into one row.
CREATE TEMPORARY TABLE hourly_hist_sum AS
SELECT s.start_hour, s.end_hour, s.app, s.name, s.method, telemetry_hist_encode(array_agg(s.bucket), array_agg(s.n)) AS hist
FROM (SELECT h.start_hour, h.end_hour, h.app, h.name, h.method, b.bucket, sum(b.count)::bigint AS n
      FROM measurements_hourly_hist h, telemetry_hist_buckets(h.hist) b
      WHERE (h.start_hour, h.end_hour, h.app, h.name, h.method) IN (
          SELECT start_hour, end_hour, app, name, method FROM measurements_hourly_hist
          GROUP BY 1, 2, 3, 4, 5 HAVING count(*) > 1)
      GROUP BY 1, 2, 3, 4, 5, 6) AS s
GROUP BY 1, 2, 3, 4, 5;
DELETE FROM measurements_hourly_hist h USING hourly_hist_sum s
WHERE (h.start_hour, h.end_hour, h.app, h.name, h.method) = (s.start_hour, s.end_hour, s.app, s.name, s.method);
INSERT INTO measurements_hourly_hist (start_hour, end_hour, app, name, method, hist)
SELECT start_hour, end_hour, app, name, method, hist FROM hourly_hist_sum;
CREATE TEMPORARY TABLE daily_hist_sum AS
SELECT s.start_day, s.end_day, s.app, s.name, s.method, telemetry_hist_encode(array_agg(s.bucket), array_agg(s.n)) AS hist
FROM (SELECT h.start_day, h.end_day, h.app, h.name, h.method, b.bucket, sum(b.count)::bigint AS n
      FROM measurements_daily_hist h, telemetry_hist_buckets(h.hist) b
      WHERE (h.start_day, h.end_day, h.app, h.name, h.method) IN (
          SELECT start_day, end_day, app, name, method FROM measurements_daily_hist
          GROUP BY 1, 2, 3, 4, 5 HAVING count(*) > 1)
      GROUP BY 1, 2, 3, 4, 5, 6) AS s
GROUP BY 1, 2, 3, 4, 5;
DELETE FROM measurements_daily_hist h USING daily_hist_sum s
WHERE (h.start_day, h.end_day, h.app, h.name, h.method) = (s.start_day, s.end_day, s.app, s.name, s.method);
INSERT INTO measurements_daily_hist (start_day, end_day, app, name, method, hist)
SELECT start_day, end_day, app, name, method, hist FROM daily_hist_sum;
DROP TABLE hourly_hist_sum, daily_hist_sum;
ALTER TABLE measurements_hourly_hist DROP CONSTRAINT measurements_hourly_hist_pkey,
    ADD CONSTRAINT measurements_hourly_hist_pkey PRIMARY KEY (start_hour, end_hour, app, name, method);
ALTER TABLE measurements_hourly_hist DROP COLUMN part;
ALTER TABLE measurements_daily_hist DROP CONSTRAINT measurements_daily_hist_pkey,
    ADD CONSTRAINT measurements_daily_hist_pkey PRIMARY KEY (start_day, end_day, app, name, method);
ALTER TABLE measurements_daily_hist DROP COLUMN part;
