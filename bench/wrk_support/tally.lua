-- The tally every bench wrk script shares (bench/clicks.py, bench/subscribe.py): loaded
-- with dofile() at the top of a script, which then sets wanted_status and wanted_location
-- in its init() and defines request().
--
-- response() counts an answer as succeeded when its status is wanted_status and its
-- Location header contains wanted_location ("" for any), else as failed. done() prints
-- one "wrk-result" line per figure, which the benches parse (subscribe.wrk_figures):
-- counts, duration, errors and every distinct latency (microseconds) with how many
-- requests took it.

local threads = {}

function setup(thread)
  thread:set("number", #threads + 1)
  table.insert(threads, thread)
end

succeeded, failed = 0, 0

function response(status, response_headers, body)
  local location = response_headers["Location"] or response_headers["location"] or ""
  if status == wanted_status and location:find(wanted_location, 1, true) then
    succeeded = succeeded + 1
  else
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local ok, bad = 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("succeeded")
    bad = bad + thread:get("failed")
  end
  local errors = summary.errors
  io.write("wrk-result ok ", ok, "\n")
  io.write("wrk-result failed ", bad, "\n")
  io.write("wrk-result duration_us ", summary.duration, "\n")
  io.write(string.format("wrk-result errors %d %d %d %d\n",
    errors.connect, errors.read, errors.write, errors.timeout))
  for index = 1, #latency do
    local value, count = latency(index)
    io.write("wrk-result latency ", value, " ", count, "\n")
  end
end
