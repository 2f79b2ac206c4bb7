-- Shared by the workloads of bench/bench.sh: the result line, and what a page showing the file is.
threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) wrong = 0 end
function done(summary, latency, requests)
  local w = 0
  for _, t in ipairs(threads) do w = w + t:get("wrong") end
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f p50=%.3f p99=%.3f wrong=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, w, e.connect + e.read + e.write + e.status + e.timeout))
end
function shows_the_file(status, body)
  return status == 200 and string.find(body, "line 40 of the benchmark file", 1, true) ~= nil
end
