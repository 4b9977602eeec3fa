-- wrk script for bench/clicks.py: GET tracked links, cycling through a file of paths.
--
-- Argument (after "--"): the file with one path a line. Each thread starts at its own
-- offset. done() prints "wrk-result redirects N" and "wrk-result other N": answers that
-- were a 302 and answers that were anything else.

local threads = {}

function setup(thread)
  thread:set("number", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    table.insert(paths, line)
  end
  position = (number * 7919) % #paths
  redirects, other = 0, 0
  headers = {["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
end

function request()
  position = position % #paths + 1
  return wrk.format("GET", paths[position], headers)
end

function response(status, response_headers, body)
  if status == 302 then
    redirects = redirects + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local total_redirects, total_other = 0, 0
  for _, thread in ipairs(threads) do
    total_redirects = total_redirects + thread:get("redirects")
    total_other = total_other + thread:get("other")
  end
  io.write(string.format("wrk-result redirects %d\n", total_redirects))
  io.write(string.format("wrk-result other %d\n", total_other))
end
