-- Data lifecycle (docs/lifecycle.md): what the maintenance pass
-- (`telemetry maintain`, or serve every MAINTENANCE_INTERVAL) needs of the
-- schema.
--
-- maintenance_lease is the one-pass-at-a-time lock. It is a row, not a
-- session advisory lock: behind PgBouncer in transaction pooling mode
-- consecutive transactions of one client may run on different server
-- connections, so a session lock taken in one would be held (and released)
-- by whoever else gets that connection. A row updated by single atomic
-- statements works through any pooler.
--
-- On plain PostgreSQL, device_metrics gets an index on time: the pass
-- deletes expired reports oldest first in small batches, and without it
-- each batch would scan the table. Hypertables need none (whole chunks are
-- dropped).
--
-- With TimescaleDB, the hypertables get their native compression settings
-- (segmentby, orderby: docs/lifecycle.md explains each choice); the pass
-- compresses chunks older than COMPRESS_AFTER. events stays uncompressed:
-- two rows per load-test run, removed run by run.

-- +goose Up
CREATE TABLE maintenance_lease (
    name        text        NOT NULL,
    holder      uuid        NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    CONSTRAINT maintenance_lease_pkey PRIMARY KEY (name)
);

COMMENT ON TABLE maintenance_lease IS
    'Who runs the maintenance pass (retention and compression) now: at most one row per name, taken by an atomic INSERT .. ON CONFLICT DO UPDATE .. WHERE expires_at <= now(), renewed while the pass works and deleted at its end. A crashed pass''s lease lapses at expires_at.';
COMMENT ON COLUMN maintenance_lease.name IS 'The work the lease is for (maintenance).';
COMMENT ON COLUMN maintenance_lease.holder IS 'Random id of the pass holding the lease.';
COMMENT ON COLUMN maintenance_lease.acquired_at IS 'When the holder took the lease.';
COMMENT ON COLUMN maintenance_lease.expires_at IS 'When the lease lapses unless renewed; another pass may take it from then on.';

-- +goose StatementBegin
DO $$
BEGIN
    IF NOT telemetry_timescaledb_enabled() THEN
        CREATE INDEX device_metrics_time_idx ON device_metrics (time);
        RETURN;
    END IF;
    -- The series (device, metric) is the unit every history query reads:
    -- one segment per series, newest first within it.
    ALTER TABLE device_metrics SET (timescaledb.compress,
        timescaledb.compress_segmentby = 'device_id, name', timescaledb.compress_orderby = 'time DESC');
    -- One segment per (app, route): the grouped view and a route's
    -- drill-down read one segment; started_at order keeps window edges
    -- prunable by the batches' min/max metadata.
    ALTER TABLE measurements SET (timescaledb.compress,
        timescaledb.compress_segmentby = 'app, name', timescaledb.compress_orderby = 'started_at DESC, id DESC');
    -- One process's series per segment, as the collections read it.
    ALTER TABLE runtime_samples SET (timescaledb.compress,
        timescaledb.compress_segmentby = 'instance_id', timescaledb.compress_orderby = 'time DESC');
    -- GET /flows reads one hour in key order: ordering by the key keeps an
    -- hour's rows in few batches; vpc_id (few values) segments them.
    ALTER TABLE flows SET (timescaledb.compress,
        timescaledb.compress_segmentby = 'vpc_id', timescaledb.compress_orderby = 'hour, src_app, dest_app');
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    IF NOT telemetry_timescaledb_enabled() THEN
        DROP INDEX IF EXISTS device_metrics_time_idx;
        RETURN;
    END IF;
    FOREACH t IN ARRAY ARRAY['device_metrics', 'measurements', 'runtime_samples', 'flows'] LOOP
        PERFORM decompress_chunk(c, if_compressed => true) FROM show_chunks(t::regclass) AS c;
        EXECUTE format('ALTER TABLE %I SET (timescaledb.compress = false)', t);
    END LOOP;
END
$$;
-- +goose StatementEnd
DROP TABLE IF EXISTS maintenance_lease;
