-- reserve: a worker's main process takes ownership of a task it received
-- (prefetched, not yet started), so the task comes back if the worker dies
-- before running it.
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist    KEYS[3] = rl:owned:<worker>
-- ARGV[1] = task id         ARGV[2] = worker id       ARGV[3] = now (ms)
-- ARGV[4] = history_max
-- returns the state after the call ("RESERVED" when taken, else unchanged)
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return 'MISSING'
end
if state ~= 'PENDING' then
  return state
end
redis.call('HSET', KEYS[1], 'state', 'RESERVED', 'owner', ARGV[2], 'updated', ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
history(KEYS[2], {t = tonumber(ARGV[3]), e = 'reserved',
    owner = ARGV[2]}, ARGV[4])
return 'RESERVED'
