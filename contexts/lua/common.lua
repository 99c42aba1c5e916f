-- Shared by apply.lua and edit.lua. A session is one hash:
--   cid, site, cur, cart, loc, lang   "<stamp> <value>" (greatest stamp wins)
--   ca  createdAt ms (earliest cart.created)     cx  cart-based expiry ms (latest)
--   ax  anonymous token expiry ms (latest)       lc  time of the last write ms
--   ux  expiry of a context an API upsert created (latest)
--   lx  earliest logout naming the session (stamp)
--   xe  earliest anonymous.expired (stamp)
--   cs  the customers with logins or logouts below (comma separated)
--   li:<customer>  earliest login as that customer (stamp)
--   lo:<customer>  logouts of that customer naming no session (sorted stamps, comma
--                  separated): those that can still end the session
--   a:<name>  attribute, raw JSON (written by the API only)
-- Derived on every write, for readers: e (end ms), dl (visible until ms), v (version), m (modified ms).
-- A stamp is 9 base-36 digits of Unix ms and an id (a digest of the event id,
-- or '~' and the version for an API edit): comparing stamp strings compares
-- stamps. Stamps and values stay short so that Redis keeps a session as a
-- compact listpack.
local MAX_LOGOUTS = 32

-- A session's fields, its attributes too.
local function load(key)
  local flat = redis.call('HGETALL', key)
  local s = {}
  for i = 1, #flat, 2 do s[flat[i]] = flat[i + 1] end
  return s
end

-- every field but the customers' and the attributes
local FACTS = {'cid', 'site', 'cur', 'cart', 'loc', 'lang', 'ca', 'cx', 'ax', 'ux', 'lx', 'xe', 'lc', 'e', 'dl', 'v', 'm', 'cs'}

-- byte values of "a" and ":" for a cheap check of attribute names
local A, COLON = 97, 58
local function isattr(k) local a, c = string.byte(k, 1, 2); return a == A and c == COLON end

local function stime(st) return tonumber(string.sub(st, 1, 9), 36) end

local B36 = '0123456789abcdefghijklmnopqrstuvwxyz'
local function b36time(ms)
  local out = {}
  for i = 9, 1, -1 do
    local d = ms % 36
    out[i] = string.sub(B36, d + 1, d + 1)
    ms = (ms - d) / 36
  end
  return table.concat(out)
end


local function split(v)
  local sp = string.find(v, ' ', 1, true)
  return string.sub(v, 1, sp - 1), string.sub(v, sp + 1)
end

-- the customers that a session has logins or logouts of
local NONE = {}
local function customers(s)
  if not s.cs then return NONE end
  local out = {}
  for c in string.gmatch(s.cs, '[^,]+') do out[#out + 1] = c end
  return out
end

-- A session's facts, for an event. Redis keeps a hash of small values as a
-- compact listpack (at most 128 fields of 64 bytes): one HGETALL walks it
-- once, for less than an HMGET naming the 18 facts costs. A hash with a
-- larger value (an attribute, most likely) is read by name, so that an
-- event never pays for up to 64 KiB of attributes (HGETALL of one took
-- 90-115 µs).
local function loadfacts(key)
  -- (pcall: the in-process stand-in knows no encodings, and reads whole)
  if redis.pcall('OBJECT', 'ENCODING', key) ~= 'hashtable' then return load(key) end
  local v = redis.call('HMGET', key, unpack(FACTS))
  local s = {}
  for i, f in ipairs(FACTS) do
    if v[i] then s[f] = v[i] end
  end
  local names = {}
  for _, c in ipairs(customers(s)) do
    names[#names + 1] = 'li:' .. c
    names[#names + 1] = 'lo:' .. c
  end
  if #names > 0 then
    local more = redis.call('HMGET', key, unpack(names))
    for i, n in ipairs(names) do
      if more[i] then s[n] = more[i] end
    end
  end
  return s
end

-- end stamp (or nil) and earliest login stamp (or nil: not a customer's)
local function derive(s)
  local e, minli = s.lx, nil
  for _, c in ipairs(customers(s)) do
    local v = s['li:' .. c]
    if v then
      if not minli or v < minli then minli = v end
      local lo = s['lo:' .. c]
      if lo then
        for st in string.gmatch(lo, '[^,]+') do
          if st > v then
            if not e or st < e then e = st end
            break
          end
        end
      end
    end
  end
  if s.xe and (not minli or minli > s.xe) and (not e or s.xe < e) then e = s.xe end
  return e, minli
end


-- whether a context is shown, its lapse aside
local function shown(s)
  return s.ca ~= nil and not s.e
end

local function visible(s, now)
  return s.ca and not s.e and (not s.dl or tonumber(s.dl) > now)
end

-- The state of one run. A program sets it with tenant and begin: as a Redis
-- function, the library's upvalues outlive the call.
-- track_changes: whether to keep lc, the time of the last change (only a
-- tenant with a customer idle limit needs it); DEFS: the tenant's default
-- of each field; dirty: pending changes, written at the end in one
-- HSET/HDEL; changed: any fact changed; seen: a value a reader sees changed.
local track_changes, DEFS, dirty, changed, seen

-- tenant sets the tenant's part, once per call.
local function tenant(idle, site, cur, lang, loc)
  track_changes = idle > 0
  DEFS = {site = site, cur = cur, lang = lang, loc = loc}
end

-- begin starts a session's step.
local function begin()
  dirty, changed, seen = {}, false, false
end

local function put(s, k, v)
  if s[k] ~= v then
    s[k] = v
    dirty[k] = true
    changed = true
  end
end

-- Sets or (v nil) removes an attribute: a change a reader sees. Only the
-- edit program writes attributes, so that put need not tell them apart.
local function putattr(s, k, v)
  if s[k] ~= v then
    put(s, k, v)
    seen = true
  end
end

-- A stored value is "<stamp> <value>". The space sorts before every stamp
-- character, so comparing the stored string with a stamp compares stamps:
-- stored >= stamp exactly when the stored stamp is the same or later.
local function write(s, f, stamp, value)
  local cur = s[f]
  local shownBefore = DEFS[f] or ''
  if cur then
    if cur >= stamp then return end
    shownBefore = string.sub(cur, string.find(cur, ' ', 10, true) + 1)
  end
  if value ~= shownBefore then seen = true end
  put(s, f, stamp .. ' ' .. value)
  if track_changes then
    local t = stime(stamp)
    if not s.lc or tonumber(s.lc) < t then put(s, 'lc', tostring(t)) end
  end
end

local function maxnum(s, k, v)
  if not s[k] or tonumber(s[k]) < tonumber(v) then put(s, k, v) end
end

local function minnum(s, k, v)
  if not s[k] or tonumber(s[k]) > tonumber(v) then put(s, k, v) end
end

local function minstamp(s, k, v)
  if not s[k] or s[k] > v then put(s, k, v) end
end

-- Notes that the session has logins or logouts of the customer.
local function addcustomer(s, customer)
  for _, c in ipairs(customers(s)) do
    if c == customer then return end
  end
  put(s, 'cs', s.cs and (s.cs .. ',' .. customer) or customer)
end

-- Records a login as the customer.
local function login(s, customer, stamp)
  addcustomer(s, customer)
  minstamp(s, 'li:' .. customer, stamp)
end

-- Keeps a logout of the customer naming no session. Only the first logout
-- after the session's earliest login as the customer can end it, and that
-- login can only move earlier: later logouts are dropped, and past the cap
-- the earliest ones (which only a login earlier still would need).
local function addlogout(s, customer, stamp)
  addcustomer(s, customer)
  local k = 'lo:' .. customer
  local list = {}
  for st in string.gmatch(s[k] or '', '[^,]+') do
    if st == stamp then return end
    list[#list + 1] = st
  end
  list[#list + 1] = stamp
  table.sort(list)
  local li = s['li:' .. customer]
  if li then
    for j = 1, #list do
      if list[j] > li then
        for _ = j + 1, #list do table.remove(list) end
        break
      end
    end
  end
  while #list > MAX_LOGOUTS do table.remove(list, 1) end
  put(s, k, table.concat(list, ','))
end

-- Recomputes the derived fields, bumps the version on a visible change
-- (before: whether the context was shown when the script started),
-- sets the key's expiry and writes everything that changed (nothing when
-- dry). Returns the version, the key's expiry (ms, 0 for none) and whether
-- the session has ended for good (by a logout; an anonymous expiry may still
-- be cancelled by an earlier login).
-- The key lives until retention after its deadline, and at least retention
-- from now, so that a replay of old events cannot let a tombstone vanish
-- before the events after it arrive.
local function finish(key, s, before, now, retention, idle, dry)
  local e, minli = derive(s)
  local deadline
  if e then
    deadline = stime(e)
    if not s.e or tonumber(s.e) ~= deadline then put(s, 'e', tostring(deadline)) end
  elseif s.e then
    put(s, 'e', nil)
  end
  -- dl is kept as the string it came from: no number formatting
  local dl
  if minli then
    if idle > 0 and s.lc then dl = tostring(tonumber(s.lc) + idle) end
  else
    dl = s.ax or s.cx
    if s.ux and (not dl or tonumber(s.ux) > tonumber(dl)) then dl = s.ux end
  end
  put(s, 'dl', dl)
  if not e then
    if dl then deadline = tonumber(dl) elseif not minli then deadline = now end
  end
  if shown(s) and (not before or seen) then
    put(s, 'v', tostring((tonumber(s.v) or 0) + 1))
    put(s, 'm', tostring(now))
  end
  -- the key's expiry, 0 for none
  local expiry = 0
  if deadline then expiry = math.max(deadline, now) + retention end
  local final = e ~= nil and e ~= s.xe
  if dry then return tonumber(s.v) or 0, expiry, final end
  local set, del = {}, {}
  for k in pairs(dirty) do
    if s[k] then
      set[#set + 1] = k
      set[#set + 1] = s[k]
    else
      del[#del + 1] = k
    end
  end
  if #set > 0 then redis.call('HSET', key, unpack(set)) end
  if #del > 0 then redis.call('HDEL', key, unpack(del)) end
  if #set > 0 then
    if expiry > 0 then
      redis.call('PEXPIREAT', key, expiry)
    else
      redis.call('PERSIST', key)
    end
  end
  return tonumber(s.v) or 0, expiry, final
end
