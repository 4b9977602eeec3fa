-- wrk script for bench/clicks.py: GET tracked links, cycling through a file of paths.
--
-- Argument (after "--"): the file with one path a line. Each thread starts at its own
-- offset. A success is a 302; the tally and done(): bench/wrk_support/tally.lua.

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "../wrk_support/tally.lua")

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    table.insert(paths, line)
  end
  position = (number * 7919) % #paths
  wanted_status, wanted_location = 302, ""
  headers = {["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
end

function request()
  position = position % #paths + 1
  return wrk.format("GET", paths[position], headers)
end
