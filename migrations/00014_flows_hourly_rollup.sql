-- What a 24-hour flows query at 10 M stored rows needs to stay fast
-- (docs/flows-storage.md: GET /flows and GET /flows/summary over a range).
--
-- flows_hourly holds, per hour, the number of flows rows and the sums of
-- bytes_tx and bytes_rx: for the hour as a whole (dim 'all', key '') and
-- per src_app, dest_app and vpc_id. The upsert of POST /flows adds its
-- deltas in the same statement (queries/flows.sql, UpsertFlows), so the
-- exact totals of a range (the list's `total`, the summary's sums and key
-- count) read 24 x (1 + keys) rows instead of the range's flows. Sums are
-- numeric: an hour's total may pass 64 bits where no single flows row
-- does; reads cast to bigint and answer 422 past it, as before.
--
-- flows_bytes_idx orders each hour's rows by bytes_tx + bytes_rx (the
-- expression of the top-talker sort), so the top talkers of a range are
-- the merge of each hour's first rows. It costs the upsert its HOT updates
-- (the counters are now indexed); docs/flows-storage.md has the figures.
--
-- flows_hourly is a plain table on TimescaleDB too (like the measurements
-- rollups); the maintenance pass expires its hours with the flows.

-- +goose Up
CREATE TABLE flows_hourly (
    dim      text        NOT NULL,
    hour     timestamptz NOT NULL,
    key      text        NOT NULL,
    flows    bigint      NOT NULL,
    bytes_tx numeric     NOT NULL,
    bytes_rx numeric     NOT NULL,
    CONSTRAINT flows_hourly_pkey PRIMARY KEY (dim, hour, key),
    CONSTRAINT flows_hourly_dim CHECK (dim IN ('all', 'src_app', 'dest_app', 'vpc_id')),
    CONSTRAINT flows_hourly_key CHECK ((dim = 'all') = (key = ''))
);

COMMENT ON TABLE flows_hourly IS
    'Per hour, the number of flows rows and their byte sums: for the whole hour (dim all) and per src_app, dest_app and vpc_id. Maintained by the flows upsert in the same statement; read for the exact totals of flows ranges and summaries.';
COMMENT ON COLUMN flows_hourly.dim IS 'all (the whole hour, key is empty), src_app, dest_app or vpc_id.';
COMMENT ON COLUMN flows_hourly.key IS 'The src_app, dest_app or vpc_id value ('''' for dim all).';
COMMENT ON COLUMN flows_hourly.flows IS 'Rows of flows for that hour (and key).';
COMMENT ON COLUMN flows_hourly.bytes_tx IS 'Sum of flows.bytes_tx of those rows.';
COMMENT ON COLUMN flows_hourly.bytes_rx IS 'Sum of flows.bytes_rx of those rows.';

-- +goose StatementBegin
-- Recomputes flows_hourly for [from_hour, to_hour) from flows: the backfill
-- below, and for data loaded into flows without the upsert (COPY).
CREATE FUNCTION telemetry_flows_hourly_rebuild(from_hour timestamptz, to_hour timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM flows_hourly WHERE hour >= from_hour AND hour < to_hour;
    INSERT INTO flows_hourly (dim, hour, key, flows, bytes_tx, bytes_rx)
    SELECT d.dim, f.hour, d.key, count(*), sum(f.bytes_tx), sum(f.bytes_rx)
    FROM flows f
    CROSS JOIN LATERAL (VALUES ('all', ''), ('src_app', f.src_app), ('dest_app', f.dest_app), ('vpc_id', f.vpc_id)) AS d (dim, key)
    WHERE f.hour >= from_hour AND f.hour < to_hour
    GROUP BY 1, 2, 3;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION telemetry_flows_hourly_rebuild(timestamptz, timestamptz) IS
    'Recomputes flows_hourly for the hours [from_hour, to_hour) from flows (after loading flows by other means than POST /flows); answers the rows written.';

SELECT telemetry_flows_hourly_rebuild('-infinity', 'infinity');

CREATE INDEX flows_bytes_idx ON flows (hour, (bytes_tx::numeric + bytes_rx) DESC);

-- +goose Down
DROP INDEX IF EXISTS flows_bytes_idx;
DROP FUNCTION IF EXISTS telemetry_flows_hourly_rebuild(timestamptz, timestamptz);
DROP TABLE IF EXISTS flows_hourly;
