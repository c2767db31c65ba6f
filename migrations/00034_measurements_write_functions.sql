-- The measurements write path's statements as PL/pgSQL functions, so that
-- each connection plans them once (as migration 00033 did for the device
-- reports' batch; docs/measurements.md, "Writing").
--
-- A batch (POST /api/measurements, the self-profiler's flush) runs about a
-- dozen small statements besides its COPY: the id reservation, the
-- histograms' lock, insert and write-back, four rollup upserts, the
-- collections' cells, the sealed units' lock and unseal. Sent as unnamed
-- statements (DATABASE_EXEC_MODE cache_describe, for PgBouncer's
-- transaction pooling: docs/scaling.md), each was parsed, analysed and
-- planned at every call: pgbench, one client, the hourly rollup upsert of 4
-- cells, 1,560-1,880 statements/s unnamed against 5,420-7,100 prepared. A
-- PL/pgSQL function keeps its statements' plans for the life of the server
-- connection, whichever client a pooler gives it to.
--
-- Each function's body is its statement as it was in queries/ (parameters
-- by position, in sqlc's order); the sqlc queries call them with the same
-- parameters and answer the same columns (a table function's columns are
-- named r_* so that they never shadow a table's column in the body).
-- Errors leave them with their own SQLSTATE. The unseal still runs as a
-- statement of its own after the shared locks: a VOLATILE function's
-- statement takes a new snapshot, so it sees a seal that committed while
-- the lock waited.

-- +goose Up
-- +goose StatementBegin
-- ReserveMeasurementIDs (queries/, as it was)
CREATE FUNCTION telemetry_reserve_measurement_ids(integer)
RETURNS TABLE (r_id bigint)
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    RETURN QUERY
    SELECT nextval('measurements_id_seq')::bigint AS id
    FROM generate_series(1, $1::int);
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- AddMeasurementRollup (queries/, as it was)
CREATE FUNCTION telemetry_add_measurement_rollup(timestamptz[], timestamptz[], text[], text[], text[], bigint[], float8[], float8[], float8[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    INSERT INTO measurements_hourly AS h
        (start_hour, end_hour, app, name, method, count, sum_elapsed, min_elapsed, max_elapsed)
    SELECT t.start_hour, t.end_hour, t.app, t.name, t.method, t.count, t.sum_elapsed, t.min_elapsed, t.max_elapsed
    FROM ROWS FROM (
        unnest($1::timestamptz[]),
        unnest($2::timestamptz[]),
        unnest($3::text[]),
        unnest($4::text[]),
        unnest($5::text[]),
        unnest($6::bigint[]),
        unnest($7::float8[]),
        unnest($8::float8[]),
        unnest($9::float8[])
    ) AS t (start_hour, end_hour, app, name, method, count, sum_elapsed, min_elapsed, max_elapsed)
    ORDER BY t.start_hour, t.end_hour, t.app, t.name, t.method
    ON CONFLICT (start_hour, end_hour, app, name, method) DO UPDATE
    SET count = h.count + excluded.count,
        sum_elapsed = h.sum_elapsed + excluded.sum_elapsed,
        min_elapsed = least(h.min_elapsed, excluded.min_elapsed),
        max_elapsed = greatest(h.max_elapsed, excluded.max_elapsed);
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- AddMeasurementDailyRollup (queries/, as it was)
CREATE FUNCTION telemetry_add_measurement_daily_rollup(timestamptz[], timestamptz[], text[], text[], text[], bigint[], float8[], float8[], float8[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    INSERT INTO measurements_daily AS d
        (start_day, end_day, app, name, method, count, sum_elapsed, min_elapsed, max_elapsed)
    SELECT t.start_day, t.end_day, t.app, t.name, t.method, t.count, t.sum_elapsed, t.min_elapsed, t.max_elapsed
    FROM ROWS FROM (
        unnest($1::timestamptz[]),
        unnest($2::timestamptz[]),
        unnest($3::text[]),
        unnest($4::text[]),
        unnest($5::text[]),
        unnest($6::bigint[]),
        unnest($7::float8[]),
        unnest($8::float8[]),
        unnest($9::float8[])
    ) AS t (start_day, end_day, app, name, method, count, sum_elapsed, min_elapsed, max_elapsed)
    ORDER BY t.start_day, t.end_day, t.app, t.name, t.method
    ON CONFLICT (start_day, end_day, app, name, method) DO UPDATE
    SET count = d.count + excluded.count,
        sum_elapsed = d.sum_elapsed + excluded.sum_elapsed,
        min_elapsed = least(d.min_elapsed, excluded.min_elapsed),
        max_elapsed = greatest(d.max_elapsed, excluded.max_elapsed);
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- AddMeasurementMethodRollup (queries/, as it was)
CREATE FUNCTION telemetry_add_measurement_method_rollup(timestamptz[], timestamptz[], text[], bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    INSERT INTO measurements_method_hourly AS c (start_hour, end_hour, method, count)
    SELECT t.start_hour, t.end_hour, t.method, t.count
    FROM ROWS FROM (
        unnest($1::timestamptz[]),
        unnest($2::timestamptz[]),
        unnest($3::text[]),
        unnest($4::bigint[])
    ) AS t (start_hour, end_hour, method, count)
    ORDER BY t.start_hour, t.end_hour, t.method
    ON CONFLICT (start_hour, end_hour, method) DO UPDATE
    SET count = c.count + excluded.count;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- AddMeasurement5minRollup (queries/, as it was)
CREATE FUNCTION telemetry_add_measurement_5min_rollup(timestamptz[], timestamptz[], bigint[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    INSERT INTO measurements_5min AS c (start_bin, end_bin, count)
    SELECT t.start_bin, t.end_bin, t.count
    FROM ROWS FROM (
        unnest($1::timestamptz[]),
        unnest($2::timestamptz[]),
        unnest($3::bigint[])
    ) AS t (start_bin, end_bin, count)
    ORDER BY t.start_bin, t.end_bin
    ON CONFLICT (start_bin, end_bin) DO UPDATE
    SET count = c.count + excluded.count;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- AddCollectionHTTPCells (queries/, as it was)
CREATE FUNCTION telemetry_add_collection_http_cells(timestamptz[], text[], text[], float8[], jsonb[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    WITH t AS MATERIALIZED (
        SELECT t.started_at, f.path, t.method, f.hits, t.elapsed * f.hits AS sum_elapsed, f.longest
        FROM ROWS FROM (
            unnest($1::timestamptz[]),
            unnest($2::text[]),
            unnest($3::text[]),
            unnest($4::float8[]),
            unnest($5::jsonb[])
        ) AS t (started_at, name, method, elapsed, context),
        LATERAL collection_http_fields(t.context, t.name, t.elapsed) AS f (path, hits, longest)
    ), minutes AS (
        INSERT INTO collection_http_minute AS c (minute, path, method, hits, sum_elapsed, max_elapsed)
        SELECT date_trunc('minute', t.started_at, 'UTC'), t.path, t.method, sum(t.hits), sum(t.sum_elapsed), max(t.longest)
        FROM t
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (minute, path, method) DO UPDATE
        SET hits = c.hits + excluded.hits, sum_elapsed = c.sum_elapsed + excluded.sum_elapsed,
            max_elapsed = greatest(c.max_elapsed, excluded.max_elapsed)
    )
    INSERT INTO collection_http_10s AS c (bin, path, method, hits, sum_elapsed, max_elapsed)
    SELECT date_bin('10 seconds', t.started_at, '1970-01-01 00:00:00+00'), t.path, t.method, sum(t.hits), sum(t.sum_elapsed), max(t.longest)
    FROM t
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (bin, path, method) DO UPDATE
    SET hits = c.hits + excluded.hits, sum_elapsed = c.sum_elapsed + excluded.sum_elapsed,
        max_elapsed = greatest(c.max_elapsed, excluded.max_elapsed);
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- LockMeasurementHourlyHist (queries/, as it was)
CREATE FUNCTION telemetry_lock_measurement_hourly_hist(timestamptz[], timestamptz[], text[], text[], text[])
RETURNS TABLE (r_start timestamptz, r_end timestamptz, r_app text, r_name text, r_method text, r_part smallint, r_hist bytea)
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    RETURN QUERY
    SELECT h.start_hour, h.end_hour, h.app, h.name, h.method, h.part, h.hist
    FROM ROWS FROM (
        unnest($1::timestamptz[]),
        unnest($2::timestamptz[]),
        unnest($3::text[]),
        unnest($4::text[]),
        unnest($5::text[])
    ) AS t (start_hour, end_hour, app, name, method)
    CROSS JOIN LATERAL (
        SELECT x.start_hour, x.end_hour, x.app, x.name, x.method, x.part, x.hist FROM measurements_hourly_hist x
        WHERE x.start_hour = t.start_hour AND x.end_hour = t.end_hour AND x.app = t.app AND x.name = t.name AND x.method = t.method
        ORDER BY x.part
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    ) AS h;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- InsertMeasurementHourlyHist (queries/, as it was)
CREATE FUNCTION telemetry_insert_measurement_hourly_hist(timestamptz[], timestamptz[], text[], text[], text[], smallint[], bytea[])
RETURNS TABLE (r_start timestamptz, r_end timestamptz, r_app text, r_name text, r_method text)
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    RETURN QUERY
    INSERT INTO measurements_hourly_hist (start_hour, end_hour, app, name, method, part, hist)
    SELECT t.start_hour, t.end_hour, t.app, t.name, t.method, t.part, t.hist
    FROM ROWS FROM (
        unnest($1::timestamptz[]),
        unnest($2::timestamptz[]),
        unnest($3::text[]),
        unnest($4::text[]),
        unnest($5::text[]),
        unnest($6::smallint[]),
        unnest($7::bytea[])
    ) AS t (start_hour, end_hour, app, name, method, part, hist)
    ON CONFLICT DO NOTHING
    RETURNING start_hour, end_hour, app, name, method;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- SetMeasurementHourlyHist (queries/, as it was)
CREATE FUNCTION telemetry_set_measurement_hourly_hist(timestamptz[], timestamptz[], text[], text[], text[], smallint[], bytea[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    UPDATE measurements_hourly_hist AS h SET hist = t.hist
    FROM ROWS FROM (
        unnest($1::timestamptz[]),
        unnest($2::timestamptz[]),
        unnest($3::text[]),
        unnest($4::text[]),
        unnest($5::text[]),
        unnest($6::smallint[]),
        unnest($7::bytea[])
    ) AS t (start_hour, end_hour, app, name, method, part, hist)
    WHERE h.start_hour = t.start_hour AND h.end_hour = t.end_hour AND h.app = t.app AND h.name = t.name AND h.method = t.method
      AND h.part = t.part;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- LockMeasurementDailyHist (queries/, as it was)
CREATE FUNCTION telemetry_lock_measurement_daily_hist(timestamptz[], timestamptz[], text[], text[], text[])
RETURNS TABLE (r_start timestamptz, r_end timestamptz, r_app text, r_name text, r_method text, r_part smallint, r_hist bytea)
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    RETURN QUERY
    SELECT d.start_day, d.end_day, d.app, d.name, d.method, d.part, d.hist
    FROM ROWS FROM (
        unnest($1::timestamptz[]),
        unnest($2::timestamptz[]),
        unnest($3::text[]),
        unnest($4::text[]),
        unnest($5::text[])
    ) AS t (start_day, end_day, app, name, method)
    CROSS JOIN LATERAL (
        SELECT x.start_day, x.end_day, x.app, x.name, x.method, x.part, x.hist FROM measurements_daily_hist x
        WHERE x.start_day = t.start_day AND x.end_day = t.end_day AND x.app = t.app AND x.name = t.name AND x.method = t.method
        ORDER BY x.part
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    ) AS d;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- InsertMeasurementDailyHist (queries/, as it was)
CREATE FUNCTION telemetry_insert_measurement_daily_hist(timestamptz[], timestamptz[], text[], text[], text[], smallint[], bytea[])
RETURNS TABLE (r_start timestamptz, r_end timestamptz, r_app text, r_name text, r_method text)
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    RETURN QUERY
    INSERT INTO measurements_daily_hist (start_day, end_day, app, name, method, part, hist)
    SELECT t.start_day, t.end_day, t.app, t.name, t.method, t.part, t.hist
    FROM ROWS FROM (
        unnest($1::timestamptz[]),
        unnest($2::timestamptz[]),
        unnest($3::text[]),
        unnest($4::text[]),
        unnest($5::text[]),
        unnest($6::smallint[]),
        unnest($7::bytea[])
    ) AS t (start_day, end_day, app, name, method, part, hist)
    ON CONFLICT DO NOTHING
    RETURNING start_day, end_day, app, name, method;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- SetMeasurementDailyHist (queries/, as it was)
CREATE FUNCTION telemetry_set_measurement_daily_hist(timestamptz[], timestamptz[], text[], text[], text[], smallint[], bytea[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    UPDATE measurements_daily_hist AS d SET hist = t.hist
    FROM ROWS FROM (
        unnest($1::timestamptz[]),
        unnest($2::timestamptz[]),
        unnest($3::text[]),
        unnest($4::text[]),
        unnest($5::text[]),
        unnest($6::smallint[]),
        unnest($7::bytea[])
    ) AS t (start_day, end_day, app, name, method, part, hist)
    WHERE d.start_day = t.start_day AND d.end_day = t.end_day AND d.app = t.app AND d.name = t.name AND d.method = t.method
      AND d.part = t.part;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- LockMeasurementUnitsShared (queries/, as it was)
CREATE FUNCTION telemetry_lock_measurement_units_shared(integer, integer[], integer, integer[], integer, integer[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    PERFORM count(pg_advisory_xact_lock_shared(k.lock_class, k.lock_id))
    FROM (
        SELECT $1::int AS lock_class, h.id AS lock_id, 0 AS kind FROM unnest($2::int[]) AS h (id)
        UNION ALL
        SELECT $3::int AS lock_class, q.id AS lock_id, 1 AS kind FROM unnest($4::int[]) AS q (id)
        UNION ALL
        SELECT $5::int AS lock_class, d.id AS lock_id, 2 AS kind FROM unnest($6::int[]) AS d (id)
        ORDER BY kind, lock_id
    ) AS k;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- UnsealMeasurementUnits (queries/, as it was)
CREATE FUNCTION telemetry_unseal_measurement_units(timestamptz[], timestamptz[], timestamptz[])
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    DELETE FROM measurements_sealed
    WHERE (unit_secs = 3600 AND unit_start = ANY($1::timestamptz[]))
       OR (unit_secs = 21600 AND unit_start = ANY($2::timestamptz[]))
       OR (unit_secs = 86400 AND unit_start = ANY($3::timestamptz[]));
END
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION telemetry_reserve_measurement_ids(integer) IS
    'The ingest''s statement ReserveMeasurementIDs (queries/*.sql) as a function, planned once per connection (migration 00034).';
COMMENT ON FUNCTION telemetry_add_measurement_rollup(timestamptz[], timestamptz[], text[], text[], text[], bigint[], float8[], float8[], float8[]) IS
    'The ingest''s statement AddMeasurementRollup (queries/*.sql) as a function, planned once per connection (migration 00034).';
COMMENT ON FUNCTION telemetry_add_measurement_daily_rollup(timestamptz[], timestamptz[], text[], text[], text[], bigint[], float8[], float8[], float8[]) IS
    'The ingest''s statement AddMeasurementDailyRollup (queries/*.sql) as a function, planned once per connection (migration 00034).';
COMMENT ON FUNCTION telemetry_add_measurement_method_rollup(timestamptz[], timestamptz[], text[], bigint[]) IS
    'The ingest''s statement AddMeasurementMethodRollup (queries/*.sql) as a function, planned once per connection (migration 00034).';
COMMENT ON FUNCTION telemetry_add_measurement_5min_rollup(timestamptz[], timestamptz[], bigint[]) IS
    'The ingest''s statement AddMeasurement5minRollup (queries/*.sql) as a function, planned once per connection (migration 00034).';
COMMENT ON FUNCTION telemetry_add_collection_http_cells(timestamptz[], text[], text[], float8[], jsonb[]) IS
    'The ingest''s statement AddCollectionHTTPCells (queries/*.sql) as a function, planned once per connection (migration 00034).';
COMMENT ON FUNCTION telemetry_lock_measurement_hourly_hist(timestamptz[], timestamptz[], text[], text[], text[]) IS
    'The ingest''s statement LockMeasurementHourlyHist (queries/*.sql) as a function, planned once per connection (migration 00034).';
COMMENT ON FUNCTION telemetry_insert_measurement_hourly_hist(timestamptz[], timestamptz[], text[], text[], text[], smallint[], bytea[]) IS
    'The ingest''s statement InsertMeasurementHourlyHist (queries/*.sql) as a function, planned once per connection (migration 00034).';
COMMENT ON FUNCTION telemetry_set_measurement_hourly_hist(timestamptz[], timestamptz[], text[], text[], text[], smallint[], bytea[]) IS
    'The ingest''s statement SetMeasurementHourlyHist (queries/*.sql) as a function, planned once per connection (migration 00034).';
COMMENT ON FUNCTION telemetry_lock_measurement_daily_hist(timestamptz[], timestamptz[], text[], text[], text[]) IS
    'The ingest''s statement LockMeasurementDailyHist (queries/*.sql) as a function, planned once per connection (migration 00034).';
COMMENT ON FUNCTION telemetry_insert_measurement_daily_hist(timestamptz[], timestamptz[], text[], text[], text[], smallint[], bytea[]) IS
    'The ingest''s statement InsertMeasurementDailyHist (queries/*.sql) as a function, planned once per connection (migration 00034).';
COMMENT ON FUNCTION telemetry_set_measurement_daily_hist(timestamptz[], timestamptz[], text[], text[], text[], smallint[], bytea[]) IS
    'The ingest''s statement SetMeasurementDailyHist (queries/*.sql) as a function, planned once per connection (migration 00034).';
COMMENT ON FUNCTION telemetry_lock_measurement_units_shared(integer, integer[], integer, integer[], integer, integer[]) IS
    'The ingest''s statement LockMeasurementUnitsShared (queries/*.sql) as a function, planned once per connection (migration 00034).';
COMMENT ON FUNCTION telemetry_unseal_measurement_units(timestamptz[], timestamptz[], timestamptz[]) IS
    'The ingest''s statement UnsealMeasurementUnits (queries/*.sql) as a function, planned once per connection (migration 00034).';

-- +goose Down
DROP FUNCTION telemetry_reserve_measurement_ids(integer);
DROP FUNCTION telemetry_add_measurement_rollup(timestamptz[], timestamptz[], text[], text[], text[], bigint[], float8[], float8[], float8[]);
DROP FUNCTION telemetry_add_measurement_daily_rollup(timestamptz[], timestamptz[], text[], text[], text[], bigint[], float8[], float8[], float8[]);
DROP FUNCTION telemetry_add_measurement_method_rollup(timestamptz[], timestamptz[], text[], bigint[]);
DROP FUNCTION telemetry_add_measurement_5min_rollup(timestamptz[], timestamptz[], bigint[]);
DROP FUNCTION telemetry_add_collection_http_cells(timestamptz[], text[], text[], float8[], jsonb[]);
DROP FUNCTION telemetry_lock_measurement_hourly_hist(timestamptz[], timestamptz[], text[], text[], text[]);
DROP FUNCTION telemetry_insert_measurement_hourly_hist(timestamptz[], timestamptz[], text[], text[], text[], smallint[], bytea[]);
DROP FUNCTION telemetry_set_measurement_hourly_hist(timestamptz[], timestamptz[], text[], text[], text[], smallint[], bytea[]);
DROP FUNCTION telemetry_lock_measurement_daily_hist(timestamptz[], timestamptz[], text[], text[], text[]);
DROP FUNCTION telemetry_insert_measurement_daily_hist(timestamptz[], timestamptz[], text[], text[], text[], smallint[], bytea[]);
DROP FUNCTION telemetry_set_measurement_daily_hist(timestamptz[], timestamptz[], text[], text[], text[], smallint[], bytea[]);
DROP FUNCTION telemetry_lock_measurement_units_shared(integer, integer[], integer, integer[], integer, integer[]);
DROP FUNCTION telemetry_unseal_measurement_units(timestamptz[], timestamptz[], timestamptz[]);
