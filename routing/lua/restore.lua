-- restore(tickets JSON): after Redis lost its data, an engine puts back what it
-- still holds with their id, seq, arrival and priority: first the calls its agents
-- are ringing or talking to (stage reserved / connected, with the agent: that agent
-- is busy again, not offered the next caller), then the callers on hold, in call
-- order (their place). A busy call's agent not back yet comes back busy with it; one
-- the reload already made available is made busy again (logged out or paused agents
-- are offered nothing anyway). Returns {id, agent, endpoint} per waiting ticket reserved at once.
local tickets = cjson.decode(ARGV[9])
local out = {}
for _, t in ipairs(tickets) do
  if redis.call('HEXISTS', K_TICKET, t.id) == 0 then
    redis.call('HSET', K_CALLS, t.call, t.id)
    if (t.stage == 'reserved' or t.stage == 'connected') and (t.agent or '') ~= '' then
      local rid, def = requirement(t)
      t.rid = rid
      ensure_requirement(rid, def)
      t.idx, t.holder, t.claimed_by = 0, '', ''
      t.endpoint = t.endpoint or ''
      lease(t, ENGINE)
      local a = aget(t.agent)
      if a == nil then
        -- Not back yet (the engine restores these before it reloads its agents): the
        -- agent comes back busy with this call, and the reload keeps that (a reload
        -- changes no run-time field, and logs in only agents that are logged out).
        local state = 'reserved'
        if t.stage == 'connected' then state = 'on_call' end
        a = {id = t.agent, state = state, reason = 'restored', idle_since = '0',
          reserved_at = NOW_S, busy = '0', busy_since = NOW_S, login_at = NOW_S,
          misses = 0, pending = '', pending_reason = '', wrap_ticket = '', wrap_until = '',
          ticket = t.id, group = GROUP, endpoint = t.endpoint, skills = {}, languages = {},
          site = '', wrap_up = ''}
        if t.stage == 'connected' then t.served_by = a.id end
        aput(a)
        event('state', 'agent', a.id, 'before', 'logged_out', 'after', state,
          'reason', 'restored', 'site', '')
      elseif (a.ticket or '') == '' and a.state == 'available' then
        if t.stage == 'connected' then
          set_state(a, 'on_call', 'restored')
          t.served_by = a.id
        else
          set_state(a, 'reserved', 'restored')
          a.reserved_at = NOW_S
        end
        a.ticket = t.id
        aput(a)
      end
      tput(t)
      event('restored', 'ticket', t.id, 'call', t.call, 'queue', t.queue, 'site', t.site,
        'agent', t.agent, 'stage', t.stage)
    else
      t.stage = 'waiting'
      t.agent, t.endpoint, t.holder, t.claimed_by, t.rid = '', '', '', '', ''
      index_ticket(t)
      if t.callback == '' then lease(t, ENGINE) end
      tput(t)
      event('restored', 'ticket', t.id, 'call', t.call, 'queue', t.queue, 'site', t.site)
      quiet = t.id
      ticket_chooses(t)
      local now = tget(t.id)
      if now.stage == 'reserved' then table.insert(out, {now.id, now.agent, now.endpoint}) end
    end
  end
end
return out
