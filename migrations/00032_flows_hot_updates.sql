-- HOT updates for POST /flows: the top talkers' index goes, and the flows
-- pages keep a fifth of their space free.
--
-- POST /flows adds to the same keys over and over (a key's total for the
-- current hour grows with every post of it). flows_bytes_idx (migration
-- 00014) indexed the counters, so no such update could be HOT: each wrote
-- a new entry in all five indexes of flows. Without it no index holds a
-- column an update changes, and with fillfactor 80 a page has room for the
-- new versions of its rows, which PostgreSQL then writes on the same page
-- with no index entry (a heap-only tuple).
--
-- Under the mixed load of docs/performance-mixed.md (16 clients re-posting
-- 10,000 keys of the current hour), three alternating pairs of 60 s runs:
-- 97 % of the updates HOT instead of none, flows 10-11 MB instead of
-- 47-56 MB, POST /flows of 1,000 flows 12.5 ms of PostgreSQL CPU instead
-- of 25-37 ms, and the load 591-617 requests/s instead of 352-433.
-- Dropping the index alone (the pages full) made 57-66 % of the updates
-- HOT.
--
-- The price: the top talkers (sort=bytes) sort each hour's rows instead of
-- reading the index's first ones. At 10 M rows (BenchmarkFlowsRange10M),
-- a day's top talkers p50 / p99 23-36 / 41-44 ms instead of 6-8 / 13-15 ms;
-- with a vpc_id filter 15-17 / 20-22 instead of 5-6 / 10; a week's 157 /
-- 194 instead of 35 / 47 (docs/flows-storage.md, "HOT updates"). A
-- TimescaleDB chunk already compressed had none of these indexes anyway.
--
-- The fillfactor applies to pages filled from now on: the hours ingested
-- from now, which are the ones POST /flows updates. On TimescaleDB the
-- hypertable passes it to its chunks.

-- +goose Up
DROP INDEX IF EXISTS flows_bytes_idx;
ALTER TABLE flows SET (fillfactor = 80);

-- +goose Down
ALTER TABLE flows RESET (fillfactor);
CREATE INDEX flows_bytes_idx ON flows (hour, (bytes_tx::numeric + bytes_rx) DESC);
