-- claim: a worker takes a delivered task to run it, starting a new attempt.
-- Only PENDING or RESERVED tasks can be claimed, so a duplicate delivery of a
-- task that runs, ran, waits for a retry or is dead is dropped here; so is
-- any delivery to a worker that is draining for shutdown (it handed the
-- task back already).
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist    KEYS[3] = rl:owned:<worker>
-- KEYS[4] = rl:draining:<worker>
-- KEYS[5] = rl:sem:<task>   (holders: task id -> fence)  KEYS[6] = rl:semwait:<task>
-- KEYS[7] = rl:schedule     (KEYS[5..7] are used only when ARGV[7] > 0)
-- ARGV[1] = task id         ARGV[2] = worker id       ARGV[3] = pid
-- ARGV[4] = now (ms)        ARGV[5] = history_max
-- ARGV[6] = claim token (one per delivery): a claim retried after its reply
--           was lost (a Redis restart) gets its own attempt back, instead of
--           being dropped and leaving the task RUNNING with nobody on it
-- ARGV[7] = max_concurrency of the task across the cluster, 0 = none
-- ARGV[8] = first re-check delay (ms) of a task waiting for a slot
-- ARGV[9] = job key prefix ("rl:{"): the holders' job hashes are read to
--           validate them, so this script reads keys it derives (single-node
--           Redis only, as all of Relier)
-- returns {"run", fence, attempt, envelope, progress or false, failures}
--      (failures: how many earlier attempts raised; crashes are not counted)
--      or {"drop", state}     (state "MISSING" when no journal entry,
--                              "DRAINING" when the worker is shutting down,
--                              "WAITING" when max_concurrency slots are full)
--
-- The concurrency semaphore is fenced: a holder counts only while its job is
-- RUNNING under the very fence it claimed with. Holders are validated when
-- the semaphore looks full, so the slot of an attempt that ended, or whose
-- worker died and was resurrected, comes back without anyone releasing it.
-- A task that finds no slot goes back to PENDING in rl:schedule (the
-- scheduler re-publishes it, with backoff) and joins the wait list, from
-- which a finishing holder wakes the oldest waiter at once (release.lua).
-- One read serves every branch (each command is a round of Redis's work).
local job = redis.call('HMGET', KEYS[1], 'state', 'claim', 'fence', 'attempt', 'env',
  'progress', 'failures')
local state = job[1]
if not state then
  return {'drop', 'MISSING'}
end
if state == 'RUNNING' and ARGV[6] and ARGV[6] ~= '' and job[2] == ARGV[6] then
  return {'run', tonumber(job[3]), tonumber(job[4]), job[5], job[6], tonumber(job[7] or 0)}
end
if state ~= 'PENDING' and state ~= 'RESERVED' then
  return {'drop', state}
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  return {'drop', 'DRAINING'}
end
local limit = tonumber(ARGV[7] or 0)
if limit > 0 then
  if redis.call('ZCARD', KEYS[5]) >= limit then
    local holders = redis.call('ZRANGE', KEYS[5], 0, -1, 'WITHSCORES')
    for i = 1, #holders, 2 do
      local h = redis.call('HMGET', ARGV[9] .. holders[i] .. '}:job', 'state', 'fence')
      if h[1] ~= 'RUNNING' or tonumber(h[2]) ~= tonumber(holders[i + 1]) then
        redis.call('ZREM', KEYS[5], holders[i])
      end
    end
  end
  if redis.call('ZCARD', KEYS[5]) >= limit then
    local waits = redis.call('HINCRBY', KEYS[1], 'waits', 1)
    local due = tonumber(ARGV[4]) + tonumber(ARGV[8]) * 2 ^ math.min(waits - 1, 3)
    redis.call('HSET', KEYS[1], 'state', 'PENDING', 'updated', ARGV[4], 'due', due)
    redis.call('HDEL', KEYS[1], 'owner')
    redis.call('SREM', KEYS[3], ARGV[1])
    redis.call('ZADD', KEYS[6], 'NX', ARGV[4], ARGV[1])
    redis.call('ZADD', KEYS[7], due, ARGV[1])
    if waits == 1 then
      history(KEYS[2], {t = tonumber(ARGV[4]), e = 'waiting',
        reason = 'max_concurrency', limit = limit}, ARGV[5])
    end
    return {'drop', 'WAITING'}
  end
end
-- The fence and attempt read above, incremented and written with the rest
-- in one HSET (the script is atomic: nothing changed them since).
local fence = tonumber(job[3] or 0) + 1
local attempt = tonumber(job[4] or 0) + 1
redis.call('HSET', KEYS[1], 'fence', fence, 'attempt', attempt, 'state', 'RUNNING',
  'owner', ARGV[2], 'pid', ARGV[3], 'started', ARGV[4], 'updated', ARGV[4],
  'claim', ARGV[6] or '')
redis.call('SADD', KEYS[3], ARGV[1])
if limit > 0 then
  redis.call('ZADD', KEYS[5], fence, ARGV[1])
  redis.call('ZREM', KEYS[6], ARGV[1])
  redis.call('HDEL', KEYS[1], 'waits')
end
history(KEYS[2], {t = tonumber(ARGV[4]), e = 'started',
    owner = ARGV[2], pid = tonumber(ARGV[3]), attempt = attempt, fence = fence}, ARGV[5])
return {'run', fence, attempt, job[5], job[6], tonumber(job[7] or 0)}
