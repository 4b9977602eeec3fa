-- wrk script for bench/subscribe.py: POST a subscribe form with a new address each time.
--
-- Arguments (after "--" on wrk's command line), all already URL-encoded where they go
-- into the body: the path, the Cookie header, the body before the address, the body
-- after it, the address's prefix, its domain, the status of a success, and text the
-- Location header of a success must contain ("" for none).
-- done() prints one "wrk-result" line per figure, which the bench parses: counts, errors
-- and every distinct latency (microseconds) with how many requests took it.

local threads = {}

function setup(thread)
  thread:set("number", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  path, cookie, before, after = args[1], args[2], args[3], args[4]
  prefix, domain = args[5], args[6]
  wanted_status, wanted_location = tonumber(args[7]), args[8]
  counter, succeeded, failed = 0, 0, 0
  headers = {["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = cookie}
end

function request()
  counter = counter + 1
  local email = prefix .. "-" .. number .. "-" .. counter .. "%40" .. domain
  return wrk.format("POST", path, headers, before .. email .. after)
end

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
