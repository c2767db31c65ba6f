-- Device metrics (seed: Concertim metric reporting daemon). A registry of
-- devices, the full history of every reported metric (a hypertable when
-- TimescaleDB is enabled) and the latest report per (device, name), which is
-- what the "current" views read. docs/devices.md explains the choices.

-- +goose Up
CREATE TABLE devices (
    id         text        NOT NULL,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT devices_pkey PRIMARY KEY (id),
    CONSTRAINT devices_id_format CHECK (id ~ '^[A-Za-z0-9._-]{1,64}$'),
    CONSTRAINT devices_name_length CHECK (length(name) BETWEEN 1 AND 255)
);

COMMENT ON TABLE devices IS
    'Devices allowed to report metrics (PUT /mrd/{id}/metrics answers 404 "Host Not Found" for any other id). Deleting a device deletes its metrics (ON DELETE CASCADE).';
COMMENT ON COLUMN devices.id IS 'Device id as reporters use it in the URL: 1 to 64 of [A-Za-z0-9._-].';
COMMENT ON COLUMN devices.name IS 'Human-readable device name.';
COMMENT ON COLUMN devices.created_at IS 'When the device was registered.';
COMMENT ON COLUMN devices.updated_at IS 'When the device was last renamed.';

CREATE TABLE device_metrics (
    time       timestamptz      NOT NULL,
    device_id  text             NOT NULL,
    name       text             NOT NULL,
    type       text             NOT NULL,
    value_num  double precision,
    value_text text,
    units      text             NOT NULL,
    slope      text             NOT NULL,
    ttl        integer          NOT NULL,
    CONSTRAINT device_metrics_device_fkey FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE CASCADE,
    CONSTRAINT device_metrics_type_valid CHECK (type IN ('string', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'float', 'double')),
    CONSTRAINT device_metrics_slope_valid CHECK (slope IN ('zero', 'positive', 'negative', 'both', 'derivative')),
    CONSTRAINT device_metrics_value_kind CHECK (
        CASE WHEN type = 'string' THEN value_text IS NOT NULL AND value_num IS NULL
             ELSE value_num IS NOT NULL AND value_text IS NULL END),
    CONSTRAINT device_metrics_ttl_positive CHECK (ttl >= 1)
);

COMMENT ON TABLE device_metrics IS
    'Every metric report ever accepted by PUT /mrd/{device_id}/metrics, one row per report (history; TimescaleDB hypertable on time when enabled).';
COMMENT ON COLUMN device_metrics.time IS 'When the report was received (server clock).';
COMMENT ON COLUMN device_metrics.device_id IS 'The reporting device (devices.id).';
COMMENT ON COLUMN device_metrics.name IS 'Metric name, e.g. ct.ipmi.temperature.';
COMMENT ON COLUMN device_metrics.type IS 'Declared value type: string, int8, uint8, int16, uint16, int32, uint32, float or double.';
COMMENT ON COLUMN device_metrics.value_num IS 'The value when type is numeric (exact for every integer type; float and double as IEEE 754 doubles); NULL for strings.';
COMMENT ON COLUMN device_metrics.value_text IS 'The value when type is string (may be empty); NULL for numbers.';
COMMENT ON COLUMN device_metrics.units IS 'Units as reported.';
COMMENT ON COLUMN device_metrics.slope IS 'How the value changes: zero, positive, negative, both or derivative.';
COMMENT ON COLUMN device_metrics.ttl IS 'Seconds after time at which the report becomes stale.';

-- History of one series, newest first; also finds the latest report of a
-- (device, name) without the device_metrics_latest table.
CREATE INDEX device_metrics_series_idx ON device_metrics (device_id, name, time DESC);

SELECT telemetry_create_hypertable('device_metrics', 'time', INTERVAL '1 day');

CREATE TABLE device_metrics_latest (
    device_id  text             NOT NULL,
    name       text             NOT NULL,
    time       timestamptz      NOT NULL,
    type       text             NOT NULL,
    value_num  double precision,
    value_text text,
    units      text             NOT NULL,
    slope      text             NOT NULL,
    ttl        integer          NOT NULL,
    CONSTRAINT device_metrics_latest_pkey PRIMARY KEY (device_id, name),
    CONSTRAINT device_metrics_latest_device_fkey FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE CASCADE,
    CONSTRAINT device_metrics_latest_value_kind CHECK (
        CASE WHEN type = 'string' THEN value_text IS NOT NULL AND value_num IS NULL
             ELSE value_num IS NOT NULL AND value_text IS NULL END)
);

COMMENT ON TABLE device_metrics_latest IS
    'The latest report per (device, name), written in the same statement as device_metrics. Current views read it and leave out rows whose time + ttl has passed (stale).';
COMMENT ON COLUMN device_metrics_latest.device_id IS 'The reporting device (devices.id).';
COMMENT ON COLUMN device_metrics_latest.name IS 'Metric name.';
COMMENT ON COLUMN device_metrics_latest.time IS 'When the latest report was received.';
COMMENT ON COLUMN device_metrics_latest.type IS 'Declared value type of the latest report.';
COMMENT ON COLUMN device_metrics_latest.value_num IS 'Latest numeric value; NULL for strings.';
COMMENT ON COLUMN device_metrics_latest.value_text IS 'Latest string value; NULL for numbers.';
COMMENT ON COLUMN device_metrics_latest.units IS 'Units of the latest report.';
COMMENT ON COLUMN device_metrics_latest.slope IS 'Slope of the latest report.';
COMMENT ON COLUMN device_metrics_latest.ttl IS 'Seconds after time at which the latest report becomes stale.';

-- +goose Down
DROP TABLE IF EXISTS device_metrics_latest;
DROP TABLE IF EXISTS device_metrics;
DROP TABLE IF EXISTS devices;
