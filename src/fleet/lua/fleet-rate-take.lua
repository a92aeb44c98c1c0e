--[[
  Leases send slots of a fleet-wide rate limit (issue 14): GCRA with reservation.
  Each slot is a time at which the holder may send one call; slots are handed out
  as GCRA would admit calls, so the fleet's calls at their slot times never exceed
  rate x W + burst over any window W. The warm-up ramp is kept here too, so that
  every instance ramps from the same moment. Times are Redis's (TIME), in ms.

  Input:
    KEYS[1] the bucket hash: tat (theoretical arrival time), warmup (when the last ramp began)

    ARGV[1] rate per second (> 0)
    ARGV[2] burst (>= 1)
    ARGV[3] slots wanted (>= 1)
    ARGV[4] horizon ms: grant only slots due no later than now + horizon
    ARGV[5] warm-up ms (0: none)
    ARGV[6] rate per second at the start of a warm-up
    ARGV[7] 1: begin a warm-up now, unless one began in the last ARGV[8] ms
    ARGV[9] the most grace a slot gets, ms (the lease period)

  A slot k may be used from its time s_k until its theoretical arrival time TAT_k
  plus a grace: a call sent late then still counts where GCRA put it. The grace is
  taken out of the burst tolerance (tau = grace + what is left), so the bound holds:
  the slots used in a window W have TAT in [start - grace, end + tau - grace], at
  most rate x W + burst of them.

  Output:
    { granted, now (ms on Redis's clock), then per slot: from offset, until offset (ms from now) },
    times as strings (fractional); with nothing granted: { 0, now, ms until the next slot is due }
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local horizon = tonumber(ARGV[4])
local warmupMs = tonumber(ARGV[5])
local startRate = tonumber(ARGV[6])

local state = redis.call('HMGET', KEYS[1], 'tat', 'warmup')
local tat = tonumber(state[1]) or now
local warm = tonumber(state[2]) or -1e15
if ARGV[7] == '1' and now - warm > tonumber(ARGV[8]) then
  warm = now
  redis.call('HSET', KEYS[1], 'warmup', string.format('%.3f', warm))
end

local function rateAt(x)
  if warmupMs <= 0 or x >= warm + warmupMs then return rate end
  local progress = math.max(0, (x - warm) / warmupMs)
  return startRate + (rate - startRate) * progress
end

-- The burst tolerance is counted at the full rate, as the local bucket's size is;
-- half of it (at most ARGV[9] ms, the lease period) becomes the slots' grace.
local tolerance = (burst - 1) * 1000 / rate
local grace = math.min(tolerance / 2, tonumber(ARGV[9]))
local tau = tolerance - grace
if tat < now then tat = now end
local out = { 0, string.format('%.3f', now) }
for _ = 1, want do
  local slot = math.max(now, tat - tau)
  if slot > now + horizon then break end
  out[#out + 1] = string.format('%.3f', slot - now)
  out[#out + 1] = string.format('%.3f', tat + grace - now)
  tat = tat + 1000 / rateAt(tat)
end
out[1] = (#out - 2) / 2
if out[1] == 0 then out[3] = string.format('%.3f', math.max(0, tat - tau - now)) end
redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', tat))
-- Kept while it still says something: the reserved future, and a ramp that may still run.
redis.call('PEXPIRE', KEYS[1], math.ceil(tat - now + math.max(warmupMs, 1000) + 10000))
return out
