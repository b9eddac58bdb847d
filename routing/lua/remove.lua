-- remove(agent): the agent leaves this group (moved to another one).
local a = aget(ARGV[9])
if a == nil then return 0 end
if a.state == 'reserved' and a.ticket ~= '' then
  local t = tget(a.ticket)
  if t then
    release(t)
    a = aget(a.id)
    set_state(a, 'logged_out', 'moved')
    put_back(t, a, '0', 'logout', a.id)
  end
end
a = aget(a.id)
if a.state ~= 'logged_out' then set_state(a, 'logged_out', 'moved') end
if a.state == 'logged_out' then
  aforget(a.id)
end
return 1
