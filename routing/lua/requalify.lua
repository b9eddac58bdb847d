-- requalify(ticket, skills, priority|'', any|'', site_only|''): a waiting (or
-- ringing) ticket's requirement changes in its place; a waiting one then chooses.
local t = tget(ARGV[9])
if t == nil or (t.stage ~= 'waiting' and t.stage ~= 'reserved') then return 0 end
local waiting = t.stage == 'waiting'
if waiting then unindex_ticket(t) end
-- A reserved callback no worker claimed yet waits for one in call order: its place
-- there follows a new priority too (the reference orders them when claimed).
local unclaimed = t.stage == 'reserved' and t.callback ~= '' and t.claimed_by == ''
if unclaimed then redis.call('ZREM', K_CB, order(t)) end
t.skills = cjson.decode(ARGV[10])
if ARGV[11] ~= '' then t.priority = tonumber(ARGV[11]) end
if ARGV[12] ~= '' then t.any = cjson.decode(ARGV[12]) end
if ARGV[13] ~= '' then
  t.site_only = 0
  if ARGV[13] == '1' and t.site ~= '' then t.site_only = 1 end
end
if waiting then index_ticket(t) end
if unclaimed then redis.call('ZADD', K_CB, 0, order(t)) end
tput(t)
event('requalified', 'ticket', t.id, 'call', t.call, 'queue', t.queue, 'site', t.site,
  'skills', ARGV[10], 'priority', t.priority, 'site_only', t.site_only)
ticket_chooses(t)
return 1
