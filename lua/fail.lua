-- fail: end a failed attempt, only if it still holds the fence: either
-- schedule a retry (state RETRYING, due time in rl:schedule) or move the task
-- to the dead letter queue (state DEAD, kept without expiry).
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist    KEYS[3] = rl:{id}:done
-- KEYS[4] = rl:schedule     KEYS[5] = rl:dlq
-- KEYS[6] = rl:owned:<worker running the attempt>     KEYS[7] = rl:stats:<bucket of now>
-- ARGV[1] = task id         ARGV[2] = fence           ARGV[3] = now (ms)
-- ARGV[4] = retry due (ms), 0 = dead letter           ARGV[5] = reason
-- ARGV[6] = error text      ARGV[7] = traceback       ARGV[8] = history_max
-- ARGV[9] = stats bucket TTL (s)
-- returns 1 retry scheduled, 2 dead-lettered, 0 refused (stale fence)
local job = redis.call('HMGET', KEYS[1], 'state', 'fence')
local now = tonumber(ARGV[3])
local hmax = ARGV[8]
-- This very call, retried after its reply was lost: report what it did.
if job[2] == ARGV[2] and job[1] == 'RETRYING' then
  return 1
end
if job[2] == ARGV[2] and job[1] == 'DEAD' then
  return 2
end
if job[1] ~= 'RUNNING' or job[2] ~= ARGV[2] then
  if job[1] then
    history(KEYS[2],
      {t = now, e = 'stale_commit', fence = tonumber(ARGV[2]), state = job[1]}, hmax)
  end
  return 0
end
redis.call('HSET', KEYS[1], 'error', ARGV[6], 'tb', ARGV[7], 'updated', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HDEL', KEYS[1], 'owner', 'pid')
redis.call('SREM', KEYS[6], ARGV[1])
local due = tonumber(ARGV[4])
if due > 0 then
  redis.call('HSET', KEYS[1], 'state', 'RETRYING', 'due', ARGV[4])
  redis.call('ZADD', KEYS[4], due, ARGV[1])
  history(KEYS[2],
    {t = now, e = 'retry', due = due, error = ARGV[6], fence = tonumber(ARGV[2])}, hmax)
  count(KEYS[7], 'retried', ARGV[9])
  return 1
end
redis.call('HSET', KEYS[1], 'state', 'DEAD', 'reason', ARGV[5], 'finished', ARGV[3])
redis.call('ZADD', KEYS[5], now, ARGV[1])
history(KEYS[2],
  {t = now, e = 'dead', reason = ARGV[5], error = ARGV[6], fence = tonumber(ARGV[2])}, hmax)
redis.call('DEL', KEYS[3])
redis.call('RPUSH', KEYS[3], 'DEAD')
count(KEYS[7], 'dead', ARGV[9])
return 2
