-- lock_release: give back or extend an idempotency lock, only if the caller
-- still holds it (it may have expired and been taken by someone else).
--
-- KEYS[1] = rl:lock:{<key>}
-- ARGV[1] = holder token           ARGV[2] = new ttl (ms), or 0 to release
-- returns 1 done, 0 the caller no longer holds the lock
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
