-- Applies an API edit to a session. KEYS[1]: the session.
-- ARGV: retention, idle limit, default site, currency, language,
-- targetLocation, access ('any' | 'anonymous' | 'customer'), the token's
-- customer, expected version ('' for none), max attributes, max context
-- bytes, whether the stored customer is expected ('1' or '0') and which ('' for
-- none), then operations:
--   create <lifetime ms> <customer or ''> | w <field> <value> | lo <customer> <stamp>
--   clearattrs | aset <name> <json> | adel <name>
-- The edit is stamped with Redis's clock, shared by every API replica, then
-- the microsecond and the version, so that of two edits in one millisecond
-- the later wins, also when the first changed nothing a reader sees.
-- Returns {'ok', version} | {'notfound'} | {'ended'} | {'conflict', version}
--       | {'customer', stored customer} | {'noattr'} | {'limit', 'attributes' | 'context'}.
local key = KEYS[1]
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local retention, idle = tonumber(ARGV[1]), tonumber(ARGV[2])
tenant(idle, ARGV[3], ARGV[4], ARGV[5], ARGV[6])
begin()
local access, customer, expected = ARGV[7], ARGV[8], ARGV[9]
local maxAttrs, maxBytes = tonumber(ARGV[10]), tonumber(ARGV[11])
local expectCustomer, expectedCustomer = ARGV[12] == '1', ARGV[13]
local s = load(key)
local before = shown(s)
-- Of two edits in one millisecond the later has the later microsecond
-- (Redis runs one script at a time; each takes more than one).
local stamp = b36time(now) .. string.format('~%03d%012d', tonumber(tm[2]) % 1000, (tonumber(s.v) or 0) + 1)
local cid = s.cid and select(2, split(s.cid)) or ''
local i = 14
local created = false
if ARGV[i] == 'create' then
  if s.e or (s.ca and not visible(s, now)) then return {'ended'} end
  if not s.ca then
    local who = ARGV[i + 2]
    if who == '' then who = cid end
    -- A customer's pending login makes it the customer's context.
    if expectCustomer and cid ~= expectedCustomer and cid ~= '' then return {'customer', cid} end
    created = true
    put(s, 'ca', tostring(now))
    if who ~= '' then
      login(s, who, stamp)
      write(s, 'cid', stamp, who)
      cid = who
    else
      maxnum(s, 'ux', tostring(now + tonumber(ARGV[i + 1])))
    end
  end
  i = i + 3
end
if not created then
  if not visible(s, now) then
    if s.e then return {'ended'} end
    return {'notfound'}
  end
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
    write(s, ARGV[i + 1], stamp, ARGV[i + 2]); i = i + 3
  elseif op == 'lo' then
    addlogout(s, ARGV[i + 1], ARGV[i + 2]); i = i + 3
  elseif op == 'clearattrs' then
    for k in pairs(s) do
      if isattr(k) then putattr(s, k, nil) end
    end
    i = i + 1
  elseif op == 'aset' then
    putattr(s, 'a:' .. ARGV[i + 1], ARGV[i + 2]); i = i + 3
  elseif op == 'adel' then
    if not s['a:' .. ARGV[i + 1]] then return {'noattr'} end
    putattr(s, 'a:' .. ARGV[i + 1], nil); i = i + 2
  else
    return redis.error_reply('unknown operation ' .. tostring(op))
  end
end
local n, bytes = 0, 0
for k, v in pairs(s) do
  if isattr(k) then
    n = n + 1
    bytes = bytes + #k - 2 + #v
  end
end
if n > maxAttrs then return {'limit', 'attributes'} end
if bytes > maxBytes then return {'limit', 'context'} end
-- Attribute edits are changes too, for a customer's idle limit.
if changed and track_changes then maxnum(s, 'lc', tostring(now)) end
local v = finish(key, s, before, now, retention, idle, false)
return {'ok', v}
