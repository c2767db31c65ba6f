-- README.md and docs/analysts.md promise a comment on every table and column
-- (`\d+ flows` in psql). An audit found fifteen key columns without one:
-- flows_hourly.hour, the key columns of the two elapsed-histogram rollups
-- (rebuilt by migration 00013 with comments on their values only), the name
-- and method of measurements_sealed_cells, and both columns of
-- retention_watermarks. It also found that the view device_metrics_current
-- named a route the API does not serve (/mrd/{device_id}/metrics/current):
-- the operation it mirrors is GET /mrd/devices/{id}/metrics. Comments only;
-- TestEveryColumnHasAComment (internal/store/postgres) keeps the promise.

-- +goose Up
COMMENT ON COLUMN flows_hourly.hour IS 'Start of the UTC hour (flows.hour).';

COMMENT ON COLUMN measurements_hourly_hist.start_hour IS 'UTC hour of started_at, as in measurements_hourly.';
COMMENT ON COLUMN measurements_hourly_hist.end_hour IS 'UTC hour of ended_at.';
COMMENT ON COLUMN measurements_hourly_hist.app IS 'measurements.app.';
COMMENT ON COLUMN measurements_hourly_hist.name IS 'measurements.name.';
COMMENT ON COLUMN measurements_hourly_hist.method IS 'measurements.method.';

COMMENT ON COLUMN measurements_daily_hist.start_day IS 'UTC day of started_at, as in measurements_daily.';
COMMENT ON COLUMN measurements_daily_hist.end_day IS 'UTC day of ended_at.';
COMMENT ON COLUMN measurements_daily_hist.app IS 'measurements.app.';
COMMENT ON COLUMN measurements_daily_hist.name IS 'measurements.name.';
COMMENT ON COLUMN measurements_daily_hist.method IS 'measurements.method.';

COMMENT ON COLUMN measurements_sealed_cells.name IS 'measurements.name (all apps together).';
COMMENT ON COLUMN measurements_sealed_cells.method IS 'measurements.method.';

COMMENT ON COLUMN retention_watermarks.table_name IS 'The table whose rows the maintenance pass expires (measurements).';
COMMENT ON COLUMN retention_watermarks.deleted_before IS 'Rows started before this time may have been deleted; -infinity while none can have been.';

COMMENT ON VIEW device_metrics_current IS
    'The metrics each device reports now: the latest report per (device, name) from device_metrics_latest, left out once stale (time + ttl seconds has passed, at the start of the reading transaction). The same rule as GET /mrd/devices/{id}/metrics.';

-- +goose Down
COMMENT ON VIEW device_metrics_current IS
    'The metrics each device reports now: the latest report per (device, name) from device_metrics_latest, left out once stale (time + ttl seconds has passed, at the start of the reading transaction). The same rule as GET /mrd/{device_id}/metrics/current.';
COMMENT ON COLUMN retention_watermarks.deleted_before IS NULL;
COMMENT ON COLUMN retention_watermarks.table_name IS NULL;
COMMENT ON COLUMN measurements_sealed_cells.method IS NULL;
COMMENT ON COLUMN measurements_sealed_cells.name IS NULL;
COMMENT ON COLUMN measurements_daily_hist.method IS NULL;
COMMENT ON COLUMN measurements_daily_hist.name IS NULL;
COMMENT ON COLUMN measurements_daily_hist.app IS NULL;
COMMENT ON COLUMN measurements_daily_hist.end_day IS NULL;
COMMENT ON COLUMN measurements_daily_hist.start_day IS NULL;
COMMENT ON COLUMN measurements_hourly_hist.method IS NULL;
COMMENT ON COLUMN measurements_hourly_hist.name IS NULL;
COMMENT ON COLUMN measurements_hourly_hist.app IS NULL;
COMMENT ON COLUMN measurements_hourly_hist.end_hour IS NULL;
COMMENT ON COLUMN measurements_hourly_hist.start_hour IS NULL;
COMMENT ON COLUMN flows_hourly.hour IS NULL;
