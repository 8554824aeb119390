-- defer: hand back a call made for a newer schema_version than the claiming
-- worker's code knows, for the workers of a rolling deploy that run the newer
-- code; only the attempt holding the fence can. Like a claim that finds its
-- max_concurrency slots full, the task goes back to PENDING, owned by nobody,
-- due in rl:schedule (the scheduler re-publishes it), with a delay doubling
-- from ARGV[4] up to ARGV[5]. No retry is used up: `failures` is untouched and
-- the claim's `attempt` is rolled back (the function never ran); the fence is
-- not (fences only grow). Once ARGV[6] ms have passed since the first of an
-- unbroken run of deferrals (no attempt ran in between: each deferral's fence
-- is the one after the last's) it is dead-lettered instead, with reason
-- schema_too_new.
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist    KEYS[3] = rl:{id}:done
-- KEYS[4] = rl:schedule     KEYS[5] = rl:dlq
-- KEYS[6] = rl:owned:<worker running the attempt>     KEYS[7] = rl:stats:<bucket of now>
-- ARGV[1] = task id         ARGV[2] = fence           ARGV[3] = now (ms)
-- ARGV[4] = first delay (ms)                          ARGV[5] = longest delay (ms)
-- ARGV[6] = longest deferral (ms), from the first one
-- ARGV[7] = the call's schema_version                 ARGV[8] = the worker's
-- ARGV[9] = error text of the DLQ entry               ARGV[10] = history_max
-- ARGV[11] = stats bucket TTL (s)
-- returns {1, due} deferred, {2, 0} dead-lettered, {0, 0} refused (stale fence)
local job = redis.call('HMGET', KEYS[1], 'state', 'fence', 'due', 'deferred_since',
  'deferred_fence')
local now = tonumber(ARGV[3])
local hmax = ARGV[10]
local fence = tonumber(ARGV[2])
-- This very call, retried after its reply was lost: report what it did.
if job[2] == ARGV[2] and job[1] == 'PENDING' then
  return {1, tonumber(job[3] or 0)}
end
if job[2] == ARGV[2] and job[1] == 'DEAD' then
  return {2, 0}
end
if job[1] ~= 'RUNNING' or job[2] ~= ARGV[2] then
  if job[1] then
    history(KEYS[2], {t = now, e = 'stale_commit', fence = fence,
      state = job[1]}, hmax)
  end
  return {0, 0}
end
redis.call('HINCRBY', KEYS[1], 'attempt', -1)
redis.call('HDEL', KEYS[1], 'owner', 'pid')
redis.call('SREM', KEYS[6], ARGV[1])
local since = tonumber(job[4])
if not since or fence - tonumber(job[5]) > 1 then
  since = now
  redis.call('HSET', KEYS[1], 'deferred_since', ARGV[3], 'defers', 0)
end
redis.call('HSET', KEYS[1], 'deferred_fence', ARGV[2])
local deadline = since + tonumber(ARGV[6])
if now >= deadline then
  redis.call('HSET', KEYS[1], 'state', 'DEAD', 'reason', 'schema_too_new', 'error', ARGV[9],
    'finished', ARGV[3], 'updated', ARGV[3])
  -- A task released from the DLQ starts a new run of deferrals.
  redis.call('HDEL', KEYS[1], 'deferred_since', 'deferred_fence', 'defers')
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('ZADD', KEYS[5], now, ARGV[1])
  history(KEYS[2], {t = now, e = 'dead', reason = 'schema_too_new',
    error = ARGV[9], fence = fence}, hmax)
  redis.call('DEL', KEYS[3])
  redis.call('RPUSH', KEYS[3], 'DEAD')
  count(KEYS[7], 'dead', ARGV[11])
  return {2, 0}
end
local defers = redis.call('HINCRBY', KEYS[1], 'defers', 1)
local delay = math.min(tonumber(ARGV[4]) * 2 ^ math.min(defers - 1, 30), tonumber(ARGV[5]))
local due = math.min(now + delay, deadline)
redis.call('HSET', KEYS[1], 'state', 'PENDING', 'updated', ARGV[3], 'due', due)
redis.call('ZADD', KEYS[4], due, ARGV[1])
history(KEYS[2], {t = now, e = 'deferred', reason = 'schema_too_new',
  sv = tonumber(ARGV[7]), known = tonumber(ARGV[8]), due = due, fence = fence}, hmax)
return {1, due}
