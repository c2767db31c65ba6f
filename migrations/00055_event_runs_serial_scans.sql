-- event_runs is scanned by one process: no parallel workers for its scans.
--
-- GET /apiv0.1/states answers the exact total of the runs its filter
-- matches, so every page counts them (queries/events.sql, ListRuns). Past
-- min_parallel_table_scan_size (8 MB, about 50,000 runs) the planner counts
-- with a parallel sequential scan: two workers started for each page. At
-- 200,000 runs on the 2-core machines of docs/performance.md the page took
-- 68-73 ms with them against 8-9 ms without (one client, pgbench on the
-- statement), and with 4 clients 189-195 ms against 20-22 ms (21 pages/s
-- against 185-201): the workers' start and their competition for the cores
-- cost far more than the 4,000 pages they share (BenchmarkEventsScale,
-- docs/events.md, "At volume"). The count still reads every matching run;
-- this only keeps it to one process.
--
-- A storage parameter of the table: parallel_workers = 0 turns parallel
-- scans of event_runs off for every query, an analyst's included (the scans
-- of events, in the event_request_stats view too, keep theirs). event_runs
-- is a plain table with TimescaleDB too (migration 00003).

-- +goose Up
ALTER TABLE event_runs SET (parallel_workers = 0);

-- +goose Down
ALTER TABLE event_runs RESET (parallel_workers);
