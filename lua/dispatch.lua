-- dispatch: journal a new task and publish its Celery message, atomically.
-- There is no moment where a task is published but not journaled, or
-- journaled but not published (unless it is scheduled for later).
--
-- An id that exists already enqueues nothing: that is how idempotent calls
-- (whose id derives from their key) are deduplicated. For those, ARGV[10]
-- is the fingerprint of the call's arguments: a different one under the
-- same key is a conflict, and a task that ended DEAD is revived as a new run
-- (the key is released once the first call failed for good).
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist
-- KEYS[3] = queue list (kombu)            KEYS[4] = rl:schedule
-- KEYS[5] = rl:dlq          KEYS[6] = rl:{id}:done
-- KEYS[7] = rl:rate:<task>[:<rate key>]  (admission; any key when unused)
-- KEYS[8] = rl:stats:<bucket of now>      KEYS[9] = rl:queues
-- ARGV[1] = task id         ARGV[2] = task name      ARGV[3] = queue name
-- ARGV[4] = envelope JSON   ARGV[5] = Celery message template (ends before
--           the delivery tag's value)    ARGV[6] = delivery tag
-- ARGV[7] = now (ms)        ARGV[8] = due time (ms); 0 = publish now
-- ARGV[9] = history_max     ARGV[10] = argument fingerprint, "" if not idempotent
-- ARGV[11] = rate: emission interval (ms per call), 0 = no rate limit
-- ARGV[12] = rate: burst (calls allowed at once)
-- ARGV[13] = max queue depth, 0 = none   ARGV[14] = retry-after when full (ms)
-- ARGV[15] = stats bucket TTL (s)
-- returns {1, "PENDING"} when created (or revived), {0, state} when the id
--         exists already, {0, "CONFLICT"} for other arguments under one key,
--         {0, "REJECTED", retry_after_ms, "rate" | "depth"} when not admitted
--
-- Batches (push_many): n tasks in one call pass n such KEYS and ARGV sets one
-- after the other (task i's KEYS[1] is KEYS[9 * (i - 1) + 1], its ARGV[1] is
-- ARGV[15 * (i - 1) + 1]) and get the list of their n replies, in order. Each
-- task is handled exactly as alone; one call saves Redis and the client the
-- per-command work of n - 1 calls.
--
-- Admission is GCRA: the key holds the theoretical arrival time (TAT) of
-- the next call; a call is admitted when TAT - now <= (burst - 1) * interval,
-- which spaces calls evenly and allows bursts of exactly `burst`. A
-- duplicate of an existing id is answered before admission and uses nothing.
local function dispatch(k, a)
  local fingerprint, now = ARGV[a + 10] or '', ARGV[a + 7]
  -- One read: the state and key fingerprint decide; reason and attempt are
  -- what a revived run's history records.
  local existing = redis.call('HMGET', KEYS[k + 1], 'state', 'argh', 'reason', 'attempt')
  if existing[1] then
    if fingerprint ~= '' and existing[2] and existing[2] ~= fingerprint then return {0, 'CONFLICT'} end
    if existing[1] ~= 'DEAD' or fingerprint == '' then return {0, existing[1]} end
  end
  -- Admission, before any write: a rejected call changes nothing.
  local max_depth = tonumber(ARGV[a + 13] or 0)
  if max_depth > 0 and redis.call('LLEN', KEYS[k + 3]) >= max_depth then
    return {0, 'REJECTED', tonumber(ARGV[a + 14]), 'depth'}
  end
  local interval = tonumber(ARGV[a + 11] or 0)
  if interval > 0 then
    -- Redis's own clock, not the producer's (ARGV[7]): producers on several
    -- hosts share this limit, and their clocks disagree by more than a
    -- rate-limit interval.
    local t = redis.call('TIME')
    local clock = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
    local tat = math.max(tonumber(redis.call('GET', KEYS[k + 7]) or 0), clock)
    local tolerance = (tonumber(ARGV[a + 12]) - 1) * interval
    if tat - clock > tolerance then
      return {0, 'REJECTED', math.ceil(tat - tolerance - clock), 'rate'}
    end
    local next_tat = tat + interval
    redis.call('SET', KEYS[k + 7], string.format('%.3f', next_tat), 'PX', math.ceil(next_tat - clock) + 1)
  end
  local event = {t = tonumber(now), e = 'dispatched', q = ARGV[a + 3]}
  -- One HSET writes the entry: each write command costs Redis an AOF entry.
  if existing[1] then
    -- Revive (only an idempotent call gets here): a fresh run of the same
    -- logical call. The fence is never reset, so nothing of the dead run can
    -- ever commit over the new one.
    redis.call('HDEL', KEYS[k + 1], 'reason', 'error', 'tb', 'finished', 'result', 'due',
      'owner', 'pid', 'progress')
    redis.call('HSET', KEYS[k + 1], 'task', ARGV[a + 2], 'queue', ARGV[a + 3], 'state',
      'PENDING', 'env', ARGV[a + 4], 'msg', ARGV[a + 5], 'updated', now, 'attempt', 0,
      'failures', 0, 'res', 0, 'res_w', 0, 'argh', fingerprint)
    redis.call('ZREM', KEYS[k + 5], ARGV[a + 1])
    redis.call('DEL', KEYS[k + 6])
    event.e, event.was, event.attempts = 'revived', existing[3], tonumber(existing[4])
  else
    -- Not idempotent: no 'argh' field ('res' is written twice instead).
    local argh = fingerprint ~= '' and 'argh' or 'res'
    redis.call('HSET', KEYS[k + 1], 'id', ARGV[a + 1], 'task', ARGV[a + 2], 'queue',
      ARGV[a + 3], 'state', 'PENDING', 'env', ARGV[a + 4], 'msg', ARGV[a + 5], 'created', now,
      'updated', now, 'attempt', 0, 'fence', 0, 'res', 0, argh,
      fingerprint ~= '' and fingerprint or 0)
  end
  local due = tonumber(ARGV[a + 8])
  if due > 0 then
    redis.call('ZADD', KEYS[k + 4], due, ARGV[a + 1])
    event.due = due
  else
    redis.call('LPUSH', KEYS[k + 3], ARGV[a + 5] .. ARGV[a + 6] .. '"}}')
  end
  history(KEYS[k + 2], event, ARGV[a + 9])
  -- Counters for `rl status` (O(1)): the bucket's TTL is set with its first count.
  redis.call('SADD', KEYS[k + 9], ARGV[a + 3])
  count(KEYS[k + 8], 'dispatched', ARGV[a + 15])
  return {1, 'PENDING'}
end
if #KEYS == 9 then return dispatch(0, 0) end
local replies = {}
for i = 0, #KEYS / 9 - 1 do replies[i + 1] = dispatch(9 * i, 15 * i) end
return replies
