-- Shared by every routing operation. routing/redis/scripts.py puts this file,
-- decide.lua and every operation (each a function) into one Redis Functions
-- library, loaded once per server: nothing here is rebuilt per call. A library's
-- locals outlive a call, so bind() sets each call's keys, arguments and caches;
-- records an operation changed are written once, at its end (flush).
--
-- KEYS are the same fixed list for every operation of a group (routing/redis/keys.py):
-- every key an operation touches is declared, none is built from data.
local KEYS, ARGV
local K_AGENT, K_TICKET, K_PROFILE, K_PFREE, K_PSTAFF
local K_AVAIL, K_REQUIRE, K_RWAIT, K_WAIT, K_QWAIT
local K_QCOUNT, K_EVENTS, K_LEASE, K_HOLDER, K_WRAP
local K_CB, K_CBW, K_LAST, K_AHT, K_ENDED
local K_R2P, K_P2R, K_HEADS, K_CALLS
local K_SEQ  -- the store-wide ticket counter, on a single Redis only (else nil)

-- ARGV common to every operation; the operation's own arguments start at ARGV[9].
local NOW          -- the router's clock (injectable: tests drive it)
local NOW_S        -- S(NOW), formatted once per call (printf of 17 digits is dear)
local GROUP
local LEASE        -- seconds a lease lasts without renewal
local ENGINE       -- the calling engine
local MAX_MISSES
local CHANNEL      -- pub/sub prefix (channels are not keys)
local CB_WINDOW    -- a callback worker counts as alive this long; 0: always
local KEEP_ENDED   -- seconds an ended ticket is kept (replays find it)

local HIGH = '\255'
local active_keys = nil  -- the strategy keys kept, read once per call (kept_keys)
local graph = nil  -- this call's cache of the eligibility graph (kept_keys)
local leased = {}  -- tickets whose lease this call has renewed already
local STAFFED = {available = true, reserved = true, on_call = true, wrap_up = true}
local BUSY = {reserved = true, on_call = true, wrap_up = true}

-- Numbers are kept as '%.17g' strings (cjson and tostring keep only 14 digits).
local function S(x) return string.format('%.17g', x) end
local function N(x) return tonumber(x) or 0 end
-- Fixed width, so that byte order is numeric order (0 <= x < 1e13).
local function F(x)
  x = tonumber(x) or 0
  if x < 0 then x = 0 end
  return string.format('%023.9f', x)
end

-- Byte order. Lua's '<' on strings follows the server's collation locale: it is
-- used when that is byte order for the characters keys and ids are made of.
local BYTEWISE = ('B' < 'a') and ('|' > 'z') and ('.' < '0') and ('-' < '.') and ('_' > 'Z')
local function lt(a, b)
  if BYTEWISE then return a < b end
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function fields(s)
  local out = {}
  local start = 1
  while true do
    local at = string.find(s, '|', start, true)
    if not at then table.insert(out, string.sub(s, start)); return out end
    table.insert(out, string.sub(s, start, at - 1))
    start = at + 1
  end
end

local function sorted_keys(t)
  local names = {}
  for k in pairs(t) do table.insert(names, k) end
  table.sort(names, lt)
  return names
end

local function canon(levels)
  local out = {}
  for _, name in ipairs(sorted_keys(levels)) do table.insert(out, name .. '=' .. levels[name]) end
  return table.concat(out, ',')
end

local function event(kind, ...)
  redis.call('XADD', K_EVENTS, 'MAXLEN', '~', 1000000, '*', 'event', kind, 'at', NOW_S,
    'group', GROUP, ...)
end

-- ------------------------------------------------------------------ records

-- Records are read once per script and written once, at its end (flush): every
-- aget/tget of one id returns the same table, and aput/tput only mark it.
local agents_seen, agents_dirty = {}, {}
local tickets_seen, tickets_dirty = {}, {}

local function aget(aid)
  local a = agents_seen[aid]
  if a == nil then
    local raw = redis.call('HGET', K_AGENT, aid)
    if not raw then return nil end
    a = cjson.decode(raw)
    agents_seen[aid] = a
  end
  return a
end
local function aput(a)
  agents_seen[a.id] = a
  agents_dirty[a.id] = a
end

local function tget(tid)
  tid = tostring(tid)
  local t = tickets_seen[tid]
  if t == nil then
    local raw = redis.call('HGET', K_TICKET, tid)
    if not raw then return nil end
    t = cjson.decode(raw)
    tickets_seen[tid] = t
  end
  return t
end
local function tput(t)
  tickets_seen[t.id] = t
  tickets_dirty[t.id] = t
end
local function tforget(tid)
  tickets_seen[tid] = nil
  tickets_dirty[tid] = nil
  redis.call('HDEL', K_TICKET, tid)
end
local function aforget(aid)
  agents_seen[aid] = nil
  agents_dirty[aid] = nil
  redis.call('HDEL', K_AGENT, aid)
end

local function flush()
  for id, a in pairs(agents_dirty) do redis.call('HSET', K_AGENT, id, cjson.encode(a)) end
  for id, t in pairs(tickets_dirty) do redis.call('HSET', K_TICKET, id, cjson.encode(t)) end
  agents_dirty, tickets_dirty = {}, {}
end

local profiles = {}
local function pdef(pid)
  local p = profiles[pid]
  if p == nil then
    local raw = redis.call('HGET', K_PROFILE, pid)
    if not raw then return nil end
    p = cjson.decode(raw)
    profiles[pid] = p
  end
  return p
end

local requirements = {}
local function rdef(rid)
  local r = requirements[rid]
  if r == nil then
    local raw = redis.call('HGET', K_REQUIRE, rid)
    if not raw then return nil end
    r = cjson.decode(raw)
    requirements[rid] = r
  end
  return r
end

-- One call's keys, arguments and empty caches.
local function bind(keys, args)
  KEYS, ARGV = keys, args
  K_AGENT, K_TICKET, K_PROFILE, K_PFREE, K_PSTAFF = keys[1], keys[2], keys[3], keys[4], keys[5]
  K_AVAIL, K_REQUIRE, K_RWAIT, K_WAIT, K_QWAIT = keys[6], keys[7], keys[8], keys[9], keys[10]
  K_QCOUNT, K_EVENTS, K_LEASE, K_HOLDER, K_WRAP = keys[11], keys[12], keys[13], keys[14], keys[15]
  K_CB, K_CBW, K_LAST, K_AHT, K_ENDED = keys[16], keys[17], keys[18], keys[19], keys[20]
  K_R2P, K_P2R, K_HEADS, K_CALLS = keys[21], keys[22], keys[23], keys[24]
  K_SEQ = keys[25]
  NOW, GROUP, LEASE, ENGINE = tonumber(args[1]), args[2], tonumber(args[3]), args[4]
  NOW_S = S(NOW)
  MAX_MISSES, CHANNEL, CB_WINDOW = tonumber(args[5]), args[6], tonumber(args[7])
  KEEP_ENDED = tonumber(args[8])
  agents_seen, agents_dirty, tickets_seen, tickets_dirty = {}, {}, {}, {}
  profiles, requirements = {}, {}
  active_keys = nil
  graph = nil
  leased = {}
end

-- ------------------------------------------------------------- eligibility

-- ROUTING.md "Eligibility" 2-5, for a profile (skills, langs, site) and a
-- requirement (skills, any, lang, site_only, site); rule 1 is the index itself.
local function eligible(p, r)
  local have = p.skills
  for s, n in pairs(r.skills) do
    if N(have[s]) < N(n) then return false end
  end
  if next(r.any) ~= nil then
    local ok = false
    for s, n in pairs(r.any) do
      if N(have[s]) >= N(n) then ok = true; break end
    end
    if not ok then return false end
  end
  if r.lang ~= '' and #p.langs > 0 then
    local ok = false
    for _, l in ipairs(p.langs) do if l == r.lang then ok = true; break end end
    if not ok then return false end
  end
  if r.site_only == 1 and p.site ~= r.site then return false end
  return true
end

local function callbacks_placeable()
  if CB_WINDOW <= 0 then return true end
  return redis.call('ZCOUNT', K_CBW, NOW - CB_WINDOW, '+inf') > 0
end

-- ----------------------------------------------------------------- agents

-- Agent a's member of K_AVAIL for strategy key 'li', 'rr' or 'lo' (each formatted
-- only when that key is kept: a formatted number is a printf).
local NUMBER_OF = {li = 'idle_since', rr = 'reserved_at', lo = 'busy'}
local function avail_member(a, key)
  return a.pid .. '|' .. key .. '|' .. F(a[NUMBER_OF[key]]) .. '|' .. a.id
end

-- Each profile's head per strategy, "<number>|<id>", in K_PFREE ("<pid>|li",
-- "<pid>|rr", "<pid>|lo"), present while the profile has a free agent: a
-- decision reads every eligible profile's head in one HMGET.
--
-- 'li' (longest idle, most skilled) is always kept. 'rr' and 'lo' are kept from
-- the first decision that asks for them on (use_strategy), marked by the fields
-- "|on|rr" and "|on|lo" of K_PFREE (no profile id holds a '|'): a group whose
-- queues all route by idle time does not pay for two indexes it never reads
-- (two ZADDs on every agent's return, eight calls on every reservation; about a
-- sixth of Redis's time per enqueue, bench/README.md).
--
-- The field "|wide|" of K_PFREE and K_RWAIT keeps both hashes hash tables. Redis
-- keeps a hash of up to 512 fields (hash-max-listpack-entries) with short values
-- as a listpack, where finding a field is a scan of the whole hash: a decision's
-- HMGET of some 40 heads in a group of 300 profiles then took a third of Redis's
-- time per enqueue. One value longer than hash-max-listpack-value (64 bytes by
-- default) converts a hash to a hash table for good (O(1) per field); the field
-- also keeps the hash from ever being empty, so it is never deleted and
-- converted back. No profile or requirement id holds a '|'.
local WIDE = 'this value is longer than hash-max-listpack-value: the hash stays a hash table'

-- The eligibility graph's edges (below: link), which every decision reads, are
-- cached in the library's Lua state, which outlives calls: per requirement its
-- profiles, per profile its requirements, as the decisions use them. It is safe
-- because an edge never changes once made: profile and requirement ids are
-- hashes of their definitions, so an edge (rid, pid) is true wherever both
-- exist, and no edge is ever removed but with all of the group's keys. So:
--   * link() drops the entries of the requirement and the profile it links;
--   * a cache belongs to one graph token, kept in K_PFREE's '|wide|' field and
--     new whenever that field is made again: after the group's keys were deleted
--     or lost, or for another database of this server, another cache is used.
-- A cache is a plain memo of ZRANGEBYLEX reads (the same order, the same
-- members); it is never written to Redis and not replicated.
local caches, cache_count, made = {}, 0, 0

local function kept_keys()
  if active_keys == nil then
    local on = redis.call('HMGET', K_PFREE, '|on|rr', '|on|lo', '|wide|')
    active_keys = {'li'}
    if on[1] then active_keys[#active_keys + 1] = 'rr' end
    if on[2] then active_keys[#active_keys + 1] = 'lo' end
    local token = on[3]
    if not token then
      made = made + 1
      local time = redis.call('TIME')
      token = WIDE .. '|' .. time[1] .. '.' .. time[2] .. '.' .. made
      redis.call('HSET', K_PFREE, '|wide|', token)
      redis.call('HSET', K_RWAIT, '|wide|', WIDE)
    end
    graph = caches[token]
    if graph == nil then
      if cache_count >= 64 then caches, cache_count = {}, 0 end
      graph = {r = {}, p = {}}
      caches[token] = graph
      cache_count = cache_count + 1
    end
  end
  return active_keys
end

-- The edges "<id>|<other>|<tail>" of one id in lexicographic set key, as two
-- lists in the set's order: the other ids and the tails (no id holds a '|').
local function edges_of(key, id)
  local edges = redis.call('ZRANGEBYLEX', key, '[' .. id .. '|', '[' .. id .. '|' .. HIGH)
  local others, tails, from = {}, {}, #id + 2
  for i, member in ipairs(edges) do
    local bar = string.find(member, '|', from, true)
    others[i] = string.sub(member, from, bar - 1)
    tails[i] = string.sub(member, bar + 1)
  end
  return others, tails
end

-- Requirement rid's edges: {pids, levels, names = {[key] = K_PFREE fields}}.
local function requirement_edges(rid)
  kept_keys()
  local e = graph.r[rid]
  if e == nil then
    local pids, levels = edges_of(K_R2P, rid)  -- rid|pid|level
    e = {pids = pids, levels = levels, names = {}}
    graph.r[rid] = e
  end
  return e
end

-- Profile pid's edges: {rids, cbs, set = {["<rid>|<cb>"] = true}}.
local function profile_edges(pid)
  kept_keys()
  local e = graph.p[pid]
  if e == nil then
    local rids, cbs = edges_of(K_P2R, pid)  -- pid|rid|cb
    local set = {}
    for i, rid in ipairs(rids) do set[rid .. '|' .. cbs[i]] = true end
    e = {rids = rids, cbs = cbs, set = set}
    graph.p[pid] = e
  end
  return e
end

local function index_member(a, key, member)
  redis.call('ZADD', K_AVAIL, 0, member)
  local mine = string.sub(member, #a.pid + 5)
  local field = a.pid .. '|' .. key
  local head = redis.call('HGET', K_PFREE, field)
  if not head or lt(mine, head) then redis.call('HSET', K_PFREE, field, mine) end
end

local function index_agent(a)
  for _, key in ipairs(kept_keys()) do index_member(a, key, avail_member(a, key)) end
end

local function unindex_agent(a)
  for _, key in ipairs(kept_keys()) do
    local member = avail_member(a, key)
    redis.call('ZREM', K_AVAIL, member)
    local field = a.pid .. '|' .. key
    if redis.call('HGET', K_PFREE, field) == string.sub(member, #a.pid + 5) then
      local prefix = a.pid .. '|' .. key .. '|'
      local got = redis.call('ZRANGEBYLEX', K_AVAIL, '[' .. prefix, '[' .. prefix .. HIGH,
        'LIMIT', 0, 1)
      if #got > 0 then
        redis.call('HSET', K_PFREE, field, string.sub(got[1], #prefix + 1))
      else
        redis.call('HDEL', K_PFREE, field)
      end
    end
  end
end

-- Strategy key 'rr' or 'lo' is kept from now on: the first time, every available
-- agent (the 'li' members of K_AVAIL) is indexed for it, once: O(available).
local function use_strategy(key)
  if key == 'li' then return end
  for _, kept in ipairs(kept_keys()) do
    if kept == key then return end
  end
  local ids, start = {}, 0  -- read first: the new members move the offsets
  while true do
    local got = redis.call('ZRANGE', K_AVAIL, start, start + 999)
    if #got == 0 then break end
    for _, member in ipairs(got) do
      local f = fields(member)  -- pid, key, number, id
      if f[2] == 'li' then ids[#ids + 1] = f[4] end
    end
    start = start + 1000
  end
  for _, aid in ipairs(ids) do
    local a = aget(aid)
    if a then index_member(a, key, avail_member(a, key)) end
  end
  redis.call('HSET', K_PFREE, '|on|' .. key, '1')
  active_keys[#active_keys + 1] = key
end

local function staff(pid, delta)
  if redis.call('HINCRBY', K_PSTAFF, pid, delta) <= 0 then redis.call('HDEL', K_PSTAFF, pid) end
end

-- Change an agent's state (the record is saved) as the reference's _set_state;
-- the indexes follow. Entering 'available' is become_available's alone. With
-- ``folded`` no 'state' event is written: the caller's own event carries the change
-- (a reservation: ROUTING.md "Events"); the state before is returned for it.
local function set_state(a, after, reason, folded)
  local before = a.state
  if BUSY[before] and not BUSY[after] then
    a.busy = S(N(a.busy) + NOW - N(a.busy_since))
  elseif BUSY[after] and not BUSY[before] then
    a.busy_since = NOW_S
  end
  if before == 'available' and after ~= 'available' then unindex_agent(a) end
  a.state = after
  a.reason = reason or ''
  if after == 'paused' or after == 'logged_out' then
    a.pending = ''
    a.pending_reason = ''
  end
  if after ~= 'wrap_up' and a.wrap_ticket ~= '' then
    redis.call('ZREM', K_WRAP, a.id)
    a.wrap_ticket = ''
    a.wrap_until = ''
  end
  if after == 'available' and before ~= 'available' then index_agent(a) end
  if STAFFED[before] and not STAFFED[after] then staff(a.pid, -1) end
  if STAFFED[after] and not STAFFED[before] then staff(a.pid, 1) end
  aput(a)
  if folded then return before end
  event('state', 'agent', a.id, 'before', before, 'after', after, 'reason', reason or '',
    'site', a.site)
end

-- ---------------------------------------------------------------- tickets

local function primary(skills)
  local best, level = '', -1
  for _, name in ipairs(sorted_keys(skills)) do
    local n = N(skills[name])
    if n > level then best, level = name, n end
  end
  return best
end

local function requirement(t)
  local site = ''
  if t.site_only == 1 then site = t.site end
  local cb = 0
  if t.callback ~= '' then cb = 1 end
  local text = table.concat({t.queue, canon(t.skills), canon(t.any), t.lang,
    tostring(t.site_only), site, tostring(cb)}, '\n')
  local rid = string.sub(redis.sha1hex(text), 1, 16)
  return rid, {queue = t.queue, skills = t.skills, any = t.any, lang = t.lang,
    site_only = t.site_only, site = site, cb = cb}
end

local function order(t)
  return string.format('%03d', 100 - N(t.priority)) .. '|' .. F(t.arrival) .. '|' ..
    string.format('%015d', N(t.seq)) .. '|' .. t.id
end

-- The eligibility graph, kept as two lexicographic sets: "<rid>|<pid>|<level>"
-- (level: the profile's level in the requirement's primary skill) and
-- "<pid>|<rid>|<cb>". An edge is computed once, when its profile or its
-- requirement first appears; both are kept after their last member leaves.
local function link(pid, p, rid, r)
  if eligible(p, r) then
    local main = primary(r.skills)
    local level = 0
    if main ~= '' then level = N(p.skills[main]) end
    redis.call('ZADD', K_R2P, 0, rid .. '|' .. pid .. '|' .. string.format('%03d', level))
    redis.call('ZADD', K_P2R, 0, pid .. '|' .. rid .. '|' .. r.cb)
    kept_keys()
    graph.r[rid] = nil
    graph.p[pid] = nil
  end
end

local function ensure_requirement(rid, def)
  if requirements[rid] or redis.call('HEXISTS', K_REQUIRE, rid) == 1 then return end
  redis.call('HSET', K_REQUIRE, rid, cjson.encode(def))
  requirements[rid] = def
  local all = redis.call('HGETALL', K_PROFILE)
  for i = 1, #all, 2 do link(all[i], cjson.decode(all[i + 1]), rid, def) end
end

local function ensure_profile(pid, body)
  if profiles[pid] or redis.call('HEXISTS', K_PROFILE, pid) == 1 then return end
  redis.call('HSET', K_PROFILE, pid, body)
  local p = cjson.decode(body)
  profiles[pid] = p
  local all = redis.call('HGETALL', K_REQUIRE)
  for i = 1, #all, 2 do link(pid, p, all[i], cjson.decode(all[i + 1])) end
end

-- Waiting tickets: "<rid>|<tail>" in K_WAIT (a requirement's range, in call
-- order); each requirement's head tail in K_RWAIT (present while it has one), and
-- every head, "<tail>|<rid>|<cb>", in K_HEADS (all requirements' heads in call order).
local function set_head(rid, cb, old, new)
  if old then redis.call('ZREM', K_HEADS, old .. '|' .. rid .. '|' .. cb) end
  if new then
    redis.call('HSET', K_RWAIT, rid, new)
    redis.call('ZADD', K_HEADS, 0, new .. '|' .. rid .. '|' .. cb)
  else
    redis.call('HDEL', K_RWAIT, rid)
  end
end

local function cb_of(t)
  if t.callback ~= '' then return '1' end
  return '0'
end

local function index_ticket(t)
  local rid, def = requirement(t)
  t.rid = rid
  t.idx = 1
  ensure_requirement(rid, def)
  local tail = order(t)
  redis.call('ZADD', K_WAIT, 0, rid .. '|' .. tail)
  local head = redis.call('HGET', K_RWAIT, rid)
  if not head or lt(tail, head) then set_head(rid, cb_of(t), head, tail) end
  redis.call('ZADD', K_QWAIT, 0, t.queue .. '|' .. tail)
  redis.call('HINCRBY', K_QCOUNT, t.queue, 1)
end

local function unindex_ticket(t)
  if t.idx ~= 1 then return end
  t.idx = 0
  local tail = order(t)
  redis.call('ZREM', K_WAIT, t.rid .. '|' .. tail)
  redis.call('ZREM', K_QWAIT, t.queue .. '|' .. tail)
  if redis.call('HGET', K_RWAIT, t.rid) == tail then
    local got = redis.call('ZRANGEBYLEX', K_WAIT, '[' .. t.rid .. '|', '[' .. t.rid .. '|' .. HIGH,
      'LIMIT', 0, 1)
    local new = nil
    if #got > 0 then new = string.sub(got[1], #t.rid + 2) end
    set_head(t.rid, cb_of(t), tail, new)
  end
  if redis.call('HINCRBY', K_QCOUNT, t.queue, -1) <= 0 then redis.call('HDEL', K_QCOUNT, t.queue) end
end

local function lease(t, holder)
  -- NOW is one value per call: a second lease of the ticket in it changes nothing.
  if not leased[t.id] then
    redis.call('ZADD', K_LEASE, S(NOW + LEASE), t.id)
    leased[t.id] = true
  end
  if holder ~= nil and holder ~= '' and holder ~= t.holder then
    if t.holder ~= '' then redis.call('ZREM', K_HOLDER, t.holder .. '|' .. t.id) end
    t.holder = holder
    redis.call('ZADD', K_HOLDER, 0, holder .. '|' .. t.id)
  end
end

local function unlease(t)
  redis.call('ZREM', K_LEASE, t.id)
  leased[t.id] = nil
  if t.holder ~= '' then redis.call('ZREM', K_HOLDER, t.holder .. '|' .. t.id) end
  t.holder = ''
end

-- A ticket leaves for good, in a terminal stage.
local function finish(t, stage, ...)
  t.stage = stage
  unlease(t)
  tput(t)
  if redis.call('HGET', K_CALLS, t.call) == t.id then redis.call('HDEL', K_CALLS, t.call) end
  redis.call('ZADD', K_ENDED, NOW, t.id)
  event(stage, 'ticket', t.id, 'queue', t.queue, 'site', t.site, 'call', t.call, ...)
end

