-- wrk script: POST one Messages API body over and over, then print the results as JSON.
--
-- Environment: BENCH_BODY_FILE (the request body, required), BENCH_API_KEY (x-api-key,
-- default "client-key"). The last line wrk prints is one JSON object that run.py reads:
-- completed requests, duration, errors by kind and latency percentiles in microseconds.

local file = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = os.getenv("BENCH_API_KEY") or "client-key"

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d,'
      .. '"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout, latency:percentile(50),
    latency:percentile(99), latency.max))
end
