-- Hourly network flows (seed: aggregation_ws). Flows are aggregated on write:
-- one row per (hour, src_app, dest_app, vpc_id) holding the running sums.
-- docs/flows-storage.md gives the measurements behind this choice.

-- +goose Up
CREATE TABLE flows (
    hour     timestamptz NOT NULL,
    src_app  text        NOT NULL,
    dest_app text        NOT NULL,
    vpc_id   text        NOT NULL,
    bytes_tx bigint      NOT NULL DEFAULT 0,
    bytes_rx bigint      NOT NULL DEFAULT 0,
    CONSTRAINT flows_pkey PRIMARY KEY (hour, src_app, dest_app, vpc_id),
    CONSTRAINT flows_hour_aligned CHECK (extract(epoch FROM hour) % 3600 = 0),
    CONSTRAINT flows_bytes_tx_nonnegative CHECK (bytes_tx >= 0),
    CONSTRAINT flows_bytes_rx_nonnegative CHECK (bytes_rx >= 0),
    CONSTRAINT flows_src_app_length CHECK (length(src_app) BETWEEN 1 AND 255),
    CONSTRAINT flows_dest_app_length CHECK (length(dest_app) BETWEEN 1 AND 255),
    CONSTRAINT flows_vpc_id_length CHECK (length(vpc_id) BETWEEN 1 AND 255)
);

COMMENT ON TABLE flows IS
    'Hourly network flow totals: one row per (hour, src_app, dest_app, vpc_id) with the sums of every flow ever posted for that key (POST /flows upserts into it).';
COMMENT ON COLUMN flows.hour IS 'Start of the UTC hour (the API''s integer hour is hours since the Unix epoch: extract(epoch FROM hour) / 3600).';
COMMENT ON COLUMN flows.src_app IS 'Source application name.';
COMMENT ON COLUMN flows.dest_app IS 'Destination application name.';
COMMENT ON COLUMN flows.vpc_id IS 'VPC identifier.';
COMMENT ON COLUMN flows.bytes_tx IS 'Total bytes transmitted in that hour, summed over every posted flow.';
COMMENT ON COLUMN flows.bytes_rx IS 'Total bytes received in that hour, summed over every posted flow.';

SELECT telemetry_create_hypertable('flows', 'hour', INTERVAL '7 days');

-- +goose Down
DROP TABLE IF EXISTS flows;
