-- What analysts read with psql (docs/analysts.md): a view of the device
-- metrics that are current now (the TTL applied, as the /mrd current
-- endpoints do in queries/devices.sql), and a read-only role,
-- telemetry_analyst, to give people a login with.
--
-- Roles belong to the whole cluster, not to one database: the role is created
-- only when missing (another database of the cluster may have created it, or
-- an administrator beforehand), and a migrating user without CREATEROLE gets
-- a NOTICE instead of a failure; docs/analysts.md says what an administrator
-- runs then. The grants are per database.

-- +goose Up
CREATE VIEW device_metrics_current AS
SELECT l.device_id,
       d.name AS device_name,
       l.name,
       l.time,
       l.type,
       l.value_num,
       l.value_text,
       l.units,
       l.slope,
       l.ttl,
       (l.time + make_interval(secs => l.ttl))::timestamptz AS expires_at
FROM device_metrics_latest AS l
JOIN devices AS d ON d.id = l.device_id
WHERE l.time + make_interval(secs => l.ttl) > now();

COMMENT ON VIEW device_metrics_current IS
    'The metrics each device reports now: the latest report per (device, name) from device_metrics_latest, left out once stale (time + ttl seconds has passed, at the start of the reading transaction). The same rule as GET /mrd/{device_id}/metrics/current.';
COMMENT ON COLUMN device_metrics_current.device_id IS 'The reporting device (devices.id).';
COMMENT ON COLUMN device_metrics_current.device_name IS 'The device''s name (devices.name).';
COMMENT ON COLUMN device_metrics_current.name IS 'Metric name, e.g. cpu_temp.';
COMMENT ON COLUMN device_metrics_current.time IS 'When the latest report was received (server clock).';
COMMENT ON COLUMN device_metrics_current.type IS 'Declared value type: string or a numeric type (int8 ... double).';
COMMENT ON COLUMN device_metrics_current.value_num IS 'The value when numeric; NULL for strings.';
COMMENT ON COLUMN device_metrics_current.value_text IS 'The value when type is string; NULL for numbers.';
COMMENT ON COLUMN device_metrics_current.units IS 'Units as reported.';
COMMENT ON COLUMN device_metrics_current.slope IS 'zero, positive, negative, both or derivative.';
COMMENT ON COLUMN device_metrics_current.ttl IS 'Seconds after time at which the report becomes stale.';
COMMENT ON COLUMN device_metrics_current.expires_at IS 'time + ttl: from then on the row leaves the view until the device reports again.';

-- +goose StatementBegin
-- telemetry_grant_analyst gives telemetry_analyst read access to every table
-- and view of the current schema, and to those the calling user creates there
-- later (default privileges: a later migration's tables are covered when the
-- same user runs it). It is a no-op with a NOTICE when the role does not
-- exist. Run it as the owner of the tables after creating the role by hand.
CREATE FUNCTION telemetry_grant_analyst() RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'telemetry_analyst') THEN
        RAISE NOTICE 'role telemetry_analyst does not exist: nothing granted (docs/analysts.md says how to create it)';
        RETURN false;
    END IF;
    -- PUBLIC has USAGE on the default schema "public"; another schema may
    -- need it granted.
    IF NOT has_schema_privilege('telemetry_analyst', current_schema(), 'USAGE') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO telemetry_analyst', current_schema());
    END IF;
    -- ALL TABLES covers views and materialized views too.
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO telemetry_analyst', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO telemetry_analyst', current_schema());
    RETURN true;
END
$$;
-- +goose StatementEnd

REVOKE EXECUTE ON FUNCTION telemetry_grant_analyst() FROM PUBLIC;

COMMENT ON FUNCTION telemetry_grant_analyst() IS
    'Grants telemetry_analyst SELECT on every table and view of the schema, now and (default privileges) on those the caller creates later; false with a NOTICE when the role does not exist. docs/analysts.md.';

-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'telemetry_analyst') THEN
        BEGIN
            CREATE ROLE telemetry_analyst NOLOGIN;
            -- The down migration drops only a role that this marks.
            COMMENT ON ROLE telemetry_analyst IS
                'Read-only access to the telemetry schema (SELECT on its tables and views); created by the telemetry migrations. Give a person a login with: CREATE ROLE alice LOGIN PASSWORD ''...'' IN ROLE telemetry_analyst.';
        EXCEPTION
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'role telemetry_analyst not created: % lacks CREATEROLE; an administrator can create it and then run SELECT telemetry_grant_analyst() as this user (docs/analysts.md)', current_user;
            WHEN duplicate_object OR unique_violation THEN
                -- Another database's migration created it meanwhile.
                NULL;
        END;
    END IF;
END
$$;
-- +goose StatementEnd

SELECT telemetry_grant_analyst();

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    role_oid oid;
BEGIN
    SELECT oid INTO role_oid FROM pg_roles WHERE rolname = 'telemetry_analyst';
    IF role_oid IS NULL THEN
        RETURN;
    END IF;
    -- Only what this user granted in this database is revoked: other
    -- databases keep theirs.
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE SELECT ON TABLES FROM telemetry_analyst', current_schema());
    EXECUTE format('REVOKE SELECT ON ALL TABLES IN SCHEMA %I FROM telemetry_analyst', current_schema());
    IF current_schema() <> 'public' THEN
        EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM telemetry_analyst', current_schema());
    END IF;
    -- The role goes only when the migrations created it, no database of the
    -- cluster still grants it anything (pg_shdepend is shared by all of
    -- them) and no person's login is a member of it.
    IF shobj_description(role_oid, 'pg_authid') LIKE '%created by the telemetry migrations%'
       AND NOT EXISTS (SELECT 1 FROM pg_shdepend WHERE refclassid = 'pg_authid'::regclass AND refobjid = role_oid)
       AND NOT EXISTS (SELECT 1 FROM pg_auth_members WHERE roleid = role_oid) THEN
        BEGIN
            DROP ROLE telemetry_analyst;
        EXCEPTION
            WHEN insufficient_privilege OR dependent_objects_still_exist THEN
                RAISE NOTICE 'role telemetry_analyst kept: %', SQLERRM;
        END;
    END IF;
END
$$;
-- +goose StatementEnd

DROP FUNCTION IF EXISTS telemetry_grant_analyst();
DROP VIEW IF EXISTS device_metrics_current;
