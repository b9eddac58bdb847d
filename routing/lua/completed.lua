-- completed(ticket, agent, wrap|'', queue_wrap): from connected, or from reserved
-- (connected since the reservation). The agent wraps up, or chooses at once.
local t = tget(ARGV[9])
local aid = ARGV[10]
if t == nil or t.agent ~= aid or (t.stage ~= 'reserved' and t.stage ~= 'connected') then
  return 0
end
if t.stage == 'reserved' then
  local ringing = aget(aid)
  if ringing == nil then return 0 end
  connect(t, ringing, N(ringing.reserved_at))
end
t.stage = 'completed'
local a = release(t)  -- nil when the agent moved to another group meanwhile
t.agent = aid
local started = tonumber(t.connected_at) or NOW
local handle = NOW - started
local old = tonumber(redis.call('HGET', K_AHT, t.queue) or '')
if old then handle = 0.8 * old + 0.2 * handle end
redis.call('HSET', K_AHT, t.queue, S(handle))
finish(t, 'completed', 'agent', aid)
if a == nil then return 1 end
local wrap = tonumber(ARGV[11])
if wrap == nil and a.wrap_up ~= '' then wrap = tonumber(a.wrap_up) end
if wrap == nil then wrap = tonumber(ARGV[12]) or 0 end
set_state(a, 'wrap_up', '')
a.wrap_ticket = t.id
a.wrap_until = S(NOW + wrap)
aput(a)
if wrap <= 0 then
  become_available(a, 'ready')
else
  redis.call('ZADD', K_WRAP, S(NOW + wrap), aid)
end
return 1
