-- wrk script of bench/data-path: GET with the headers of BENCH_HEADERS ("Name: value" pairs
-- separated by "|"), and at the end one JSON object with the rate and the latency percentiles
-- (including p99.9, which `wrk --latency` does not print) written to BENCH_OUT.
wrk.method = "GET"
for pair in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^|]+") do
  local name, value = pair:match("^%s*([^:]+):%s*(.*)$")
  if name then
    wrk.headers[name] = value
  end
end

done = function(summary, latency, requests)
  local ms = function(p) return latency:percentile(p) / 1000.0 end
  local seconds = summary.duration / 1000000.0
  local errors = summary.errors
  local out = io.open(os.getenv("BENCH_OUT"), "w")
  out:write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f,"p99_9":%.3f,"max":%.3f,"mean":%.3f}}\n',
    summary.requests, seconds, summary.requests / seconds,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    ms(50), ms(90), ms(99), ms(99.9), latency.max / 1000.0, latency.mean / 1000.0))
  out:close()
end
