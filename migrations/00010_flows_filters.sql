-- Indexes for the flows filters and summary (GET /flows with from_hour,
-- to_hour, src_app, dest_app, vpc_id; GET /flows/summary). The primary key
-- (hour, src_app, dest_app, vpc_id) already serves an hour range; these
-- serve a range narrowed to one application or VPC without reading the
-- range's other keys. They hold key columns only, never the byte counters:
-- the upsert of POST /flows changes only the counters, so it stays a HOT
-- update that touches no index (docs/flows-storage.md).

-- +goose Up
CREATE INDEX flows_src_app_hour_idx ON flows (src_app, hour);
CREATE INDEX flows_dest_app_hour_idx ON flows (dest_app, hour);
CREATE INDEX flows_vpc_id_hour_idx ON flows (vpc_id, hour);

-- +goose Down
DROP INDEX IF EXISTS flows_vpc_id_hour_idx;
DROP INDEX IF EXISTS flows_dest_app_hour_idx;
DROP INDEX IF EXISTS flows_src_app_hour_idx;
