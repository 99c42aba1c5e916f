-- Applies one event's facts to a session. KEYS[1]: the session.
-- ARGV: now, retention, idle limit (ms, 0: none), default site, currency,
-- language, targetLocation, dry run ('1': compute, write nothing), then operations:
--   w <field> <stamp> <value> | ca <ms> | cx <ms> | ax <ms> | lx <stamp> | xe <stamp>
--   li <customer> <stamp> | lo <customer> <stamp>
-- Returns {changed (0/1), version, the key's expiry (ms, 0 for none),
-- ended for good (0/1)}.
local key = KEYS[1]
local now, retention, idle = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
begin(idle, ARGV[4], ARGV[5], ARGV[6], ARGV[7])
local s = load(key)
local before = shown(s)
local dry = ARGV[8] == '1'
local i = 9
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'w' then
    write(s, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]); i = i + 4
  elseif op == 'ca' then
    minnum(s, 'ca', ARGV[i + 1]); i = i + 2
  elseif op == 'cx' or op == 'ax' then
    maxnum(s, op, ARGV[i + 1]); i = i + 2
  elseif op == 'lx' or op == 'xe' then
    minstamp(s, op, ARGV[i + 1]); i = i + 2
  elseif op == 'li' then
    login(s, ARGV[i + 1], ARGV[i + 2]); i = i + 3
  elseif op == 'lo' then
    addlogout(s, ARGV[i + 1], ARGV[i + 2]); i = i + 3
  else
    return redis.error_reply('unknown operation ' .. tostring(op))
  end
end
local facts = changed
local v, expiry, final = finish(key, s, before, now, retention, idle, dry)
return {facts and 1 or 0, v, expiry, final and 1 or 0}
