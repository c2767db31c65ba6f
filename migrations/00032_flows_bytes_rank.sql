-- The top talkers' index without the cost of indexing the counters.
--
-- flows_bytes_idx (migration 00014) ordered each hour's rows by
-- bytes_tx + bytes_rx, so that the top talkers of a range read a few rows
-- per hour. But it indexes the counters every POST /flows adds to, so no
-- update of a flows row could be HOT: each wrote an entry in all five
-- indexes. An upsert of 1,000 existing keys took 55-60 ms against 30 ms
-- without that index (pgbench, one client, the service's statement).
--
-- bytes_rank is the 10 %-wide bucket of bytes_tx + bytes_rx
-- (telemetry_flow_bytes_rank: 0 for no bytes, then 1 + floor(ln(total) /
-- ln(1.1)), about 470 at most), kept by a trigger on every insert and
-- update. flows_bytes_rank_idx orders each hour's rows by it. An update
-- changes the bucket only when the key's total grows by a tenth, so most
-- updates change no indexed column and are HOT (85 % of them in the same
-- pgbench run, 33-39 ms a batch). The rank never decreases as the total
-- grows, so a row of a higher rank has a larger total than every row of a
-- lower rank: an hour's first n rows by total are among its rows whose
-- rank is at least that of its n-th row in rank order; the top-talker
-- queries (queries/flows.sql) read those and sort them by the total.
--
-- A column with a trigger rather than a generated column: TimescaleDB
-- refuses a generated column on a hypertable with compression enabled.
-- There, rows of chunks already compressed keep a NULL rank (the queries
-- count a NULL rank as unknown and always read those rows; a compressed
-- chunk has none of these indexes anyway): the backfill below skips them
-- rather than decompress them.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION telemetry_flow_bytes_rank(bytes_tx bigint, bytes_rx bigint) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE WHEN bytes_tx::numeric + bytes_rx <= 0 THEN 0
                 ELSE 1 + floor(ln((bytes_tx::numeric + bytes_rx)::float8) / ln(1.1::float8)) END)::smallint
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION telemetry_flows_set_bytes_rank() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.bytes_rank := telemetry_flow_bytes_rank(NEW.bytes_tx, NEW.bytes_rx);
    RETURN NEW;
END
$$;
-- +goose StatementEnd

ALTER TABLE flows ADD COLUMN bytes_rank smallint;

COMMENT ON COLUMN flows.bytes_rank IS
    'The 10 %-wide bucket of bytes_tx + bytes_rx (telemetry_flow_bytes_rank), set by a trigger on every write: the top talkers'' index orders an hour by it. NULL only in TimescaleDB chunks compressed before migration 00032.';

CREATE TRIGGER flows_bytes_rank BEFORE INSERT OR UPDATE ON flows
    FOR EACH ROW EXECUTE FUNCTION telemetry_flows_set_bytes_rank();

-- +goose StatementBegin
DO $$
DECLARE
    c regclass;
BEGIN
    IF NOT telemetry_timescaledb_enabled() THEN
        UPDATE flows SET bytes_rank = telemetry_flow_bytes_rank(bytes_tx, bytes_rx);
        RETURN;
    END IF;
    FOR c IN
        SELECT format('%I.%I', ch.chunk_schema, ch.chunk_name)::regclass
        FROM timescaledb_information.chunks ch
        WHERE ch.hypertable_schema = current_schema() AND ch.hypertable_name = 'flows' AND NOT ch.is_compressed
    LOOP
        EXECUTE format('UPDATE %s SET bytes_rank = telemetry_flow_bytes_rank(bytes_tx, bytes_rx)', c);
    END LOOP;
END
$$;
-- +goose StatementEnd

CREATE INDEX flows_bytes_rank_idx ON flows (hour, bytes_rank DESC NULLS LAST);
DROP INDEX flows_bytes_idx;

-- +goose Down
CREATE INDEX flows_bytes_idx ON flows (hour, (bytes_tx::numeric + bytes_rx) DESC);
DROP INDEX IF EXISTS flows_bytes_rank_idx;
DROP TRIGGER IF EXISTS flows_bytes_rank ON flows;
ALTER TABLE flows DROP COLUMN IF EXISTS bytes_rank;
DROP FUNCTION IF EXISTS telemetry_flows_set_bytes_rank();
DROP FUNCTION IF EXISTS telemetry_flow_bytes_rank(bigint, bigint);
