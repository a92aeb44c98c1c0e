--[[
  One instance's heartbeat (issue 14): marks it alive now, forgets instances
  silent for longer than ARGV[2] ms, and counts the fleet. Redis's clock, so
  instances whose clocks disagree still agree on who is alive.

  After a loss of Redis the instances rejoin at one moment, so that none uses the
  fleet's whole rate while the others still send their 1/N shares alone: each
  rejoining instance marks itself in KEYS[2] with every heartbeat (every 250 ms
  while not shared), and the first to see as many rejoining as it expects
  (ARGV[4], the fleet size it last knew) sets the moment, ARGV[5] ms ahead, in
  KEYS[3]: long enough for every other rejoining instance to read it first.
  A mark or a moment more than ARGV[6] ms past is an earlier loss's.

  Input:
    KEYS[1] the members sorted set: instance id scored by its last heartbeat (ms)
    KEYS[2] the rejoining sorted set: instance id scored by its last heartbeat while rejoining (ms)
    KEYS[3] the rejoin moment (ms, Redis's clock)

    ARGV[1] instance id
    ARGV[2] ms after which a silent instance no longer counts (3 heartbeats)
    ARGV[3] 1: leave (the instance is shutting down) instead of heartbeating
    ARGV[4] 0: not rejoining; otherwise how many rejoining instances to wait for
    ARGV[5] ms from the moment enough are rejoining to the rejoin
    ARGV[6] ms a rejoining mark, and a rejoin moment once past, count (several marks' intervals)

  Output:
    { live instances, now (ms, Redis's clock), the rejoin moment or '' (none yet, or not rejoining) }
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
local count = redis.call('ZCARD', KEYS[1])

local expected = tonumber(ARGV[4])
local at = ''
if expected > 0 then
  local memory = tonumber(ARGV[6])
  redis.call('ZADD', KEYS[2], now, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - memory)
  redis.call('PEXPIRE', KEYS[2], memory * 10)
  local set = tonumber(redis.call('GET', KEYS[3]))
  if set ~= nil and set >= now - memory then
    at = string.format('%.3f', set)
  elseif redis.call('ZCARD', KEYS[2]) >= expected then
    at = string.format('%.3f', now + tonumber(ARGV[5]))
    redis.call('SET', KEYS[3], at, 'PX', memory * 10)
  end
end
return { count, string.format('%.3f', now), at }
