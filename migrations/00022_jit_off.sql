-- JIT compilation off by default for the role that runs the migrations (the
-- service's role: serve and migrate use the same one, compose.yaml).
--
-- The service's statements are short, but the planner prices some of them
-- past jit_above_cost (100,000) on branches that never run: the grouped
-- measurements statement's fallback for the rows of the window's last hour
-- (a sequential scan when that hour holds most of the table) or a
-- timestamptz series estimated at 1,000 rows. PostgreSQL then compiles the
-- statement before running it. In the mixed-load benchmark
-- (docs/performance-mixed.md) a grouped call alone took 92-146 ms after
-- five minutes, of which a few were execution (1,549 buffers, all hits) and
-- the rest compiling 146 functions; at 10 M rows the grouped call with
-- elapsed >= 0.1 took 7.0 s with JIT and 4.7 s without. Two statements had
-- been rewritten around it before (collection_http sets jit = off itself;
-- ListFlowsTopByHourDesc uses an integer series).
--
-- A role setting, not a session SET: it applies to every connection the
-- role opens, through PgBouncer and on a replica alike (roles are
-- cluster-wide, so it also survives CREATE DATABASE ... TEMPLATE). An
-- analyst's own role keeps the server's default. A session may still
-- SET jit = on. Being the role's, the Down resets it for every database the
-- role uses (one, in the documented set-ups).

-- +goose Up
ALTER ROLE CURRENT_USER SET jit = off;

-- +goose Down
ALTER ROLE CURRENT_USER RESET jit;
