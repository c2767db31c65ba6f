-- elapsed has a documented range, 0 to 253402300799 seconds (the widest
-- span of two valid epoch times; internal/api/measurements.go). Before the
-- range existed a client could store 1e306 or 1.7e308: the collections then
-- answered a body that would not marshal (+Inf milliseconds), and two such
-- rows overflowed the grouped sums. This brings stored values into the range
-- (clamped: they were nonsense, a request does not take 8,000 years), repairs
-- the rollup cells that summed them (an infinite or oversized sum becomes
-- count times the largest elapsed) and makes the range a CHECK, so that no
-- writer around the API can store past it either.

-- +goose Up
UPDATE measurements SET elapsed = 253402300799 WHERE elapsed > 253402300799;

UPDATE measurements_hourly
SET sum_elapsed = least(sum_elapsed, count * 253402300799::float8),
    min_elapsed = least(min_elapsed, 253402300799),
    max_elapsed = least(max_elapsed, 253402300799)
WHERE max_elapsed > 253402300799 OR sum_elapsed > count * 253402300799::float8;

UPDATE measurements_daily
SET sum_elapsed = least(sum_elapsed, count * 253402300799::float8),
    min_elapsed = least(min_elapsed, 253402300799),
    max_elapsed = least(max_elapsed, 253402300799)
WHERE max_elapsed > 253402300799 OR sum_elapsed > count * 253402300799::float8;

ALTER TABLE measurements ADD CONSTRAINT measurements_elapsed_bounded CHECK (elapsed <= 253402300799);

COMMENT ON COLUMN measurements.elapsed IS 'Seconds the request took (API: elapsed), 0 to 253402300799; ended_at - started_at unless the client said otherwise.';

-- +goose Down
ALTER TABLE measurements DROP CONSTRAINT IF EXISTS measurements_elapsed_bounded;
COMMENT ON COLUMN measurements.elapsed IS 'Seconds the request took (API: elapsed); ended_at - started_at unless the client said otherwise.';
