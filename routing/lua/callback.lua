-- request_callback(ticket, number): a waiting ticket keeps its place, nobody on
-- the line (no lease). 1 when it is waiting, else 0.
local t = tget(ARGV[9])
if t == nil or t.stage ~= 'waiting' then return 0 end
if t.callback ~= ARGV[10] then
  unindex_ticket(t)
  t.callback = ARGV[10]
  unlease(t)
  index_ticket(t)
  tput(t)
  event('callback_requested', 'ticket', t.id, 'call', t.call, 'queue', t.queue, 'site', t.site)
end
return 1
