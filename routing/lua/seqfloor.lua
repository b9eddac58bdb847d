-- seqfloor(KEYS[1] = the store-wide ticket counter, ARGV[1] = an id): after a
-- data loss the counter never goes below the ids put back. (Not a group script:
-- no library.)
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
