-- An audit of what analysts read in psql (docs/analysts.md) found:
-- - measurements said "one row per profiled request", but the service's own
--   requests (app = telemetry) past SELF_PROFILE_DETAIL a second are summed
--   into summary rows (internal/selfprofile/summary.go): context.count
--   requests each, elapsed their mean. count(*) over app telemetry counted
--   468 rows for 600 requests. The table, elapsed and context now say so.
-- - The functions the page tells analysts to use, telemetry_elapsed_bucket
--   and telemetry_hist_buckets (and telemetry_hist_encode beside them), had
--   no comment (\df+ showed nothing), and since migration 00013 dropped the
--   bucket column nothing in the database said which elapsed a bucket holds.
-- Comments only; TestAnalystsDocFunctionsHaveComments and
-- TestMeasurementsCommentsNameSummaryRows (internal/store/postgres) keep them.

-- +goose Up
COMMENT ON TABLE measurements IS
    'Request measurements (flask-profiler): one row per profiled request, posted to POST /api/measurements or recorded by the service about itself (app = telemetry); but past SELF_PROFILE_DETAIL requests a second the service sums its own requests into summary rows, one per second, route, method, path and status, each standing for context.count requests (sum(coalesce((context->>''count'')::bigint, 1)) counts requests; count(*) and the rollups count rows). Append-only; write through the API so that the rollups (measurements_hourly, measurements_daily, measurements_method_hourly) stay in step.';
COMMENT ON COLUMN measurements.elapsed IS
    'Seconds the request took (API: elapsed), 0 to 253402300799; ended_at - started_at unless the client said otherwise. A summary row (context.count present): the mean of its requests.';
COMMENT ON COLUMN measurements.context IS
    'Request context (JSON object): url, args (query), form, body, headers, func (handler or operationId), ip. A self-profiling summary row (app telemetry) has count (the requests it stands for), elapsedTotal and elapsedMax (seconds), path and status instead of per-request fields.';

COMMENT ON FUNCTION telemetry_elapsed_bucket(double precision) IS
    'The elapsed-histogram bucket of elapsed (seconds): 0 for at most 1e-6, otherwise b = 1 + floor(ln(elapsed / 1e-6) / ln(1.05)), which holds [1e-6 * 1.05^(b-1), 1e-6 * 1.05^b). The API answers a percentile falling in bucket b >= 1 with 2e-6 * 1.05^b / 2.05 (docs/analysts.md).';
COMMENT ON FUNCTION telemetry_hist_buckets(bytea) IS
    'The occupied buckets (telemetry_elapsed_bucket) of an encoded elapsed histogram (the hist column of measurements_hourly_hist, measurements_daily_hist and the sealed tables) and the count in each: SELECT b.* FROM measurements_daily_hist h, telemetry_hist_buckets(h.hist) b.';
COMMENT ON FUNCTION telemetry_hist_encode(integer[], bigint[]) IS
    'Encodes (bucket, count) pairs, buckets distinct, as an elapsed histogram: the inverse of telemetry_hist_buckets (counts <= 0 left out; NULL when none is left).';

-- +goose Down
COMMENT ON FUNCTION telemetry_hist_encode(integer[], bigint[]) IS NULL;
COMMENT ON FUNCTION telemetry_hist_buckets(bytea) IS NULL;
COMMENT ON FUNCTION telemetry_elapsed_bucket(double precision) IS NULL;
COMMENT ON COLUMN measurements.context IS
    'Request context (JSON object): url, args (query), form, body, headers, func (handler or operationId), ip.';
COMMENT ON COLUMN measurements.elapsed IS
    'Seconds the request took (API: elapsed), 0 to 253402300799; ended_at - started_at unless the client said otherwise.';
COMMENT ON TABLE measurements IS
    'Request measurements (flask-profiler): one row per profiled request, posted to POST /api/measurements or recorded by the service about itself (app = telemetry). Append-only; write through the API so that the rollups (measurements_hourly, measurements_daily, measurements_method_hourly) stay in step.';
