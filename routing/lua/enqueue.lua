-- enqueue(call, queue, skills, any, lang, site, site_only, priority, strategy, customer,
-- id|'', floor): a new waiting ticket, then call -> agent. Its id and seq come from the
-- store-wide counter: K_SEQ on a single Redis, ARGV on a cluster (another slot).
-- Returns {id, agent, endpoint, arrival}.
local call, queue, customer = ARGV[9], ARGV[10], ARGV[18]
-- The same request again (a client's retry after a lost reply): the same ticket.
local live = redis.call('HGET', K_CALLS, call)
if live then
  local old = tget(live)
  if old then return {old.id, old.agent, old.endpoint, old.arrival} end
end
local tid = tonumber(ARGV[19])
if tid == nil then
  tid = redis.call('INCR', K_SEQ)
  -- Above every id the calling engine still holds (ARGV[20]): after Redis lost its
  -- data the counter starts again, and those tickets are yet to be put back.
  local floor = tonumber(ARGV[20]) or 0
  if tid <= floor then
    tid = floor + 1
    redis.call('SET', K_SEQ, tid)
  end
end
local prefer = ''
if customer ~= '' then prefer = redis.call('HGET', K_LAST, customer) or '' end
local t = {
  id = tostring(tid), call = call, queue = queue, skills = cjson.decode(ARGV[11]),
  any = cjson.decode(ARGV[12]), lang = ARGV[13], site = ARGV[14], site_only = tonumber(ARGV[15]),
  priority = tonumber(ARGV[16]), arrival = NOW_S, seq = tid, strategy = ARGV[17],
  prefer = prefer, customer = customer, callback = '', stage = 'waiting', agent = '',
  endpoint = '', holder = '', claimed_by = '', rid = '', group = GROUP, connected_at = '',
  served_by = '',
}
redis.call('HSET', K_CALLS, call, t.id)
local rid, def = requirement(t)
t.rid = rid
ensure_requirement(rid, def)
lease(t, ENGINE)
event('enqueued', 'ticket', t.id, 'call', call, 'queue', queue, 'site', t.site,
  'priority', t.priority, 'language', t.lang, 'caller', customer, 'group', GROUP,
  'skills', ARGV[11])
quiet = t.id
-- Call -> agent before the ticket is indexed: a call served at once never waits.
local a = best_agent(t)
if a then
  reserve(t, a)
else
  index_ticket(t)
  tput(t)
end
return {t.id, t.agent, t.endpoint, NOW_S}
