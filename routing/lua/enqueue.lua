-- enqueue(call, queue, skills, any, lang, site, site_only, priority, strategy, customer,
-- id): a new waiting ticket (id and seq from the store-wide counter), then
-- call -> agent. Returns {id, agent, endpoint, arrival}.
local call, queue, customer = ARGV[9], ARGV[10], ARGV[18]
local tid = tonumber(ARGV[19])
local prefer = ''
if customer ~= '' then prefer = redis.call('HGET', K_LAST, customer) or '' end
local t = {
  id = tostring(tid), call = call, queue = queue, skills = cjson.decode(ARGV[11]),
  any = cjson.decode(ARGV[12]), lang = ARGV[13], site = ARGV[14], site_only = tonumber(ARGV[15]),
  priority = tonumber(ARGV[16]), arrival = S(NOW), seq = tid, strategy = ARGV[17],
  prefer = prefer, customer = customer, callback = '', stage = 'waiting', agent = '',
  endpoint = '', holder = '', claimed_by = '', rid = '', group = GROUP, connected_at = '',
  served_by = '',
}
index_ticket(t)
lease(t, ENGINE)
tput(t)
event('enqueued', 'ticket', t.id, 'call', call, 'queue', queue, 'site', t.site,
  'priority', t.priority, 'language', t.lang, 'caller', customer, 'group', GROUP,
  'skills', ARGV[11])
quiet = t.id
ticket_chooses(t)
local now = tget(t.id)
return {t.id, now.agent, now.endpoint, S(NOW)}
