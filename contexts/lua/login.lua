-- Records that sessions have logins as customers and returns, for each
-- login, the customer's logouts stamped at or after the login's time.
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
  out[#out + 1] = redis.call('ZRANGEBYSCORE', KEYS[k + 1], ARGV[k + 2], '+inf', 'LIMIT', 0, 16)
end
return out
