--[[
  A failed replay: appends its attempts, replaces lastError and status, bumps replays.

  Input:
    (no KEYS: built from the prefix)

    ARGV[1] key prefix
    ARGV[2] entry id
    ARGV[3] attempts to append (JSON array)
    ARGV[4] lastError
    ARGV[5] status
    ARGV[6] updatedAt (ISO-8601)
    ARGV[7] updatedAt (epoch ms)

  Output:
    the updated entry hash (HGETALL), or nil when the entry is gone
]]
--- @include "keys"
--- @include "json-array"

local prefix, id = ARGV[1], ARGV[2]
local key = dlqEntryKey(prefix, id)
if redis.call('EXISTS', key) == 0 then return nil end
local attempts = appendJsonArray(redis.call('HGET', key, 'attempts'), ARGV[3])
redis.call('HSET', key, 'attempts', attempts, 'lastError', ARGV[4], 'status', ARGV[5],
  'updatedAt', ARGV[6], 'updatedMs', ARGV[7])
redis.call('HINCRBY', key, 'replays', 1)
redis.call('ZADD', dlqUpdatedKey(prefix), ARGV[7], id)
return redis.call('HGETALL', key)
