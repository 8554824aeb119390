-- dispatch: journal a new task and publish its Celery message, atomically.
-- There is no moment where a task is published but not journaled, or
-- journaled but not published (unless it is scheduled for later).
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist
-- KEYS[3] = queue list (kombu)            KEYS[4] = rl:schedule
-- ARGV[1] = task id         ARGV[2] = task name      ARGV[3] = queue name
-- ARGV[4] = envelope JSON   ARGV[5] = Celery message template (ends before
--           the delivery tag's value)    ARGV[6] = delivery tag
-- ARGV[7] = now (ms)        ARGV[8] = due time (ms); 0 = publish now
-- ARGV[9] = history_max
-- returns {1, "PENDING"} when created, {0, state} when the id already exists
local existing = redis.call('HGET', KEYS[1], 'state')
if existing then
  return {0, existing}
end
local now = ARGV[7]
redis.call('HSET', KEYS[1],
  'id', ARGV[1], 'task', ARGV[2], 'queue', ARGV[3], 'state', 'PENDING',
  'env', ARGV[4], 'msg', ARGV[5], 'attempt', 0, 'fence', 0, 'res', 0,
  'created', now, 'updated', now)
local due = tonumber(ARGV[8])
local event = {t = tonumber(now), e = 'dispatched', q = ARGV[3]}
if due > 0 then
  redis.call('ZADD', KEYS[4], due, ARGV[1])
  event.due = due
else
  redis.call('LPUSH', KEYS[3], ARGV[5] .. ARGV[6] .. '"}}')
end
redis.call('RPUSH', KEYS[2], cjson.encode(event))
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[9]), -1)
return {1, 'PENDING'}
