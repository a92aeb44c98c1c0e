--[[
  Gives a DLQ entry's replay back, if the token still holds it.

  Input:
    (no KEYS: built from the prefix)

    ARGV[1] key prefix
    ARGV[2] entry id
    ARGV[3] token

  Output:
    1 released, 0 not held by this token (taken over, or the entry is gone)
]]
--- @include "keys"

local key = dlqEntryKey(ARGV[1], ARGV[2])
if redis.call('HGET', key, 'replayToken') ~= ARGV[3] then return 0 end
redis.call('HDEL', key, 'replayToken', 'replayUntil')
return 1
