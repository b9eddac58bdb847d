-- upsert(n, then n times: id, endpoint, skills, langs, site, wrap_up, pid, profile)
-- Creates agents (logged out) or reloads them; no run-time field changes.
-- Available agents whose profile changed choose, longest idle first (the
-- others could take nothing before and can take nothing now).
local n = tonumber(ARGV[9])
local moved_agents = {}
for i = 0, n - 1 do
  local base = 10 + i * 8
  local aid, pid = ARGV[base], ARGV[base + 6]
  ensure_profile(pid, ARGV[base + 7])
  local a = aget(aid)
  local old_pid = nil
  if a == nil then
    a = {id = aid, state = 'logged_out', reason = '', idle_since = '0', reserved_at = '0',
      busy = '0', busy_since = '0', login_at = '0', misses = 0, pending = '',
      pending_reason = '', wrap_ticket = '', wrap_until = '', ticket = '', group = GROUP}
  else
    old_pid = a.pid
  end
  local moved = old_pid ~= pid
  if moved and a.state == 'available' then unindex_agent(a) end
  if moved and old_pid ~= nil and STAFFED[a.state] then staff(old_pid, -1) end
  a.endpoint = ARGV[base + 1]
  a.skills = cjson.decode(ARGV[base + 2])
  a.languages = cjson.decode(ARGV[base + 3])
  a.site = ARGV[base + 4]
  a.wrap_up = ARGV[base + 5]
  a.pid = pid
  if moved then
    if a.state == 'available' then
      index_agent(a)
      table.insert(moved_agents, a)
    end
    if STAFFED[a.state] then staff(pid, 1) end
  end
  aput(a)
end
table.sort(moved_agents, by_idle)
for _, a in ipairs(moved_agents) do
  local fresh = aget(a.id)
  if fresh.state == 'available' then
    local t = best_ticket(fresh)
    if t then reserve(t, fresh) end
  end
end
return n
