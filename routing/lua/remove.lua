-- remove(agent): the agent moves to another routing group (ROUTING.md): they leave
-- this one logged out (reason 'moved'); a ringing call goes back to waiting, a call
-- in progress goes on without them (its completed ends the ticket alone).
local a = aget(ARGV[9])
if a == nil then return 0 end
local t = nil
if a.ticket ~= '' then t = tget(a.ticket) end
if t then
  release(t)
  if t.stage == 'connected' then t.agent = a.id end
  tput(t)
end
if a.state ~= 'logged_out' then set_state(a, 'logged_out', 'moved') end
if t and t.stage == 'reserved' then put_back(t, nil, '0', 'moved', a.id) end
aforget(a.id)
return 1
