-- release: an attempt of a task with max_concurrency ended (committed,
-- failed, dead-lettered or refused): give its slot back and name the oldest
-- live waiter, which the caller re-publishes at once (requeue.lua).
-- Only the holder's own fence releases, so a superseded attempt (a zombie)
-- cannot free the slot of the newer attempt of the same task.
--
-- KEYS[1] = rl:sem:<task>   KEYS[2] = rl:semwait:<task>   KEYS[3] = rl:schedule
-- ARGV[1] = task id         ARGV[2] = fence of the ending attempt
-- ARGV[3] = job key prefix ("rl:{"; waiters' job hashes are read)
-- returns {waiter id, waiter queue} or {} when nobody waits
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if held and tonumber(held) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
while true do
  local first = redis.call('ZPOPMIN', KEYS[2])
  if #first == 0 then
    return {}
  end
  local id = first[1]
  -- A waiter still PENDING in the schedule is live; any other (it ran after
  -- its backstop re-check, was purged, ...) is dropped from the list.
  local job = redis.call('HMGET', ARGV[3] .. id .. '}:job', 'state', 'queue')
  if job[1] == 'PENDING' and redis.call('ZSCORE', KEYS[3], id) then
    return {id, job[2]}
  end
end
