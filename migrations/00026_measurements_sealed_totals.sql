-- Per sealed unit (migration 00023) and per 5-minute bin of a sealed hour,
-- the elapsed histogram of all its rows, whatever their name and method:
-- the list's total with an elapsed filter below the slow-row threshold and
-- no name, method or app (CountMeasurementsAboveSealed,
-- queries/measurements_sealed.sql) reads a unit's higher buckets from one
-- row instead of its 125 cells at 10 M rows (2,250 cells for a week).
--
-- Written by the maintenance pass with the unit's cells, in the same
-- transaction (internal/store/postgres/measurements_sealed.go), one row for
-- every sealed unit and every bin of a sealed hour, empty ones included
-- (count 0, no histogram), so that a sealed unit without its row is one
-- sealed before this migration: the pass builds such units again
-- (MeasurementUnitsToSeal), and until then the count reads their rows.
-- Valid, like the cells, only while measurements_sealed holds the unit.

-- +goose Up
CREATE TABLE measurements_sealed_totals (
    unit_secs  integer     NOT NULL,
    unit_start timestamptz NOT NULL,
    count      bigint      NOT NULL,
    hist       bytea,
    CONSTRAINT measurements_sealed_totals_pkey PRIMARY KEY (unit_secs, unit_start),
    CONSTRAINT measurements_sealed_totals_unit CHECK (
        unit_secs IN (300, 3600, 21600, 86400) AND extract(epoch FROM unit_start)::bigint % unit_secs = 0),
    CONSTRAINT measurements_sealed_totals_hist CHECK (count >= 0 AND (count = 0) = (hist IS NULL))
);

COMMENT ON TABLE measurements_sealed_totals IS
    'Per sealed unit (measurements_sealed) and per 5-minute bin of a sealed hour: the number of measurements started in it and their elapsed histogram, all names, methods and apps. Valid only while measurements_sealed holds the unit (the hour, for a bin).';
COMMENT ON COLUMN measurements_sealed_totals.unit_secs IS '300 (a 5-minute bin of a sealed hour), 3600, 21600 or 86400.';
COMMENT ON COLUMN measurements_sealed_totals.unit_start IS 'Start of the bin, hour, quarter or day (UTC).';
COMMENT ON COLUMN measurements_sealed_totals.count IS 'Number of measurements started in it (0 for an empty bin or unit).';
COMMENT ON COLUMN measurements_sealed_totals.hist IS 'Their elapsed histogram, encoded as in measurements_hourly_hist (telemetry_hist_buckets decodes it); NULL when count is 0.';

-- +goose Down
DROP TABLE measurements_sealed_totals;
