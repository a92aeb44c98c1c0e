--[[
  One instance's heartbeat (issue 14): marks it alive now, forgets instances
  silent for longer than ARGV[2] ms, and counts the fleet. Redis's clock, so
  instances whose clocks disagree still agree on who is alive.

  Input:
    KEYS[1] the members sorted set: instance id scored by its last heartbeat (ms)

    ARGV[1] instance id
    ARGV[2] ms after which a silent instance no longer counts (3 heartbeats)
    ARGV[3] 1: leave (the instance is shutting down) instead of heartbeating

  Output:
    the number of live instances
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
return redis.call('ZCARD', KEYS[1])
