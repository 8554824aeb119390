-- lock_acquire: take an idempotency lock if nobody holds it, and hand out a
-- fence token strictly larger than every earlier holder's, so writes made
-- under the lock can be made conditional on it.
--
-- KEYS[1] = rl:lock:{<key>}        KEYS[2] = rl:lock:{<key>}:fence
-- ARGV[1] = holder token           ARGV[2] = ttl (ms)
-- returns the fence (> 0) when taken, or minus the ms until the current
--         holder's lock expires (<= 0) when held by someone else
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  ttl = 0
end
return -ttl
