-- A collection's CPU, GC and memory figures read from hourly cells of the
-- runtime samples, per instance, for the window's whole hours, and from the
-- samples themselves only at its edges.
--
-- GET /appmetrics/api/v1/collections/{id} aggregated every sample of every
-- instance in its window (CollectionRuntime): about 17,000 a day per
-- instance at SELF_SAMPLE_INTERVAL=5s, up to RUNTIME_SAMPLES_RETENTION
-- (7 days: 121,000 per instance). At two instances a week's window was
-- 242,000 samples, 0.5 s of one core a read, most of it the aggregate (and a
-- count of the distinct instances, which sorted them all on disk), 1.7 s a
-- read with 4 clients (BenchmarkCollectionsScale, docs/collections.md, "At
-- volume").
--
-- runtime_samples_hourly holds, per (UTC hour of the sample's time,
-- instance), the sums the figures are made of, as if the whole interval of
-- each of its samples were inside the window: weighted CPU sums and their
-- weights, peaks, GC CPU seconds and GOMAXPROCS-weighted seconds, heap and
-- RSS peaks, and first_start, the earliest start of their intervals (time -
-- interval_seconds). A read takes a cell for a whole hour of its window
-- when first_start is not before the window's start (then every sample of
-- the cell counts with its whole interval, as the rows would), the samples
-- of the partial hours at both ends and of any other cell from the rows
-- (queries/collections.sql, CollectionRuntime). Every sample inserted
-- into runtime_samples is added to its cell by a trigger
-- (runtime_samples_hourly_cell): by this release's InsertRuntimeSample, by
-- a release before this migration still running beside it during a rolling
-- upgrade (docs/scaling.md: its instances' samples would otherwise be
-- missing from the whole hours this release reads from the cells), or by
-- an INSERT of an analyst's. The maintenance pass
-- expires the cells with the samples (RUNTIME_SAMPLES_RETENTION, whole
-- hours); telemetry_runtime_hourly_rebuild builds the cells of a range again
-- from the samples (for samples loaded straight into the table), and builds
-- them here for the samples already stored.
--
-- A plain table with TimescaleDB too: 24 rows a day per instance.

-- +goose Up
CREATE TABLE runtime_samples_hourly (
    hour           timestamptz      NOT NULL,
    instance_id    uuid             NOT NULL,
    samples        bigint           NOT NULL,
    first_start    timestamptz      NOT NULL,
    system_wsum    double precision NOT NULL,
    system_w       double precision NOT NULL,
    system_peak    double precision,
    process_wsum   double precision NOT NULL,
    process_w      double precision NOT NULL,
    process_peak   double precision,
    gc_cpu_seconds double precision NOT NULL,
    gomaxprocs_w   double precision NOT NULL,
    heap_peak      bigint           NOT NULL,
    rss_peak       bigint,
    CONSTRAINT runtime_samples_hourly_pkey PRIMARY KEY (hour, instance_id),
    CONSTRAINT runtime_samples_hourly_samples_positive CHECK (samples > 0)
);

COMMENT ON TABLE runtime_samples_hourly IS
    'Hourly cells of runtime_samples per instance: the sums a collection''s CPU, GC and memory figures are made of, for the whole hours of its window (the edges are read from the samples). Written with each sample; expired with the samples.';
COMMENT ON COLUMN runtime_samples_hourly.hour IS 'The UTC hour of the samples'' time.';
COMMENT ON COLUMN runtime_samples_hourly.instance_id IS 'The server process (runtime_samples.instance_id).';
COMMENT ON COLUMN runtime_samples_hourly.samples IS 'Samples summed here.';
COMMENT ON COLUMN runtime_samples_hourly.first_start IS 'The earliest start of the samples'' intervals (time - interval_seconds): the cell counts in a window that starts at or before it.';
COMMENT ON COLUMN runtime_samples_hourly.system_wsum IS 'sum(interval_seconds * system_cpu) over the samples with a system_cpu.';
COMMENT ON COLUMN runtime_samples_hourly.system_w IS 'sum(interval_seconds) over the samples with a system_cpu.';
COMMENT ON COLUMN runtime_samples_hourly.system_peak IS 'max(system_cpu); NULL when no sample had one.';
COMMENT ON COLUMN runtime_samples_hourly.process_wsum IS 'sum(interval_seconds * process_cpu) over the samples with a process_cpu.';
COMMENT ON COLUMN runtime_samples_hourly.process_w IS 'sum(interval_seconds) over the samples with a process_cpu.';
COMMENT ON COLUMN runtime_samples_hourly.process_peak IS 'max(process_cpu); NULL when no sample had one.';
COMMENT ON COLUMN runtime_samples_hourly.gc_cpu_seconds IS 'sum(gc_cpu_seconds).';
COMMENT ON COLUMN runtime_samples_hourly.gomaxprocs_w IS 'sum(interval_seconds * gomaxprocs): the CPU seconds available to Go code.';
COMMENT ON COLUMN runtime_samples_hourly.heap_peak IS 'max(heap_live_bytes).';
COMMENT ON COLUMN runtime_samples_hourly.rss_peak IS 'max(rss_bytes); NULL when no sample had one.';

-- +goose StatementBegin
-- telemetry_runtime_hourly_rebuild builds the cells of the hours [since,
-- until) touches again from their samples (since rounded down, until up, to
-- the hour; either may be infinite): for samples written straight into
-- runtime_samples, and by this migration for those already there.
CREATE FUNCTION telemetry_runtime_hourly_rebuild(since timestamptz, until timestamptz) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    lo timestamptz := since;
    hi timestamptz := until;
BEGIN
    IF isfinite(since) THEN
        lo := date_bin('1 hour', since, '1970-01-01 00:00:00+00');
    END IF;
    IF isfinite(until) AND date_bin('1 hour', until, '1970-01-01 00:00:00+00') <> until THEN
        hi := date_bin('1 hour', until, '1970-01-01 00:00:00+00') + interval '1 hour';
    END IF;
    DELETE FROM runtime_samples_hourly c WHERE c.hour >= lo AND c.hour < hi;
    INSERT INTO runtime_samples_hourly (hour, instance_id, samples, first_start, system_wsum, system_w, system_peak,
        process_wsum, process_w, process_peak, gc_cpu_seconds, gomaxprocs_w, heap_peak, rss_peak)
    SELECT date_bin('1 hour', r.time, '1970-01-01 00:00:00+00'), r.instance_id, count(*),
           min(r.time - make_interval(secs => r.interval_seconds)),
           coalesce(sum(r.interval_seconds * r.system_cpu), 0),
           coalesce(sum(r.interval_seconds) FILTER (WHERE r.system_cpu IS NOT NULL), 0), max(r.system_cpu),
           coalesce(sum(r.interval_seconds * r.process_cpu), 0),
           coalesce(sum(r.interval_seconds) FILTER (WHERE r.process_cpu IS NOT NULL), 0), max(r.process_cpu),
           sum(r.gc_cpu_seconds), sum(r.interval_seconds * r.gomaxprocs), max(r.heap_live_bytes), max(r.rss_bytes)
    FROM runtime_samples r
    WHERE r.time >= lo AND r.time < hi
    GROUP BY 1, 2;
END
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION telemetry_runtime_hourly_rebuild(timestamptz, timestamptz) IS
    'Builds the runtime_samples_hourly cells of the hours of [since, until) again from runtime_samples.';

-- +goose StatementBegin
-- telemetry_runtime_sample_cell adds an inserted sample to its cell, as
-- telemetry_runtime_hourly_rebuild sums a cell's samples. One sample every
-- SELF_SAMPLE_INTERVAL (5 s) per instance, each instance its own cells: no
-- two writers meet on a cell.
CREATE FUNCTION telemetry_runtime_sample_cell() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO runtime_samples_hourly AS c (hour, instance_id, samples, first_start, system_wsum, system_w, system_peak,
        process_wsum, process_w, process_peak, gc_cpu_seconds, gomaxprocs_w, heap_peak, rss_peak)
    VALUES (date_bin('1 hour', NEW.time, '1970-01-01 00:00:00+00'), NEW.instance_id, 1,
            NEW.time - make_interval(secs => NEW.interval_seconds),
            coalesce(NEW.interval_seconds * NEW.system_cpu, 0),
            CASE WHEN NEW.system_cpu IS NULL THEN 0 ELSE NEW.interval_seconds END, NEW.system_cpu,
            coalesce(NEW.interval_seconds * NEW.process_cpu, 0),
            CASE WHEN NEW.process_cpu IS NULL THEN 0 ELSE NEW.interval_seconds END, NEW.process_cpu,
            NEW.gc_cpu_seconds, NEW.interval_seconds * NEW.gomaxprocs, NEW.heap_live_bytes, NEW.rss_bytes)
    ON CONFLICT (hour, instance_id) DO UPDATE
    SET samples        = c.samples + 1,
        first_start    = least(c.first_start, excluded.first_start),
        system_wsum    = c.system_wsum + excluded.system_wsum,
        system_w       = c.system_w + excluded.system_w,
        system_peak    = greatest(c.system_peak, excluded.system_peak),
        process_wsum   = c.process_wsum + excluded.process_wsum,
        process_w      = c.process_w + excluded.process_w,
        process_peak   = greatest(c.process_peak, excluded.process_peak),
        gc_cpu_seconds = c.gc_cpu_seconds + excluded.gc_cpu_seconds,
        gomaxprocs_w   = c.gomaxprocs_w + excluded.gomaxprocs_w,
        heap_peak      = greatest(c.heap_peak, excluded.heap_peak),
        rss_peak       = greatest(c.rss_peak, excluded.rss_peak);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION telemetry_runtime_sample_cell() IS
    'Trigger function: adds a sample inserted into runtime_samples to its runtime_samples_hourly cell.';

-- The trigger first, then the cells of the samples already stored: the
-- trigger's lock holds inserts back until this migration commits, so no
-- sample falls between the two.
CREATE TRIGGER runtime_samples_hourly_cell AFTER INSERT ON runtime_samples
    FOR EACH ROW EXECUTE FUNCTION telemetry_runtime_sample_cell();

SELECT telemetry_runtime_hourly_rebuild('-infinity', 'infinity');

-- +goose Down
DROP TRIGGER IF EXISTS runtime_samples_hourly_cell ON runtime_samples;
DROP FUNCTION IF EXISTS telemetry_runtime_sample_cell();
DROP FUNCTION IF EXISTS telemetry_runtime_hourly_rebuild(timestamptz, timestamptz);
DROP TABLE IF EXISTS runtime_samples_hourly;
