-- abandon(ticket, reason, stage): from waiting or reserved only; 1 when it left.
local t = tget(ARGV[9])
if t == nil or (t.stage ~= 'waiting' and t.stage ~= 'reserved') then return 0 end
stop(t, ARGV[11], 'reason', ARGV[10])
return 1
