-- soft_timeout: note in a running attempt's history that it passed its soft
-- timeout, only if it still holds the fence (a zombie's note is dropped, and
-- tells the caller not to call the hook on behalf of a superseded attempt).
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist
-- ARGV[1] = fence           ARGV[2] = now (ms)        ARGV[3] = soft timeout (s)
-- ARGV[4] = history_max
-- returns 1 noted, 0 refused (stale fence or not RUNNING)
local job = redis.call('HMGET', KEYS[1], 'state', 'fence')
if job[1] ~= 'RUNNING' or job[2] ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'updated', ARGV[2])
history(KEYS[2], {t = tonumber(ARGV[2]), e = 'soft_timeout',
  fence = tonumber(ARGV[1]), after = tonumber(ARGV[3])}, ARGV[4])
return 1
