-- missed(ticket, agent, fault): only from reserved with that agent. The ticket
-- goes back in its place; the freed agent (no fault) chooses, then the ticket.
local t = tget(ARGV[9])
local aid = ARGV[10]
if t == nil or t.stage ~= 'reserved' or t.agent ~= aid then return 0 end
local a = release(t)
if a == nil then a = aget(aid) end
if ARGV[11] == '1' then
  set_state(a, 'missed', 'no answer')
  a.misses = N(a.misses) + 1
  aput(a)
  if a.misses >= MAX_MISSES then set_state(a, 'paused', 'missed ' .. a.misses .. ' calls') end
  put_back(t, nil, '1', 'no answer', aid)
else
  put_back(t, a, '0', 'the call could not be placed', aid)
end
return 1
