-- restore(tickets JSON): after Redis lost its data, an engine puts back the
-- callers it still holds with their id, seq, arrival and priority (their place),
-- in call order. Returns {id, agent, endpoint} per ticket reserved at once.
local tickets = cjson.decode(ARGV[9])
local out = {}
for _, t in ipairs(tickets) do
  if redis.call('HEXISTS', K_TICKET, t.id) == 0 then
    t.stage = 'waiting'
    t.agent, t.endpoint, t.holder, t.claimed_by, t.rid = '', '', '', '', ''
    index_ticket(t)
    redis.call('HSET', K_CALLS, t.call, t.id)
    if t.callback == '' then lease(t, ENGINE) end
    tput(t)
    event('restored', 'ticket', t.id, 'call', t.call, 'queue', t.queue, 'site', t.site)
    quiet = t.id
    ticket_chooses(t)
    local now = tget(t.id)
    if now.stage == 'reserved' then table.insert(out, {now.id, now.agent, now.endpoint}) end
  end
end
return out
