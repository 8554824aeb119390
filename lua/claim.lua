-- claim: a worker takes a delivered task to run it, starting a new attempt.
-- Only PENDING or RESERVED tasks can be claimed, so a duplicate delivery of a
-- task that runs, ran, waits for a retry or is dead is dropped here; so is
-- any delivery to a worker that is draining for shutdown (it handed the
-- task back already).
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist    KEYS[3] = rl:owned:<worker>
-- KEYS[4] = rl:draining:<worker>
-- ARGV[1] = task id         ARGV[2] = worker id       ARGV[3] = pid
-- ARGV[4] = now (ms)        ARGV[5] = history_max
-- ARGV[6] = claim token (one per delivery): a claim retried after its reply
--           was lost (a Redis restart) gets its own attempt back, instead of
--           being dropped and leaving the task RUNNING with nobody on it
-- returns {"run", fence, attempt, envelope, progress or false, failures}
--      (failures: how many earlier attempts raised; crashes are not counted)
--      or {"drop", state}     (state "MISSING" when no journal entry,
--                              "DRAINING" when the worker is shutting down)
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return {'drop', 'MISSING'}
end
if state == 'RUNNING' and ARGV[6] and ARGV[6] ~= '' then
  local mine = redis.call('HMGET', KEYS[1], 'claim', 'fence', 'attempt', 'env', 'progress',
    'failures')
  if mine[1] == ARGV[6] then
    return {'run', tonumber(mine[2]), tonumber(mine[3]), mine[4], mine[5], tonumber(mine[6] or 0)}
  end
end
if state ~= 'PENDING' and state ~= 'RESERVED' then
  return {'drop', state}
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  return {'drop', 'DRAINING'}
end
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('HSET', KEYS[1], 'state', 'RUNNING', 'owner', ARGV[2], 'pid', ARGV[3],
  'started', ARGV[4], 'updated', ARGV[4], 'claim', ARGV[6] or '')
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('RPUSH', KEYS[2], cjson.encode({t = tonumber(ARGV[4]), e = 'started',
  owner = ARGV[2], pid = tonumber(ARGV[3]), attempt = attempt, fence = fence}))
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[5]), -1)
local job = redis.call('HMGET', KEYS[1], 'env', 'progress', 'failures')
return {'run', fence, attempt, job[1], job[2], tonumber(job[3] or 0)}
