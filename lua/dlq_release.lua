-- dlq_release: send a dead task back to work (`rl dlq release`): its original
-- envelope and Celery message are published again, with a fresh delivery tag,
-- attempt and failure counts back at 0, and a new fence. Only a DEAD task
-- moves, so releasing twice, or two operators racing, publishes once.
-- The fence is incremented, never reset: nothing of the dead run (a zombie
-- attempt) can commit, checkpoint or fail over the released one.
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist    KEYS[3] = rl:{id}:done
-- KEYS[4] = rl:dlq          KEYS[5] = queue list (kombu) of ARGV[5]
-- KEYS[6] = rl:stats:<bucket of now>
-- ARGV[1] = task id         ARGV[2] = now (ms)        ARGV[3] = delivery tag
-- ARGV[4] = history_max     ARGV[5] = the task's queue, as the caller read it
-- ARGV[6] = stats bucket TTL (s)
-- returns {1, new fence} released, or {0, state} refused ("MISSING" when no
--         journal entry, "QUEUE" when the task's queue is no longer ARGV[5],
--         "CORRUPT" when its fence is not an integer: edited by hand, it
--         cannot be raised above every fence handed out, so nothing moves)
local job = redis.call('HMGET', KEYS[1], 'state', 'queue', 'msg', 'reason', 'attempt', 'fence')
if not job[1] then
  return {0, 'MISSING'}
end
if job[1] ~= 'DEAD' then
  return {0, job[1]}
end
if job[2] ~= ARGV[5] then
  return {0, 'QUEUE'}
end
if job[6] and not string.match(job[6], '^%-?%d+$') then
  return {0, 'CORRUPT'}
end
local now = tonumber(ARGV[2])
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
-- A fresh run, as dispatch's revive of a dead idempotent call: no reason,
-- error, checkpoint, poison-pill counts or deferral run of the dead one.
redis.call('HDEL', KEYS[1], 'reason', 'error', 'tb', 'finished', 'result', 'due', 'owner',
  'pid', 'progress', 'claim', 'waits', 'deferred_since', 'deferred_fence', 'defers')
redis.call('HSET', KEYS[1], 'state', 'PENDING', 'attempt', 0, 'failures', 0, 'res', 0,
  'res_w', 0, 'updated', ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('LPUSH', KEYS[5], job[3] .. ARGV[3] .. '"}}')
history(KEYS[2], {t = now, e = 'released', fence = fence,
  was = job[4], attempts = tonumber(job[5])}, ARGV[4])
count(KEYS[6], 'released', ARGV[6])
return {1, fence}
