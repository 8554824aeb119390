-- dlq_purge: delete a dead task for good (`rl dlq purge`): its journal hash,
-- history and done list, and its DLQ entry, in one step. Only a DEAD task is
-- deleted, so a task released (or revived) meanwhile is left alone. A DLQ
-- entry whose journal hash is gone (deleted by hand) is removed too.
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist    KEYS[3] = rl:{id}:done
-- KEYS[4] = rl:dlq
-- ARGV[1] = task id
-- returns {1, "DEAD"} purged ({1, "MISSING"} for an entry without journal),
--         or {0, state} refused ("MISSING" when the id is in neither)
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'DEAD' then
  return {0, state}
end
local listed = redis.call('ZREM', KEYS[4], ARGV[1])
if not state and listed == 0 then
  return {0, 'MISSING'}
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return {1, state or 'MISSING'}
