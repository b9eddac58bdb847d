-- connected(ticket, agent, at|''): only from reserved with that agent.
local t = tget(ARGV[9])
local aid = ARGV[10]
if t == nil or t.stage ~= 'reserved' or t.agent ~= aid then return 0 end
local a = aget(aid)
if a == nil then return 0 end
local at = NOW
if ARGV[11] ~= '' then at = tonumber(ARGV[11]) end
connect(t, a, at)
return 1
