-- dead_letter: move a task that no worker can claim (unknown task name,
-- unreadable envelope, malformed message) straight to the DLQ. Only a task
-- that is not running or finished can be moved, so a stray duplicate message
-- can never kill a task that another worker is running or has committed.
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist    KEYS[3] = rl:{id}:done
-- KEYS[4] = rl:schedule     KEYS[5] = rl:dlq
-- KEYS[6] = rl:owned:<worker that refuses it>       KEYS[7] = rl:stats:<bucket of now>
-- ARGV[1] = task id         ARGV[2] = now (ms)        ARGV[3] = reason
-- ARGV[4] = error text      ARGV[5] = history_max     ARGV[6] = fence or ""
--           (a claimed attempt passes its fence: RUNNING is accepted then)
-- ARGV[7] = stats bucket TTL (s)
-- returns 1 dead-lettered, 0 refused (with the state as second element)
local job = redis.call('HMGET', KEYS[1], 'state', 'fence')
local state = job[1]
if not state then
  return {0, 'MISSING'}
end
local claimed = ARGV[6] ~= '' and state == 'RUNNING' and job[2] == ARGV[6]
if not claimed and state ~= 'PENDING' and state ~= 'RESERVED' and state ~= 'RETRYING' then
  return {0, state}
end
local now = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'state', 'DEAD', 'reason', ARGV[3], 'error', ARGV[4],
  'finished', ARGV[2], 'updated', ARGV[2])
redis.call('HDEL', KEYS[1], 'owner', 'pid')
redis.call('SREM', KEYS[6], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[5], now, ARGV[1])
history(KEYS[2], {t = now, e = 'dead', reason = ARGV[3], error = ARGV[4]}, ARGV[5])
redis.call('DEL', KEYS[3])
redis.call('RPUSH', KEYS[3], 'DEAD')
count(KEYS[7], 'dead', ARGV[7])
return {1, 'DEAD'}
