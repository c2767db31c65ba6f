-- events loses its foreign key to event_runs; the expiry deletes a run's
-- events itself (queries/lifecycle.sql, DeleteExpiredRuns).
--
-- On TimescaleDB, the first event of a 30-day range creates its chunk, and
-- the chunk gets a copy of the foreign key, which takes SHARE ROW EXCLUSIVE
-- on event_runs. A register or a commit writes event_runs and then events
-- in one statement: the chunk's lock then waits for every other transaction
-- writing event_runs, while its own transaction holds its write lock there.
-- Two of them deadlock; concurrent commits of one run did again and again
-- (the others wait for the first's row lock holding their write lock), until
-- DB_TIMEOUT answered 503 (docs/events.md). Without the foreign key a chunk
-- takes no lock on event_runs.
--
-- What the key guarded stays guarded by the statements: a register inserts
-- the run and its event together, a commit inserts its event only when its
-- UPDATE matched the running run (whose row it then holds), and the expiry
-- deletes a run and its events in one statement. A commit racing the expiry
-- cannot leave an event behind: the expiry waits for the commit's row lock
-- and then re-checks the run, which the commit has just ended now, so it is
-- no longer expired.

-- +goose Up
ALTER TABLE events DROP CONSTRAINT events_uuid_fkey;

-- +goose Down
-- Events whose run is gone (none, unless written by hand) would stop the key.
DELETE FROM events e WHERE NOT EXISTS (SELECT 1 FROM event_runs r WHERE r.uuid = e.uuid);
ALTER TABLE events ADD CONSTRAINT events_uuid_fkey FOREIGN KEY (uuid) REFERENCES event_runs (uuid) ON DELETE CASCADE;
