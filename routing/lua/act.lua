-- act(agent, action, reason): login, logout, pause, resume, ready (end_wrap_up).
-- Returns {'done'|'pending'|'unchanged', released ticket (JSON) or ''}, or
-- {'refused', state} (Python names what is allowed, from routing/states.py).
local aid, action, reason = ARGV[9], ARGV[10], ARGV[11]
local a = aget(aid)
if a == nil then return {'unknown', ''} end
local state = a.state

if action == 'login' then
  if state ~= 'logged_out' then return {'unchanged', ''} end
  a.login_at = NOW_S
  a.busy = '0'
  a.misses = 0
  become_available(a, 'login')
elseif action == 'logout' then
  if state == 'logged_out' then return {'unchanged', ''} end
  if state == 'on_call' or state == 'wrap_up' then
    if a.pending == 'logout' then return {'unchanged', ''} end
    a.pending = 'logout'
    a.pending_reason = ''
    aput(a)
    return {'pending', ''}
  end
  local t = nil
  if state == 'reserved' and a.ticket ~= '' then t = tget(a.ticket) end
  if t then
    local released = cjson.encode(t)
    release(t)
    a = aget(aid)
    set_state(a, 'logged_out', 'forced')
    put_back(t, a, '0', 'logout', aid)
    return {'done', released}
  end
  set_state(a, 'logged_out', '')
elseif action == 'pause' then
  if state == 'reserved' or state == 'on_call' or state == 'wrap_up' then
    if a.pending == 'pause' and a.pending_reason == reason then return {'unchanged', ''} end
    a.pending = 'pause'
    a.pending_reason = reason
    aput(a)
    return {'pending', ''}
  end
  if state == 'paused' then return {'unchanged', ''} end
  if state ~= 'available' and state ~= 'missed' then return {'refused', state} end
  set_state(a, 'paused', reason)
elseif action == 'resume' then
  if BUSY[state] and a.pending ~= '' then
    a.pending = ''
    a.pending_reason = ''
    aput(a)
    return {'done', ''}
  end
  if state == 'available' then return {'unchanged', ''} end
  if state ~= 'paused' and state ~= 'missed' then return {'refused', state} end
  become_available(a, 'resume')
elseif action == 'ready' then
  if state == 'available' then return {'unchanged', ''} end
  if state ~= 'wrap_up' then return {'refused', state} end
  become_available(a, 'ready')
else
  return {'refused', state}
end
return {'done', ''}
