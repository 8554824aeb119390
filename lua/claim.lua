-- claim: a worker takes a delivered task to run it, starting a new attempt.
-- Only PENDING or RESERVED tasks can be claimed, so a duplicate delivery of a
-- task that runs, ran, waits for a retry or is dead is dropped here.
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist
-- ARGV[1] = owner (node:pid)   ARGV[2] = now (ms)   ARGV[3] = history_max
-- returns {"run", fence, attempt, envelope, progress or false}
--      or {"drop", state}     (state "MISSING" when no journal entry)
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return {'drop', 'MISSING'}
end
if state ~= 'PENDING' and state ~= 'RESERVED' then
  return {'drop', state}
end
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('HSET', KEYS[1], 'state', 'RUNNING', 'owner', ARGV[1],
  'started', ARGV[2], 'updated', ARGV[2])
redis.call('RPUSH', KEYS[2], cjson.encode(
  {t = tonumber(ARGV[2]), e = 'started', owner = ARGV[1], attempt = attempt, fence = fence}))
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
local job = redis.call('HMGET', KEYS[1], 'env', 'progress')
return {'run', fence, attempt, job[1], job[2]}
