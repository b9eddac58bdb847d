-- tick(): ends the leases that passed, by (deadline, ticket) (a reserved callback
-- goes back to wait for another worker), then the due wrap-ups by (time, agent);
-- each freed agent chooses at once. Forgets tickets ended KEEP_ENDED s ago.
local done = 0
local due = redis.call('ZRANGEBYSCORE', K_LEASE, '-inf', NOW_S, 'WITHSCORES')
local list = {}
for i = 1, #due, 2 do table.insert(list, {tonumber(due[i + 1]), tonumber(due[i]), due[i]}) end
table.sort(list, function(x, y)
  if x[1] ~= y[1] then return x[1] < y[1] end
  return x[2] < y[2]
end)
for _, item in ipairs(list) do
  local current = tonumber(redis.call('ZSCORE', K_LEASE, item[3]) or '')
  local t = tget(item[3])
  if current and current <= NOW and t then
    done = done + 1
    if t.callback ~= '' and t.stage == 'reserved' then
      local aid = t.agent
      put_back(t, release(t), '0', 'lease', aid)
    else
      stop(t, 'lease_expired')
    end
  elseif current and current <= NOW then
    redis.call('ZREM', K_LEASE, item[3])
  end
end
for _, aid in ipairs(redis.call('ZRANGEBYSCORE', K_WRAP, '-inf', NOW_S)) do
  redis.call('ZREM', K_WRAP, aid)
  local a = aget(aid)
  if a and a.state == 'wrap_up' and a.wrap_until ~= '' and N(a.wrap_until) <= NOW then
    done = done + 1
    become_available(a, 'ready')
  end
end
local old = redis.call('ZRANGEBYSCORE', K_ENDED, '-inf', S(NOW - KEEP_ENDED), 'LIMIT', 0, 1000)
for _, tid in ipairs(old) do
  tforget(tid)
  redis.call('ZREM', K_ENDED, tid)
end
return done
