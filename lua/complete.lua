-- complete: commit a successful attempt, only if it still holds the fence.
-- A zombie (an attempt superseded by a newer one) is refused and the refusal
-- is recorded in the history.
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist    KEYS[3] = rl:{id}:done
-- KEYS[4] = rl:owned:<worker running the attempt>     KEYS[5] = rl:stats:<bucket of now>
-- ARGV[1] = fence           ARGV[2] = result JSON     ARGV[3] = now (ms)
-- ARGV[4] = result_ttl (s)  ARGV[5] = history_max     ARGV[6] = task id
-- ARGV[7] = stats bucket TTL (s)
-- returns 1 committed, 0 refused (stale fence or not RUNNING)
local job = redis.call('HMGET', KEYS[1], 'state', 'fence')
local now = tonumber(ARGV[3])
if job[1] == 'SUCCEEDED' and job[2] == ARGV[1] then
  return 1  -- this very commit, retried after its reply was lost
end
if job[1] ~= 'RUNNING' or job[2] ~= ARGV[1] then
  if job[1] then
    history(KEYS[2],
      {t = now, e = 'stale_commit', fence = tonumber(ARGV[1]), state = job[1]}, ARGV[5])
  end
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'SUCCEEDED', 'result', ARGV[2],
  'finished', ARGV[3], 'updated', ARGV[3])
redis.call('HDEL', KEYS[1], 'owner', 'pid')
redis.call('SREM', KEYS[4], ARGV[6])
history(KEYS[2], {t = now, e = 'succeeded',
    fence = tonumber(ARGV[1])}, ARGV[5])
-- The done list is empty while a task is RUNNING (it is written only when a
-- run ends, and deleted whenever a task leaves DEAD), so no DEL first.
redis.call('RPUSH', KEYS[3], 'SUCCEEDED')
local ttl = tonumber(ARGV[4])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[3], ttl)
count(KEYS[5], 'succeeded', ARGV[7])
return 1
