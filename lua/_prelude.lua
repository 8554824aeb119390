-- _prelude: helpers every script may call. The loader (relier/journal/scripts.py)
-- puts this file before each script's own lines, so each helper is written once
-- and every script runs with the same rule. It touches only the keys its callers
-- pass in, which they took from their KEYS.
--
-- history(key, event, max): append `event` (a table) to a task's history list
--   as JSON and keep its newest `max` entries.
-- count(key, field, ttl): add one to `field` of a stats bucket; the call that
--   creates the bucket gives it its TTL (seconds).
local function history(key, event, max)
  max = tonumber(max)
  -- RPUSH answers the list's length: trim only when it is over the cap.
  if redis.call('RPUSH', key, cjson.encode(event)) > max then
    redis.call('LTRIM', key, -max, -1)
  end
end

local function count(key, field, ttl)
  if redis.call('HINCRBY', key, field, 1) == 1 then
    redis.call('EXPIRE', key, ttl)
  end
end
