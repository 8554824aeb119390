-- republish: publish a fresh message for a task that is PENDING and owned by
-- no worker although a broker message for it was taken long ago (a worker
-- died between taking the message and reserving the task). A duplicate
-- message is harmless: claim drops all but one delivery.
--
-- A task in rl:schedule (a countdown, a retry, one waiting for a
-- max_concurrency slot) is the scheduler's to publish when due, not ours.
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist    KEYS[3] = queue list (kombu)
-- KEYS[4] = rl:schedule
-- ARGV[1] = now (ms)        ARGV[2] = delivery tag    ARGV[3] = history_max
-- ARGV[4] = task id
-- returns 1 republished, 0 nothing to do
local job = redis.call('HMGET', KEYS[1], 'state', 'owner', 'msg')
if job[1] ~= 'PENDING' or job[2] or redis.call('ZSCORE', KEYS[4], ARGV[4]) then
  return 0
end
-- RPUSH: to the front of the queue (kombu consumes from the right).
redis.call('RPUSH', KEYS[3], job[3] .. ARGV[2] .. '"}}')
history(KEYS[2], {t = tonumber(ARGV[1]), e = 'republished'}, ARGV[3])
return 1
