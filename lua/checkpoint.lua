-- checkpoint: save a running attempt's progress, only if it holds the fence.
-- The next attempt reads it back as ctx.progress.
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist
-- ARGV[1] = fence           ARGV[2] = progress JSON   ARGV[3] = now (ms)
-- ARGV[4] = history_max
-- returns 1 saved, 0 refused (stale fence)
local job = redis.call('HMGET', KEYS[1], 'state', 'fence')
if job[1] ~= 'RUNNING' or job[2] ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'progress', ARGV[2], 'updated', ARGV[3])
history(KEYS[2],
  {t = tonumber(ARGV[3]), e = 'checkpoint', fence = tonumber(ARGV[1])}, ARGV[4])
return 1
