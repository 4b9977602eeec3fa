-- wrk script for bench/subscribe.py: POST a subscribe form with a new address each time.
--
-- Arguments (after "--" on wrk's command line), all already URL-encoded where they go
-- into the body: the path, the Cookie header, the body before the address, the body
-- after it, the address's prefix, its domain, the status of a success, and text the
-- Location header of a success must contain ("" for none). The tally and done():
-- bench/wrk_support/tally.lua.

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "../wrk_support/tally.lua")

function init(args)
  path, cookie, before, after = args[1], args[2], args[3], args[4]
  prefix, domain = args[5], args[6]
  wanted_status, wanted_location = tonumber(args[7]), args[8]
  counter = 0
  headers = {["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = cookie}
end

function request()
  counter = counter + 1
  local email = prefix .. "-" .. number .. "-" .. counter .. "%40" .. domain
  return wrk.format("POST", path, headers, before .. email .. after)
end
