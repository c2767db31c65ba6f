-- Load-test events (seed: Metrics-Consumer, the Locust metrics bridge).
-- Every register and commit is an event row in the events hypertable; the
-- small plain table event_runs holds each run's state, so that "one commit
-- per run" is a conditional UPDATE of one row (a hypertable cannot carry a
-- unique key on uuid alone). The view event_request_stats flattens the
-- per-endpoint rows of Locust's requestStats.stats[] for analysts.

-- +goose Up
CREATE TABLE event_runs (
    uuid          uuid             NOT NULL,
    host          text             NOT NULL,
    target_host   text,
    mode          text,
    clients       bigint,
    hatch_rate    double precision,
    requests      bigint,
    state         text             NOT NULL DEFAULT 'running',
    started_at    timestamptz      NOT NULL,
    ended_at      timestamptz,
    registered_at timestamptz      NOT NULL DEFAULT now(),
    committed_at  timestamptz,
    CONSTRAINT event_runs_pkey PRIMARY KEY (uuid),
    CONSTRAINT event_runs_state_valid CHECK (state IN ('running', 'committed')),
    -- A committed run has its end; a running one has none.
    CONSTRAINT event_runs_state_ended CHECK ((state = 'committed') = (ended_at IS NOT NULL AND committed_at IS NOT NULL)),
    CONSTRAINT event_runs_mode_valid CHECK (mode IN ('single', 'cluster')),
    CONSTRAINT event_runs_host_length CHECK (length(host) BETWEEN 1 AND 255),
    CONSTRAINT event_runs_clients_nonnegative CHECK (clients >= 0),
    CONSTRAINT event_runs_hatch_rate_nonnegative CHECK (hatch_rate >= 0),
    CONSTRAINT event_runs_requests_nonnegative CHECK (requests >= 0)
);

-- GET /apiv0.1/states: newest first, ties broken by uuid.
CREATE INDEX event_runs_recent_idx ON event_runs (started_at DESC, uuid DESC);
-- GET /apiv0.1/events/isrunning reads only the running runs.
CREATE INDEX event_runs_running_idx ON event_runs (started_at) WHERE state = 'running';

COMMENT ON TABLE event_runs IS
    'One row per load-test run (Locust): registered by POST /apiv0.1/events/register (state running), closed once by POST /apiv0.1/events/commit (state committed). The events table holds the payloads.';
COMMENT ON COLUMN event_runs.uuid IS 'Run id handed out by register; the client quotes it on commit.';
COMMENT ON COLUMN event_runs.host IS 'The load generator that registered the run (the payload''s host, or hostname for the Locust client).';
COMMENT ON COLUMN event_runs.target_host IS 'The system under test, e.g. http://10.0.0.5:8089 (measurement.tags.targetHost, top-level targetHost or tags.hostname).';
COMMENT ON COLUMN event_runs.mode IS 'Locust mode: single or cluster; NULL when the client did not say.';
COMMENT ON COLUMN event_runs.clients IS 'Number of concurrent simulated users (measurement.fields.clients).';
COMMENT ON COLUMN event_runs.hatch_rate IS 'Users spawned per second (measurement.fields.hatchRate).';
COMMENT ON COLUMN event_runs.requests IS 'Number of requests asked for (measurement.fields.requests); NULL when unlimited or unset.';
COMMENT ON COLUMN event_runs.state IS 'running until the one commit, then committed.';
COMMENT ON COLUMN event_runs.started_at IS 'Start of the run: the register payload''s startedAt, or the time of receipt when absent.';
COMMENT ON COLUMN event_runs.ended_at IS 'End of the run: the commit payload''s startedAt (the document names the end time so), or the time of receipt.';
COMMENT ON COLUMN event_runs.registered_at IS 'Server time the register request was stored.';
COMMENT ON COLUMN event_runs.committed_at IS 'Server time the commit request was stored.';

CREATE TABLE events (
    time          timestamptz NOT NULL,
    uuid          uuid        NOT NULL REFERENCES event_runs (uuid) ON DELETE CASCADE,
    kind          text        NOT NULL,
    host          text        NOT NULL,
    tags          jsonb       NOT NULL DEFAULT '{}',
    fields        jsonb       NOT NULL DEFAULT '{}',
    request_stats jsonb,
    payload       jsonb       NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_pkey PRIMARY KEY (uuid, kind, time),
    CONSTRAINT events_kind_valid CHECK (kind IN ('register', 'commit')),
    CONSTRAINT events_request_stats_commit CHECK (request_stats IS NULL OR kind = 'commit')
);

COMMENT ON TABLE events IS
    'Load-test events, one row per register or commit request (the InfluxDB measurement of the original Metrics-Consumer). event_runs holds the state of each run; event_request_stats flattens requestStats.';
COMMENT ON COLUMN events.time IS 'The event''s time: the start of the run for register, its end for commit (the payload''s startedAt, or the time of receipt).';
COMMENT ON COLUMN events.uuid IS 'The run (event_runs.uuid).';
COMMENT ON COLUMN events.kind IS 'register or commit.';
COMMENT ON COLUMN events.host IS 'Host that sent the event (payload host or hostname; for a commit without one, the run''s host).';
COMMENT ON COLUMN events.tags IS 'The payload''s top-level tags merged with measurement.tags (measurement.tags wins), e.g. {"mode": "single", "targetHost": "..."}.';
COMMENT ON COLUMN events.fields IS 'The payload''s measurement.fields without requestStats, e.g. {"clients": 10, "hatchRate": 2, "requests": null}.';
COMMENT ON COLUMN events.request_stats IS 'Commit only: measurement.fields.requestStats, the Locust results (stats[] per endpoint, errors[], total_rps, fail_ratio, ...).';
COMMENT ON COLUMN events.payload IS 'The request body as received, except measurement.fields.requestStats (kept once, in request_stats).';
COMMENT ON COLUMN events.received_at IS 'Server time the event was stored.';

SELECT telemetry_create_hypertable('events', 'time', INTERVAL '30 days');

-- +goose StatementBegin
-- events_jsonb_bigint is j as a bigint when it is an integral JSON number in
-- range, else NULL: the view must not fail on one odd value.
CREATE FUNCTION events_jsonb_bigint(j jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- Nested CASEs: the inner cast runs only on numbers.
    SELECT CASE WHEN jsonb_typeof(j) = 'number' THEN
               CASE WHEN (j #>> '{}')::numeric = trunc((j #>> '{}')::numeric)
                     AND abs((j #>> '{}')::numeric) <= 9223372036854775807
                    THEN (j #>> '{}')::numeric::bigint END
           END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- events_jsonb_float8 is j as a double precision when it is a JSON number in
-- range, else NULL.
CREATE FUNCTION events_jsonb_float8(j jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(j) = 'number' THEN
               CASE WHEN abs((j #>> '{}')::numeric) < 1e300
                     AND ((j #>> '{}')::numeric = 0 OR abs((j #>> '{}')::numeric) > 1e-300)
                    THEN (j #>> '{}')::double precision END
           END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- events_payload_tags is what events.tags holds: the payload's top-level
-- tags merged with measurement.tags (either may be absent or null).
CREATE FUNCTION events_payload_tags(p jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE WHEN jsonb_typeof(p -> 'tags') = 'object' THEN p -> 'tags' ELSE '{}'::jsonb END)
        || (CASE WHEN jsonb_typeof(p #> '{measurement,tags}') = 'object' THEN p #> '{measurement,tags}' ELSE '{}'::jsonb END)
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- events_payload_fields is what events.fields holds: measurement.fields
-- without requestStats (which has its own column).
CREATE FUNCTION events_payload_fields(p jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE WHEN jsonb_typeof(p #> '{measurement,fields}') = 'object' THEN p #> '{measurement,fields}' ELSE '{}'::jsonb END)
        - 'requestStats'
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION events_payload_tags(jsonb) IS 'A register/commit payload''s tags: top-level tags merged with measurement.tags.';
COMMENT ON FUNCTION events_payload_fields(jsonb) IS 'A register/commit payload''s measurement.fields without requestStats.';
COMMENT ON FUNCTION events_jsonb_bigint(jsonb) IS 'An integral JSON number as bigint; NULL for anything else (used by event_request_stats).';
COMMENT ON FUNCTION events_jsonb_float8(jsonb) IS 'A JSON number as double precision; NULL for anything else (used by event_request_stats).';

CREATE VIEW event_request_stats AS
SELECT e.uuid,
       s.position::integer AS position,
       s.stat ->> 'method' AS method,
       s.stat ->> 'name' AS name,
       coalesce(s.stat ->> 'name' IN ('Total', 'Aggregated'), false) AS is_total,
       r.host,
       r.target_host,
       r.mode,
       r.clients,
       r.started_at,
       e.time AS ended_at,
       events_jsonb_bigint(s.stat -> 'num_requests') AS num_requests,
       events_jsonb_bigint(s.stat -> 'num_failures') AS num_failures,
       events_jsonb_float8(s.stat -> 'avg_response_time') AS avg_response_time,
       events_jsonb_float8(s.stat -> 'min_response_time') AS min_response_time,
       events_jsonb_float8(s.stat -> 'max_response_time') AS max_response_time,
       events_jsonb_float8(s.stat -> 'median_response_time') AS median_response_time,
       events_jsonb_float8(s.stat -> 'ninetieth_response_time') AS ninetieth_response_time,
       events_jsonb_float8(s.stat -> 'ninety_ninth_response_time') AS ninety_ninth_response_time,
       events_jsonb_float8(s.stat -> 'current_rps') AS current_rps,
       events_jsonb_float8(s.stat -> 'current_fail_per_sec') AS current_fail_per_sec,
       events_jsonb_float8(s.stat -> 'avg_content_length') AS avg_content_length,
       s.stat
FROM events AS e
JOIN event_runs AS r ON r.uuid = e.uuid
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(e.request_stats -> 'stats') = 'array' THEN e.request_stats -> 'stats' ELSE '[]'::jsonb END
) WITH ORDINALITY AS s (stat, position)
WHERE e.kind = 'commit'
  AND jsonb_typeof(s.stat) = 'object';

COMMENT ON VIEW event_request_stats IS
    'Locust results per run and request name: one row per item of the commit''s requestStats.stats[], numeric fields as columns (NULL where absent or not a number). The Total/Aggregated row has is_total = true.';
COMMENT ON COLUMN event_request_stats.uuid IS 'The run (event_runs.uuid).';
COMMENT ON COLUMN event_request_stats.position IS 'Position of the item in stats[], from 1.';
COMMENT ON COLUMN event_request_stats.method IS 'HTTP method of the request name (NULL on the Total row).';
COMMENT ON COLUMN event_request_stats.name IS 'Request name as Locust reports it (usually the path), or Total / Aggregated.';
COMMENT ON COLUMN event_request_stats.is_total IS 'True for Locust''s summary row (name Total or Aggregated).';
COMMENT ON COLUMN event_request_stats.host IS 'The load generator (event_runs.host).';
COMMENT ON COLUMN event_request_stats.target_host IS 'The system under test (event_runs.target_host).';
COMMENT ON COLUMN event_request_stats.mode IS 'single or cluster (event_runs.mode).';
COMMENT ON COLUMN event_request_stats.clients IS 'Concurrent users of the run (event_runs.clients).';
COMMENT ON COLUMN event_request_stats.started_at IS 'Start of the run.';
COMMENT ON COLUMN event_request_stats.ended_at IS 'End of the run (the commit event''s time).';
COMMENT ON COLUMN event_request_stats.num_requests IS 'Requests made (num_requests).';
COMMENT ON COLUMN event_request_stats.num_failures IS 'Requests failed (num_failures).';
COMMENT ON COLUMN event_request_stats.avg_response_time IS 'Mean response time, ms.';
COMMENT ON COLUMN event_request_stats.min_response_time IS 'Fastest response, ms.';
COMMENT ON COLUMN event_request_stats.max_response_time IS 'Slowest response, ms.';
COMMENT ON COLUMN event_request_stats.median_response_time IS 'Median response time, ms.';
COMMENT ON COLUMN event_request_stats.ninetieth_response_time IS '90th percentile response time, ms (newer Locust versions).';
COMMENT ON COLUMN event_request_stats.ninety_ninth_response_time IS '99th percentile response time, ms (newer Locust versions).';
COMMENT ON COLUMN event_request_stats.current_rps IS 'Requests per second when the run stopped.';
COMMENT ON COLUMN event_request_stats.current_fail_per_sec IS 'Failures per second when the run stopped (newer Locust versions).';
COMMENT ON COLUMN event_request_stats.avg_content_length IS 'Mean response size, bytes.';
COMMENT ON COLUMN event_request_stats.stat IS 'The whole stats[] item, for fields without a column.';

-- +goose Down
DROP VIEW IF EXISTS event_request_stats;
DROP FUNCTION IF EXISTS events_jsonb_float8(jsonb);
DROP FUNCTION IF EXISTS events_jsonb_bigint(jsonb);
DROP FUNCTION IF EXISTS events_payload_fields(jsonb);
DROP FUNCTION IF EXISTS events_payload_tags(jsonb);
DROP TABLE IF EXISTS events;
DROP TABLE IF EXISTS event_runs;
