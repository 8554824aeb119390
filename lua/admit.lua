-- admit: take one call from a rate limit, without journaling or publishing
-- anything: dispatch.lua's GCRA on its own, for limits on work that is not
-- a push (the web adapters' per-route limits).
--
-- KEYS[1] = rl:rate:<name>[:<key>]
-- ARGV[1] = emission interval (ms per call), > 0
-- ARGV[2] = burst (calls allowed at once), >= 1
-- returns {1, 0} when admitted, {0, retry_after_ms} when refused (the
--         exact wait until the same call would be admitted)
--
-- The same algorithm as dispatch.lua: the key holds the theoretical arrival
-- time (TAT) of the next call; a call is admitted when TAT - now <=
-- (burst - 1) * interval. A refused call changes nothing.
local interval = tonumber(ARGV[1])
-- Redis's own clock, not the caller's: callers on several hosts share this
-- limit, and their clocks disagree by more than a rate-limit interval.
local t = redis.call('TIME')
local clock = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
tat = math.max(tat, clock)
local tolerance = (tonumber(ARGV[2]) - 1) * interval
if tat - clock > tolerance then
  return {0, math.ceil(tat - tolerance - clock)}
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', next_tat), 'PX', math.ceil(next_tat - clock) + 1)
return {1, 0}
