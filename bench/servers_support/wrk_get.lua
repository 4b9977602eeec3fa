-- wrk script for bench/servers.py: GET one path with a browser's user agent.
--
-- Arguments (after "--"): the path, the status of a success. The tally and done():
-- bench/wrk_support/tally.lua.

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "../wrk_support/tally.lua")

function init(args)
  path = args[1]
  wanted_status, wanted_location = tonumber(args[2]), ""
  headers = {["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
end

function request()
  return wrk.format("GET", path, headers)
end
