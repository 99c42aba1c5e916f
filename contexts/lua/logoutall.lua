-- Records a logout naming no session and returns the customer's sessions.
-- KEYS: session index, logout set. ARGV: stamp, ms, now, retention, dry run.
-- The index scores a live session +inf and an ended one the time its record
-- may go; those past it are dropped here.
local ms, now, retention = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if ARGV[5] == '1' then return redis.call('ZRANGE', KEYS[1], 0, -1) end
redis.call('ZADD', KEYS[2], ms, ARGV[1])
local newest = tonumber(redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (newest - retention))
redis.call('PEXPIREAT', KEYS[2], math.max(newest, now) + retention)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
