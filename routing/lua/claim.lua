-- claim(take): a callback worker of ENGINE looks for work (its heartbeat). The
-- best reserved callback nobody claimed (call order): with take '1' it is
-- claimed and returned (JSON), with '0' only its place is returned (the router
-- compares the groups' heads first). nil when there is none.
local was_live = callbacks_placeable()
redis.call('ZADD', K_CBW, NOW_S, ENGINE)
redis.call('ZREMRANGEBYSCORE', K_CBW, '-inf', S(NOW - 3600))
if not was_live then
  -- The callbacks that waited for a worker take agents now, best call first.
  local done = {}
  while true do
    local best, best_rid = nil, nil
    local waiting = redis.call('HGETALL', K_RWAIT)
    for i = 1, #waiting, 2 do
      local rid = waiting[i]
      local r = rdef(rid)
      local tail = waiting[i + 1]
      if r and r.cb == 1 and not done[rid] and (best == nil or lt(tail, best)) then
        best, best_rid = tail, rid
      end
    end
    if best == nil then break end
    local t = tget(fields(best)[4])
    local a = best_agent(t)
    if a then reserve(t, a) else done[best_rid] = true end
  end
end
while true do
  local got = redis.call('ZRANGE', K_CB, 0, 0)
  if #got == 0 then return false end
  local t = tget(fields(got[1])[4])
  if t and t.stage == 'reserved' and t.callback ~= '' and t.claimed_by == '' then
    if ARGV[9] ~= '1' then return got[1] end
    redis.call('ZREM', K_CB, got[1])
    t.claimed_by = ENGINE
    lease(t, ENGINE)
    tput(t)
    return cjson.encode(t)
  end
  redis.call('ZREM', K_CB, got[1])  -- no longer waiting for a worker
end
