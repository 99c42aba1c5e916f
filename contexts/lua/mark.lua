-- Sets the keep-until time of sessions in a customer's index: +inf while a
-- session may be live, else when its record goes. Only a session that has
-- ended for good is lowered ('='); otherwise the time only rises ('>'), so
-- that a mark computed before a concurrent login cannot undo the +inf that
-- login set. It drops the sessions whose record has gone and lets the index
-- expire with its last session.
-- KEYS: the index. ARGV: now, then mode, score and session triples.
for i = 2, #ARGV, 3 do
  if ARGV[i] == '=' then redis.call('ZADD', KEYS[1], 'XX', ARGV[i + 1], ARGV[i + 2])
  else redis.call('ZADD', KEYS[1], 'XX', 'GT', ARGV[i + 1], ARGV[i + 2]) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #top == 0 then return 0 end
if top[2] == 'inf' or top[2] == '+inf' then redis.call('PERSIST', KEYS[1])
else redis.call('PEXPIREAT', KEYS[1], math.floor(tonumber(top[2]))) end
return 1
