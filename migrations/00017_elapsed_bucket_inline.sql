-- telemetry_elapsed_bucket (migration 00010) without STRICT, so that the
-- planner inlines it. PostgreSQL inlines a STRICT SQL function only when its
-- body is strict too, and a CASE is not: until now every row of a window's
-- partial hour paid a call of the SQL function executor in the grouped
-- measurements' percentiles (queries/measurements_percentiles.sql). The
-- result is the same for every input, NULL included (NULL <= 1e-6 is NULL, so
-- the ELSE branch computes ln(NULL), NULL).

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION telemetry_elapsed_bucket(elapsed double precision) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE WHEN elapsed <= 1e-6::float8 THEN 0
                 ELSE least(1 + floor(ln(elapsed / 1e-6::float8) / ln(1.05::float8)), 32767) END)::smallint
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION telemetry_elapsed_bucket(elapsed double precision) RETURNS smallint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (CASE WHEN elapsed <= 1e-6::float8 THEN 0
                 ELSE least(1 + floor(ln(elapsed / 1e-6::float8) / ln(1.05::float8)), 32767) END)::smallint
$$;
-- +goose StatementEnd
