-- Applies an API edit to a session. KEYS[1]: the session.
-- ARGV: now, retention, idle limit, default site, currency, language,
-- targetLocation, access ('any' | 'anonymous' | 'customer'), the token's
-- customer, expected version ('' for none), max attributes, max context
-- bytes, whether the stored customer is expected ('1' or '0') and which ('' for
-- none), then operations:
--   create <lifetime ms> <stamp> <customer or ''> | w <field> <stamp> <value>
--   clearattrs | aset <name> <json> | adel <name>
-- Returns {'ok', version} | {'notfound'} | {'ended'} | {'conflict', version}
--       | {'noattr'} | {'limit', 'attributes' | 'context'}.
local key = KEYS[1]
local now, retention, idle = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local defs = {site = ARGV[4], cur = ARGV[5], lang = ARGV[6], loc = ARGV[7]}
local access, customer, expected = ARGV[8], ARGV[9], ARGV[10]
local maxAttrs, maxBytes = tonumber(ARGV[11]), tonumber(ARGV[12])
local expectCustomer, expectedCustomer = ARGV[13] == '1', ARGV[14]
local s = load(key)
local before = view(s, defs)
local i = 15
local created = false
if ARGV[i] == 'create' then
  if s.e or (s.ca and not visible(s, now)) then return {'ended'} end
  if not s.ca then
    local stamp, who = ARGV[i + 2], ARGV[i + 3]
    created = true
    put(s, 'ca', tostring(stime(stamp)))
    if who ~= '' then
      minstamp(s, 'li:' .. who, stamp)
      write(s, 'cid', stamp, who)
    else
      maxnum(s, 'cx', tostring(now + tonumber(ARGV[i + 1])))
      if s.ax and tonumber(s.ax) <= now then put(s, 'ax', nil) end
    end
  end
  i = i + 4
end
if not created then
  if not visible(s, now) then
    if s.e then return {'ended'} end
    return {'notfound'}
  end
  local cid = s.cid and select(2, split(s.cid)) or ''
  if (access == 'anonymous' and cid ~= '') or (access == 'customer' and cid ~= '' and cid ~= customer) then
    return {'notfound'}
  end
  if (expected ~= '' and tonumber(expected) ~= (tonumber(s.v) or 0)) or (expectCustomer and cid ~= expectedCustomer) then
    return {'conflict', tonumber(s.v) or 0}
  end
end
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'w' then
    write(s, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]); i = i + 4
  elseif op == 'clearattrs' then
    for k in pairs(s) do
      if string.sub(k, 1, 2) == 'a:' then put(s, k, nil) end
    end
    i = i + 1
  elseif op == 'aset' then
    put(s, 'a:' .. ARGV[i + 1], ARGV[i + 2]); i = i + 3
  elseif op == 'adel' then
    if not s['a:' .. ARGV[i + 1]] then return {'noattr'} end
    put(s, 'a:' .. ARGV[i + 1], nil); i = i + 2
  else
    return redis.error_reply('unknown operation ' .. tostring(op))
  end
end
local n, bytes = 0, 0
for k, v in pairs(s) do
  if string.sub(k, 1, 2) == 'a:' then
    n = n + 1
    bytes = bytes + #k - 2 + #v
  end
end
if n > maxAttrs then return {'limit', 'attributes'} end
if bytes > maxBytes then return {'limit', 'context'} end
return {'ok', finish(key, s, before, now, retention, idle, defs, false)}
