-- Records that sessions have logins as customers and returns, for each
-- login, the customer's logouts: the first 16 at or after the login's time,
-- and the 32 latest before it. Those before cannot end the session now, but
-- a session that a logout naming no session reached keeps them (for a login
-- earlier still): the login stores them too, so that what a session holds
-- does not depend on which came first.
-- KEYS: for each login, the customer's session index and logout set.
-- ARGV: dry run ('1'), then for each login: the session and the login's ms.
local out = {}
for k = 1, #KEYS, 2 do
  if ARGV[1] ~= '1' then
    redis.call('ZADD', KEYS[k], 'inf', ARGV[k + 1])
    -- a live session: the index no longer expires (mark.lua may have set a
    -- time when all its sessions had ended)
    redis.call('PERSIST', KEYS[k])
  end
  local logouts = redis.call('ZRANGEBYSCORE', KEYS[k + 1], ARGV[k + 2], '+inf', 'LIMIT', 0, 16)
  for _, st in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[k + 1], '(' .. ARGV[k + 2], '-inf', 'LIMIT', 0, 32)) do
    logouts[#logouts + 1] = st
  end
  out[#out + 1] = logouts
end
return out
