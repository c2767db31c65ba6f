-- Device reports' statement as a PL/pgSQL function, so that each connection
-- plans it once (queries/devices.sql, InsertDeviceMetrics).
--
-- The service sends its queries as unnamed statements (DATABASE_EXEC_MODE
-- cache_describe, so that PgBouncer in transaction pooling mode works with
-- the URL as written: docs/scaling.md), and PostgreSQL then parses, analyses
-- and plans every statement at every call. For this one, a CTE of three
-- parts (the batch, the history insert, the latest-value upsert), that was
-- most of its cost: pgbench, 4 clients, a batch of 2 reports (the mixed
-- load's size), synchronous_commit off so that only the statement counts,
-- 2,080-2,150 statements/s sent as unnamed statements against 5,840-5,890
-- prepared (docs/devices.md, "Planned once per connection"). A PL/pgSQL
-- function keeps its statements' plans for the life of the server
-- connection, whichever client the pooler gives it to: called as an unnamed
-- statement it ran 4,370-4,660/s in the same minutes.
--
-- The body is the statement as it was, the batch's arrays as parameters:
-- rows of unknown devices are left out and the answer lists the devices
-- that exist; errors (23503 when a device is deleted meanwhile, 23514 for
-- a refused value) come out of the function with their own SQLSTATE, so
-- the writer's row-by-row retry works as before. SECURITY INVOKER (the
-- default): a caller needs the privileges on device_metrics and
-- device_metrics_latest it needed before; the analysts' role has none.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION telemetry_insert_device_metrics(
    p_times timestamptz[], p_device_ids text[], p_names text[], p_types text[], p_value_nums float8[],
    p_value_texts text[], p_units text[], p_slopes text[], p_ttls integer[])
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    RETURN QUERY
    WITH batch AS (
        SELECT t.time, t.device_id, t.name, t.type,
               CASE WHEN t.type = 'string' THEN NULL ELSE t.value_num END AS value_num,
               CASE WHEN t.type = 'string' THEN t.value_text ELSE NULL END AS value_text,
               t.units, t.slope, t.ttl, t.ord
        FROM ROWS FROM (
            unnest(p_times),
            unnest(p_device_ids),
            unnest(p_names),
            unnest(p_types),
            unnest(p_value_nums),
            unnest(p_value_texts),
            unnest(p_units),
            unnest(p_slopes),
            unnest(p_ttls)
        ) WITH ORDINALITY AS t (time, device_id, name, type, value_num, value_text, units, slope, ttl, ord)
        WHERE t.device_id IN (SELECT d.id FROM devices d WHERE d.id = ANY (p_device_ids))
    ),
    history AS (
        INSERT INTO device_metrics (time, device_id, name, type, value_num, value_text, units, slope, ttl)
        SELECT b.time, b.device_id, b.name, b.type, b.value_num, b.value_text, b.units, b.slope, b.ttl
        FROM batch b
    ),
    latest AS (
        INSERT INTO device_metrics_latest AS l (device_id, name, time, type, value_num, value_text, units, slope, ttl)
        SELECT DISTINCT ON (b.device_id, b.name)
               b.device_id, b.name, b.time, b.type, b.value_num, b.value_text, b.units, b.slope, b.ttl
        FROM batch b
        ORDER BY b.device_id, b.name, b.time DESC, b.ord DESC
        ON CONFLICT (device_id, name) DO UPDATE
        SET time = excluded.time, type = excluded.type, value_num = excluded.value_num,
            value_text = excluded.value_text, units = excluded.units, slope = excluded.slope, ttl = excluded.ttl
        WHERE l.time <= excluded.time
    )
    SELECT DISTINCT b.device_id::text FROM batch b;
END
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION telemetry_insert_device_metrics(timestamptz[], text[], text[], text[], float8[], text[], text[], text[], integer[]) IS
    'Stores a batch of device metric reports (PUT /mrd/{id}/metrics; the arrays are the batch''s columns, one element per report): each row into device_metrics and, the newest per (device, name), into device_metrics_latest. Rows of unknown devices are left out; answers the devices that exist. A function so that each connection plans the statement once (migration 00033).';

-- +goose Down
DROP FUNCTION telemetry_insert_device_metrics(timestamptz[], text[], text[], text[], float8[], text[], text[], text[], integer[]);
