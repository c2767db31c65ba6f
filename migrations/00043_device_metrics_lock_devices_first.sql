-- Device reports and the delete of their device, in one lock order. The
-- reports' statement (telemetry_insert_device_metrics, migration 00033)
-- took the devices' row locks only in its foreign key checks, at the end of
-- the statement, after it had upserted device_metrics_latest. A DELETE of
-- the device in between (its row locked FOR UPDATE, its metrics deleted by
-- ON DELETE CASCADE) then waited for the report's latest row while the
-- report waited for the device's row: PostgreSQL aborted one of them as a
-- deadlock after deadlock_timeout, and the DELETE answered 500. And a report
-- that began while a DELETE was not yet committed saw the device, then
-- failed its foreign key check once the DELETE committed (23503), a 500 for
-- a lone report instead of the 404 docs/devices.md promises (found by an
-- audit: 11 clients reporting while the device was deleted, 2 DELETEs and 9
-- reports of 20 rounds answered 500). The function now locks the batch's
-- devices FOR KEY SHARE before it writes: a report and a DELETE of its
-- device wait for each other in one order (the device's row first), a
-- DELETE committed while the report waited leaves that device's rows out
-- (the report answers 404), and one that comes after waits for the report
-- to commit and deletes its rows. KEY SHARE is the lock the foreign key
-- checks took anyway, and conflicts with neither other reports nor a
-- rename. Otherwise unchanged; Down restores migration 00033's definition.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION telemetry_insert_device_metrics(
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
        -- The devices first, FOR KEY SHARE (migration 00043): a DELETE of
        -- one of them, committed meanwhile, leaves its rows out (404); one
        -- that comes later waits for this commit.
        WHERE t.device_id IN (SELECT d.id FROM devices d WHERE d.id = ANY (p_device_ids) FOR KEY SHARE)
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
    'Stores a batch of device metric reports (PUT /mrd/{id}/metrics; the arrays are the batch''s columns, one element per report): each row into device_metrics and, the newest per (device, name), into device_metrics_latest. Rows of unknown devices are left out; answers the devices that exist. Locks the devices FOR KEY SHARE before writing any row, so that a concurrent DELETE of a device neither deadlocks with it nor fails it (migration 00043). A function so that each connection plans the statement once (migration 00033).';


-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION telemetry_insert_device_metrics(
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

