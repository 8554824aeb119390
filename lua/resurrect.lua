-- resurrect: put a task a worker owned back in its queue, because the pool
-- process running it died, the whole worker died, or the worker is handing
-- its work back on shutdown. Only a task still owned by that worker and still
-- RESERVED or RUNNING moves, so a task that committed, or moved on to another
-- worker, is left alone (its stale membership in the owned set is dropped).
--
-- Crash accounting keeps blame fair: a pool-process death ("child") names
-- exactly one task, and so does the death of a worker that was running only
-- that one task ("worker_sole"): both count toward max_resurrections ("res").
-- A whole-worker death with several tasks running ("worker") implicates them
-- all, so it counts apart ("res_w") and only the much larger ARGV[7] limit
-- quarantines on it. A task that never started, or a handoff, counts nothing.
--
-- KEYS[1] = rl:{id}:job     KEYS[2] = rl:{id}:hist    KEYS[3] = rl:owned:<worker>
-- KEYS[4] = queue list (kombu)   KEYS[5] = rl:dlq      KEYS[6] = rl:{id}:done
-- KEYS[7] = rl:stats:<bucket of now>
-- ARGV[1] = task id         ARGV[2] = worker id       ARGV[3] = now (ms)
-- ARGV[4] = delivery tag    ARGV[5] = kind: child | worker_sole | worker | handoff
--           | handoff_reserved (handoff that leaves RUNNING tasks alone)
-- ARGV[6] = max_resurrections    ARGV[7] = limit for whole-worker deaths
-- ARGV[8] = history_max     ARGV[9] = pid of the dead pool process, or "": only a
--           task still running in that very process moves (kind child)
-- ARGV[10] = stats bucket TTL (s)
-- returns {"requeued", state before} | {"dead", count} | {"skipped", state}
local job = redis.call('HMGET', KEYS[1], 'state', 'owner', 'msg', 'res', 'res_w', 'pid')
local state, owner = job[1], job[2]
local kind = ARGV[5]
local movable = state == 'RESERVED' or (state == 'RUNNING' and kind ~= 'handoff_reserved')
local other_pid = ARGV[9] ~= '' and job[6] ~= ARGV[9]
if not state or owner ~= ARGV[2] or not movable or other_pid then
  -- Forget the membership only when the task is no longer this worker's:
  -- a RUNNING task left alone by a handoff_reserved or another process's
  -- death is still owned, and must come back if the worker dies later.
  if owner ~= ARGV[2] or (state ~= 'RUNNING' and state ~= 'RESERVED') then
    redis.call('SREM', KEYS[3], ARGV[1])
  end
  return {'skipped', state or 'MISSING'}
end
local now = tonumber(ARGV[3])
local hmax = ARGV[8]
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[1], 'owner', 'pid')
local precise = kind == 'child' or kind == 'worker_sole'
local counted = state == 'RUNNING' and (precise or kind == 'worker')
local event = {t = now, e = (kind == 'handoff' or kind == 'handoff_reserved') and 'handoff' or 'resurrected',
  kind = kind, from = ARGV[2], was = state}
if counted then
  local field = precise and 'res' or 'res_w'
  local n = redis.call('HINCRBY', KEYS[1], field, 1)
  event.count = n
  local limit = tonumber(precise and ARGV[6] or ARGV[7])
  if n >= limit then
    redis.call('HSET', KEYS[1], 'state', 'DEAD', 'reason', 'poison_pill', 'finished', ARGV[3],
      'updated', ARGV[3], 'error', 'killed its worker ' .. n .. ' times (' .. kind .. ' deaths)')
    redis.call('ZADD', KEYS[5], now, ARGV[1])
    history(KEYS[2], event, hmax)
    history(KEYS[2], {t = now, e = 'dead', reason = 'poison_pill'}, hmax)
    redis.call('DEL', KEYS[6])
    redis.call('RPUSH', KEYS[6], 'DEAD')
    count(KEYS[7], 'dead', ARGV[10])
    return {'dead', n}
  end
end
redis.call('HSET', KEYS[1], 'state', 'PENDING', 'updated', ARGV[3])
-- RPUSH: kombu consumes from the right, so the task goes to the front of
-- the queue (as kombu restores messages), not behind the whole backlog.
redis.call('RPUSH', KEYS[4], job[3] .. ARGV[4] .. '"}}')
history(KEYS[2], event, hmax)
count(KEYS[7], event.e, ARGV[10])
return {'requeued', state}
