-- Records that a session has a login as the customer and returns the
-- customer's logouts stamped at or after the login's time.
-- KEYS: the customer's session index and logout set. ARGV: session, login
-- ms, dry run ('1').
if ARGV[3] ~= '1' then redis.call('ZADD', KEYS[1], 'inf', ARGV[1]) end
return redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[2], '+inf', 'LIMIT', 0, 16)
