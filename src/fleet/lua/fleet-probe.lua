--[[
  The half-open probe slots of one downstream's breaker, shared by the fleet
  (issue 14): at most ARGV[2] probes per open interval, whichever instances send them.

  Input:
    KEYS[1] the probe hash: after (ms, no probe before), taken, ok, takenAt

    ARGV[1] action: `open` (a breaker opened: a new round of probes after ARGV[3] ms),
            `take` (lease a slot), `release` (a leased slot went unused),
            `ok` (a probe succeeded), `closed` (the breaker closed: forget the round)
    ARGV[2] probes per round (>= 1)
    ARGV[3] `open`: ms until probing may begin; `take`: ms after which a round
            whose slots are all taken but undecided is given up (its holders died)

  Output:
    `take`: 1 leased, 0 refused; `ok`: successes so far this round; else 0
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local action = ARGV[1]
local probes = tonumber(ARGV[2])
local arg = tonumber(ARGV[3])
if action == 'open' then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'after', now + arg, 'taken', 0, 'ok', 0, 'takenAt', 0)
  redis.call('PEXPIRE', KEYS[1], arg + 600000)
  return 0
end
if action == 'closed' then
  redis.call('DEL', KEYS[1])
  return 0
end
local state = redis.call('HMGET', KEYS[1], 'after', 'taken', 'ok', 'takenAt')
local after = tonumber(state[1]) or 0
local taken = tonumber(state[2]) or 0
local ok = tonumber(state[3]) or 0
local takenAt = tonumber(state[4]) or 0
if action == 'take' then
  if now < after then return 0 end
  if taken >= probes and now - takenAt > arg then
    -- Every slot was taken and the round never decided: its holders are gone.
    taken = 0
    ok = 0
    redis.call('HSET', KEYS[1], 'ok', 0)
  end
  if taken >= probes then return 0 end
  redis.call('HSET', KEYS[1], 'taken', taken + 1, 'takenAt', now)
  redis.call('PEXPIRE', KEYS[1], 600000)
  return 1
end
if action == 'release' then
  if taken > 0 then redis.call('HSET', KEYS[1], 'taken', taken - 1) end
  return 0
end
-- ok
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HINCRBY', KEYS[1], 'ok', 1)
