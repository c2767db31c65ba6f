-- Optional TimescaleDB support. When the server has the extension installed
-- and preloaded, it is created and later migrations turn their time-series
-- tables into hypertables; otherwise they stay plain PostgreSQL tables with
-- the same columns and indexes.

-- +goose Up
-- +goose StatementBegin
DO $$
DECLARE
    preloaded boolean;
BEGIN
    -- CREATE EXTENSION fails ("must be preloaded") unless the library is in
    -- shared_preload_libraries, even when pg_available_extensions lists it.
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        RETURN;
    END IF;
    BEGIN
        preloaded := current_setting('shared_preload_libraries') ~ '(^|[\s,])"?timescaledb"?([\s,]|$)';
    EXCEPTION WHEN insufficient_privilege THEN
        -- Only superusers (and pg_read_all_settings) may read that setting;
        -- the library registers its own settings once loaded.
        preloaded := current_setting('timescaledb.license', true) IS NOT NULL;
    END;
    IF preloaded THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS timescaledb;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'timescaledb is available but this user may not create it: the tables stay plain PostgreSQL tables (a superuser can run CREATE EXTENSION timescaledb in this database before migrating)';
        END;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION telemetry_timescaledb_enabled() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION telemetry_timescaledb_enabled() IS
    'True when the timescaledb extension is installed in this database, so time-series tables are hypertables.';

-- +goose StatementBegin
-- telemetry_create_hypertable makes tbl a hypertable partitioned on
-- time_column when TimescaleDB is enabled, and does nothing otherwise.
-- Default indexes are not created: every table declares its own, and
-- TimescaleDB's default name (<table>_<column>_idx) would clash with them.
CREATE FUNCTION telemetry_create_hypertable(tbl regclass, time_column name, chunk interval)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT telemetry_timescaledb_enabled() THEN
        RETURN false;
    END IF;
    PERFORM create_hypertable(tbl, by_range(time_column, chunk), create_default_indexes => false);
    RETURN true;
END
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION telemetry_create_hypertable(regclass, name, interval) IS
    'Turns a table into a TimescaleDB hypertable when the extension is enabled; a no-op on plain PostgreSQL.';

-- +goose Down
DROP FUNCTION IF EXISTS telemetry_create_hypertable(regclass, name, interval);
DROP FUNCTION IF EXISTS telemetry_timescaledb_enabled();
-- The extension is left in place: other databases objects may depend on it.
