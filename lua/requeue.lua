-- requeue: publish a scheduled task whose time has come (a retry or a
-- countdown push). Membership in rl:schedule is the guard: of two schedulers
-- racing for the same task, exactly one removes it and publishes.
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist
-- KEYS[3] = rl:schedule     KEYS[4] = queue list (kombu)
-- ARGV[1] = task id         ARGV[2] = now (ms)        ARGV[3] = delivery tag
-- ARGV[4] = history_max
-- returns 1 published, 0 nothing to do
if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then
  return 0
end
local job = redis.call('HMGET', KEYS[1], 'state', 'msg')
if job[1] ~= 'RETRYING' and job[1] ~= 'PENDING' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'PENDING', 'updated', ARGV[2])
redis.call('HDEL', KEYS[1], 'due')
redis.call('LPUSH', KEYS[4], job[2] .. ARGV[3] .. '"}}')
history(KEYS[2], {t = tonumber(ARGV[2]), e = 'requeued'}, ARGV[4])
return 1
