-- Decisions (prepended after lib.lua): call -> agent, agent -> call, and the
-- transitions every operation shares (ROUTING.md "Decisions").

-- ---------------------------------------------------------------- matching

-- HMGET in slices (Lua's unpack has a bounded stack).
local function hmget(key, names)
  local out = {}
  for start = 1, #names, 1000 do
    local part = {}
    for i = start, math.min(#names, start + 999) do part[#part + 1] = names[i] end
    local got = redis.call('HMGET', key, unpack(part))
    for i = 1, #got do out[#out + 1] = got[i] end
  end
  return out
end

local KEY_OF = {longest_idle = 'li', most_skilled = 'li', round_robin = 'rr', least_occupied = 'lo'}

local function edge(rid, pid)
  local got = redis.call('ZRANGEBYLEX', K_R2P, '[' .. rid .. '|' .. pid .. '|',
    '[' .. rid .. '|' .. pid .. '|' .. HIGH, 'LIMIT', 0, 1)
  return #got > 0
end

-- Call -> agent: the best available agent eligible for waiting ticket t, or nil.
-- One head per eligible profile with a free agent: O(P log n).
local function best_agent(t)
  if t.callback ~= '' and not callbacks_placeable() then return nil end
  local rid = t.rid
  if t.prefer ~= '' then
    local a = aget(t.prefer)
    if a and a.state == 'available' and a.group == GROUP and edge(rid, a.pid) then return a end
  end
  local key = KEY_OF[t.strategy] or 'li'
  use_strategy(key)
  local skilled = t.strategy == 'most_skilled'
  local best, best_rank = nil, nil
  local e = requirement_edges(rid)
  if #e.pids == 0 then return nil end
  local names, levels = e.names[key], e.levels
  if names == nil then
    names = {}
    local suffix = '|' .. key
    for i, pid in ipairs(e.pids) do names[i] = pid .. suffix end
    e.names[key] = names
  end
  local heads = hmget(K_PFREE, names)
  for i, head in ipairs(heads) do
    if head then
      local rank = head
      if skilled then rank = string.format('%03d', 100 - N(levels[i])) .. '|' .. rank end
      if best_rank == nil or lt(rank, best_rank) then best, best_rank = head, rank end
    end
  end
  if best == nil then return nil end
  return aget(fields(best)[2])
end

-- Agent -> call: the best waiting ticket agent a is eligible for, across every
-- queue of the group: the best head among the requirements the agent's profile
-- serves. Either the profile's edges are read (one head each: O(R log n)), or,
-- when there are fewer heads than edges, the heads in call order until the first
-- the profile serves (an O(1) membership test each); whichever is shorter.
local function best_ticket(a)
  local cb_ok = nil
  local function usable(cb)
    if cb ~= '1' then return true end
    if cb_ok == nil then cb_ok = callbacks_placeable() end
    return cb_ok
  end
  local heads = redis.call('ZCARD', K_HEADS)
  if heads == 0 then return nil end
  local e = profile_edges(a.pid)
  if heads <= #e.rids then
    local start = 0
    while start < heads do
      for _, member in ipairs(redis.call('ZRANGE', K_HEADS, start, start + 63)) do
        local f = fields(member)  -- priority, arrival, seq, ticket, rid, cb
        if usable(f[6]) and e.set[f[5] .. '|' .. f[6]] then
          return tget(f[4])
        end
      end
      start = start + 64
    end
    return nil
  end
  local best = nil
  local cbs = e.cbs
  for i, head in ipairs(hmget(K_RWAIT, e.rids)) do
    if head and usable(cbs[i]) and (best == nil or lt(head, best)) then best = head end
  end
  if best == nil then return nil end
  return tget(fields(best)[4])
end

local quiet = nil  -- the ticket whose engine learns of its reservation from the reply

local function reserve(t, a)
  unindex_ticket(t)
  t.stage = 'reserved'
  t.agent = a.id
  t.endpoint = a.endpoint
  t.claimed_by = ''
  if t.callback ~= '' then
    unlease(t)  -- nobody holds it until a callback worker claims it
    redis.call('ZADD', K_CB, 0, order(t))
    redis.call('PUBLISH', CHANNEL .. ':callback', GROUP)
  end
  lease(t, nil)
  tput(t)
  local before = set_state(a, 'reserved', '', true)
  a.reserved_at = NOW_S
  a.ticket = t.id
  aput(a)
  -- One entry for two events: the readers give state(agent, before -> reserved)
  -- then reserved (routing/redis/reads.py, unfold): a third fewer stream writes
  -- per reservation (bench/README.md).
  event('reserved', 'ticket', t.id, 'call', t.call, 'queue', t.queue, 'site', t.site,
    'agent', a.id, 'before', before, 'agent_site', a.site)
  if t.id ~= quiet and t.callback == '' then
    redis.call('PUBLISH', CHANNEL .. ':reserved', GROUP .. '|' .. t.id .. '|' .. a.id .. '|' ..
      a.endpoint)
  end
end

-- The agent would become available: a pending logout or pause applies
-- instead; else available, and the agent chooses (agent -> call) at once.
local function become_available(a, action)
  if a.pending == 'logout' then
    set_state(a, 'logged_out', 'pending logout')
    return
  end
  if a.pending == 'pause' then
    set_state(a, 'paused', a.pending_reason)
    return
  end
  a.idle_since = NOW_S
  set_state(a, 'available', action)
  local t = best_ticket(a)
  if t then reserve(t, a) end
end

-- Call -> agent for a waiting ticket.
local function ticket_chooses(t)
  if t.stage ~= 'waiting' then return end
  local a = best_agent(t)
  if a then reserve(t, a) end
end

-- Detach the ticket's agent (the agent's state stays): the agent, if it held it.
local function release(t)
  local a = nil
  if t.agent ~= '' then a = aget(t.agent) end
  t.agent = ''
  t.endpoint = ''
  if a and a.ticket == t.id then
    a.ticket = ''
    aput(a)
    return a
  end
  return nil
end

-- The ticket waits again in its place; the freed agent chooses, then the ticket.
local function put_back(t, freed, fault, reason, aid)
  t.stage = 'waiting'
  t.claimed_by = ''
  if t.callback ~= '' then unlease(t) end
  index_ticket(t)
  tput(t)
  event('missed', 'ticket', t.id, 'call', t.call, 'queue', t.queue, 'site', t.site,
    'agent', aid or '', 'fault', fault, 'reason', reason)
  if freed and freed.state == 'reserved' then become_available(freed, 'release') end
  ticket_chooses(tget(t.id))
end

-- A waiting, reserved or connected ticket ends without completing.
local function stop(t, stage, ...)
  local before = t.stage
  if before == 'waiting' then unindex_ticket(t) end
  local a = release(t)
  finish(t, stage, ...)
  if a == nil then return end
  if before == 'connected' then set_state(a, 'wrap_up', '') end
  if before == 'reserved' then become_available(a, 'release') else become_available(a, 'ready') end
end

local function connect(t, a, at)
  t.stage = 'connected'
  t.connected_at = S(at)
  t.served_by = a.id
  lease(t, nil)
  tput(t)
  a.misses = 0
  if t.customer ~= '' then redis.call('HSET', K_LAST, t.customer, a.id) end
  set_state(a, 'on_call', '')
  event('connected', 'ticket', t.id, 'call', t.call, 'queue', t.queue, 'site', t.site,
    'agent', a.id, 'at', S(at))
end

local function by_idle(x, y)
  if N(x.idle_since) ~= N(y.idle_since) then return N(x.idle_since) < N(y.idle_since) end
  return lt(x.id, y.id)
end
