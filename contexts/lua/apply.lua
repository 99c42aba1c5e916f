-- Applies events' facts to sessions, one session after another.
-- KEYS: the sessions. ARGV: now, retention, idle limit (ms, 0: none), default
-- site, currency, language, targetLocation, dry run ('1': compute, write
-- nothing), then for each session the number of its operation arguments
-- and the operations:
--   w <field> <stamp> <value> | ca <ms> | cx <ms> | ax <ms> | lx <stamp> | xe <stamp>
--   li <customer> <stamp> | lo <customer> <stamp>
-- Returns, for each session: changed (0/1), version, the key's expiry (ms,
-- 0 for none), ended for good (0/1).
local now, retention, idle = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local dry = ARGV[8] == '1'
tenant(idle, ARGV[4], ARGV[5], ARGV[6], ARGV[7])
local out = {}
local i = 9
for k = 1, #KEYS do
  local key = KEYS[k]
  local last = i + tonumber(ARGV[i])
  i = i + 1
  begin()
  local s = loadfacts(key)
  local before = shown(s)
  while i <= last do
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
  out[#out + 1] = facts and 1 or 0
  out[#out + 1] = v
  out[#out + 1] = expiry
  out[#out + 1] = final and 1 or 0
end
return out
