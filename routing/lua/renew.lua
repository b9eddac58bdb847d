-- renew(engine): every lease the engine holds runs LEASE seconds from now.
local engine = ARGV[9]
local got = redis.call('ZRANGEBYLEX', K_HOLDER, '[' .. engine .. '|', '[' .. engine .. '|' .. HIGH)
for _, member in ipairs(got) do
  redis.call('ZADD', K_LEASE, 'XX', NOW + LEASE, string.sub(member, #engine + 2))
end
return #got
