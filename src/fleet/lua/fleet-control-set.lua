--[[
  Sets one part of an operator's hold on a route for the whole fleet (issue 14)
  and tells every instance, in one step: the news leaves in the order of the
  writes, and each state carries a version so that an instance reading the hash
  while news arrives keeps the newer of the two. A version is at least Redis's
  time in ms, so one written after the hash was lost (a Redis restarted without
  persistence) still beats what the instances applied before.

  Input:
    KEYS[1] the controls hash: route name -> JSON { breaker, paused, version }

    ARGV[1] route name
    ARGV[2] the part changed: `breaker` or `paused`
    ARGV[3] its value: `open`, `closed` or `auto` (breaker); `1` or `0` (paused)
    ARGV[4] the channel the news goes out on
    ARGV[5] the sending instance's id

  Output:
    the route's new state, as stored (JSON)
]]
local state = { breaker = 'auto', paused = false, version = 0 }
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored then state = cjson.decode(stored) end
if ARGV[2] == 'breaker' then
  state.breaker = ARGV[3]
else
  state.paused = ARGV[3] == '1'
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
state.version = math.max((tonumber(state.version) or 0) + 1, now)
local encoded = cjson.encode(state)
redis.call('HSET', KEYS[1], ARGV[1], encoded)
redis.call('PUBLISH', ARGV[4], cjson.encode({ from = ARGV[5], route = ARGV[1], state = state }))
return encoded
