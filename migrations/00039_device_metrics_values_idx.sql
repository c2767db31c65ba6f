-- A series' history read from its index alone: device_metrics_series_idx
-- (device_id, name, time DESC) is replaced by device_metrics_values_idx,
-- the same key with value_num as an INCLUDE column.
--
-- Both history reads (GET /mrd/devices/{id}/metrics/{name}/history, raw and
-- per bucket) take only time and value_num of one series' rows, and the raw
-- page's total counts the rows whose value_num is not null. Without
-- value_num in the index, each of those reads fetched every row of the
-- window from the table; the reports of all devices arrive interleaved, so
-- a series' rows are spread one or two to a page: 7,200 rows of a series
-- (30 minutes of the mixed load's reports) were 5,237 heap pages for the
-- count alone, and in the 30-minute mixed load the two reads were 8 and 8.5
-- ms of PostgreSQL's CPU each (docs/performance-mixed.md). With value_num
-- included they are index-only scans wherever the visibility map says the
-- pages are all visible (everything autovacuum has been over; the newest
-- minutes still go to the table): on 30 minutes of 64 devices, the last 5
-- minutes not yet vacuumed, the raw page and its total 9.8 -> 3.7 ms, the
-- 1-minute buckets of the last hour 15 -> 5.4-7.9 ms, the count 8.7 -> 2.6
-- ms. The index gains 8 bytes per row; a report writes the same entries
-- as before.
--
-- The new index is built before the old one is dropped: reports wait for
-- the build, reads go on until the drop, which takes the table for the
-- moment before the commit (see the README, "Migrating").

-- +goose Up
CREATE INDEX device_metrics_values_idx ON device_metrics (device_id, name, time DESC) INCLUDE (value_num);
DROP INDEX device_metrics_series_idx;

-- +goose Down
CREATE INDEX device_metrics_series_idx ON device_metrics (device_id, name, time DESC);
DROP INDEX device_metrics_values_idx;
