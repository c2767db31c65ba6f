-- Metrics collections (seed: appmetrics). Each server process samples its
-- own CPU, garbage collection and memory into runtime_samples (a hypertable
-- when TimescaleDB is enabled); a collection is a window opened at create or
-- clear time, read back by aggregating the samples of every instance and the
-- service's own measurements (app = 'telemetry') since the window opened.
-- docs/collections.md says how each figure is computed.

-- +goose Up
CREATE TABLE runtime_samples (
    time             timestamptz      NOT NULL,
    instance_id      uuid             NOT NULL,
    interval_seconds double precision NOT NULL,
    process_cpu      double precision,
    system_cpu       double precision,
    gc_cpu_seconds   double precision NOT NULL,
    gc_pause_seconds double precision NOT NULL,
    gc_cycles        bigint           NOT NULL,
    gomaxprocs       integer          NOT NULL,
    heap_live_bytes  bigint           NOT NULL,
    go_memory_bytes  bigint           NOT NULL,
    rss_bytes        bigint,
    goroutines       bigint           NOT NULL,
    CONSTRAINT runtime_samples_pkey PRIMARY KEY (instance_id, time),
    CONSTRAINT runtime_samples_interval_positive CHECK (interval_seconds > 0),
    CONSTRAINT runtime_samples_process_cpu_fraction CHECK (process_cpu BETWEEN 0 AND 1),
    CONSTRAINT runtime_samples_system_cpu_fraction CHECK (system_cpu BETWEEN 0 AND 1),
    CONSTRAINT runtime_samples_gc_nonnegative CHECK (gc_cpu_seconds >= 0 AND gc_pause_seconds >= 0 AND gc_cycles >= 0),
    CONSTRAINT runtime_samples_gomaxprocs_positive CHECK (gomaxprocs > 0),
    CONSTRAINT runtime_samples_bytes_nonnegative CHECK (heap_live_bytes >= 0 AND go_memory_bytes >= 0 AND rss_bytes >= 0)
);

COMMENT ON TABLE runtime_samples IS
    'Runtime figures of the service''s own processes: each instance (server process) writes one row every SELF_SAMPLE_INTERVAL (default 5 s), plus one about a second after it starts. A row describes the interval (time - interval_seconds, time] of one instance. Read by the collections API (GET /appmetrics/api/v1/collections/{id}).';
COMMENT ON COLUMN runtime_samples.time IS 'When the sample was taken: the end of the interval it describes. Partition column.';
COMMENT ON COLUMN runtime_samples.instance_id IS 'Random id the server process drew at start: rows of one id form one process''s series.';
COMMENT ON COLUMN runtime_samples.interval_seconds IS 'Wall-clock seconds since the instance''s previous reading (the interval the deltas below cover); always > 0.';
COMMENT ON COLUMN runtime_samples.process_cpu IS 'Fraction 0..1 of the machine''s whole CPU capacity (all cores) this process used during the interval: delta of utime+stime (/proc/self/stat) over delta of all CPU time (/proc/stat). NULL where /proc is not readable.';
COMMENT ON COLUMN runtime_samples.system_cpu IS 'Fraction 0..1 of the machine''s CPU time that was busy (neither idle nor iowait) during the interval, from /proc/stat. NULL where /proc is not readable.';
COMMENT ON COLUMN runtime_samples.gc_cpu_seconds IS 'CPU seconds the Go garbage collector used during the interval: delta of runtime/metrics /cpu/classes/gc/total:cpu-seconds (an estimate the runtime updates at the end of each GC cycle, so it arrives in steps).';
COMMENT ON COLUMN runtime_samples.gc_pause_seconds IS 'Wall-clock seconds the process was stopped for garbage collection during the interval, from the runtime/metrics histogram /sched/pauses/total/gc:seconds (bucket midpoints: an estimate within a few percent).';
COMMENT ON COLUMN runtime_samples.gc_cycles IS 'Garbage collection cycles completed during the interval (/gc/cycles/total:gc-cycles delta).';
COMMENT ON COLUMN runtime_samples.gomaxprocs IS 'GOMAXPROCS at the time of the sample: the CPU capacity available to Go code (gc_cpu_seconds is measured against interval_seconds * gomaxprocs).';
COMMENT ON COLUMN runtime_samples.heap_live_bytes IS 'Heap bytes live after the most recent garbage collection (/gc/heap/live:bytes).';
COMMENT ON COLUMN runtime_samples.go_memory_bytes IS 'All memory the Go runtime has mapped, heap and otherwise (/memory/classes/total:bytes).';
COMMENT ON COLUMN runtime_samples.rss_bytes IS 'Resident set size of the process in bytes (/proc/self/stat rss times the page size). NULL where /proc is not readable.';
COMMENT ON COLUMN runtime_samples.goroutines IS 'Live goroutines (/sched/goroutines:goroutines).';

-- A collection reads every instance's samples since its start.
CREATE INDEX runtime_samples_window_idx ON runtime_samples (time);

SELECT telemetry_create_hypertable('runtime_samples', 'time', INTERVAL '1 day');

CREATE TABLE collections (
    id         bigint      GENERATED ALWAYS AS IDENTITY (START WITH 0 MINVALUE 0),
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT collections_pkey PRIMARY KEY (id)
);

COMMENT ON TABLE collections IS
    'Metrics collections (appmetrics): windows over the service''s own runtime samples and requests. At most 10 rows at a time: POST /appmetrics/api/v1/collections locks this table, counts and inserts in one transaction.';
COMMENT ON COLUMN collections.id IS 'Collection id (URI collections/<id>): from an identity sequence starting at 0, so ids are never reused, even after a delete.';
COMMENT ON COLUMN collections.started_at IS 'Start of the window: creation time, moved to the time of each clear (PUT).';
COMMENT ON COLUMN collections.created_at IS 'When the collection was created; a clear leaves it unchanged.';

-- +goose Down
DROP TABLE IF EXISTS collections;
DROP TABLE IF EXISTS runtime_samples;
