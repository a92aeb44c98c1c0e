--[[
  Takes a DLQ entry's replay, or reports why not: one holder at a time, and a
  claim whose lease has ended (its holder died) may be taken over. Judged by the
  caller's clock (ARGV[3]), as idempotency leases are.

  Input:
    (no KEYS: built from the prefix)

    ARGV[1] key prefix
    ARGV[2] entry id
    ARGV[3] now (epoch ms)
    ARGV[4] leaseMs
    ARGV[5] token for a new claim

  Output:
    'claimed', 'busy' or 'absent'
]]
--- @include "keys"

local key = dlqEntryKey(ARGV[1], ARGV[2])
if redis.call('EXISTS', key) == 0 then return 'absent' end
local now = tonumber(ARGV[3])
local held = redis.call('HMGET', key, 'replayToken', 'replayUntil')
if held[1] and (tonumber(held[2] or '0') or 0) > now then return 'busy' end
redis.call('HSET', key, 'replayToken', ARGV[5], 'replayUntil', now + tonumber(ARGV[4]))
return 'claimed'
