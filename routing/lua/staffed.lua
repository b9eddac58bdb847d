-- staffed(skills, any): agents logged in and not paused or missed who meet the
-- requirement, summed per profile: O(P).
local r = {skills = cjson.decode(ARGV[9]), any = cjson.decode(ARGV[10]), lang = '',
  site_only = 0, site = ''}
local n = 0
local counts = redis.call('HGETALL', K_PSTAFF)
for i = 1, #counts, 2 do
  local p = pdef(counts[i])
  if p and eligible(p, r) then n = n + tonumber(counts[i + 1]) end
end
return n
