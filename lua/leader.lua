-- leader: take or keep the cluster-wide resurrector lock. One worker (or one
-- `rl resurrector`) holds it at a time; it expires if its holder stops
-- renewing, and any other candidate takes it over.
--
-- KEYS[1] = rl:leader
-- ARGV[1] = candidate id    ARGV[2] = lock ttl (ms)
-- returns 1 when the candidate holds the lock after the call, else 0
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
