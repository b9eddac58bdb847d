-- position(ticket): 1 for the next call of its queue, by call order; nil unless waiting.
local t = tget(ARGV[9])
if t == nil or t.stage ~= 'waiting' then return false end
return redis.call('ZLEXCOUNT', K_QWAIT, '[' .. t.queue .. '|', '(' .. t.queue .. '|' .. order(t)) + 1
