--[[
  Appends an edited replay's record to a DLQ entry's history, only while the
  given token holds the entry's replay claim. Nothing else changes: the body,
  and so the DLQ byte counter, and updatedAt stay as they were.

  Input:
    (no KEYS: built from the prefix)

    ARGV[1] key prefix
    ARGV[2] entry id
    ARGV[3] replay claim token
    ARGV[4] the edit record, as a JSON array of one

  Output:
    the updated entry hash (HGETALL), or nil when the entry is gone or the
    token does not hold its claim
]]
--- @include "keys"
--- @include "json-array"

local key = dlqEntryKey(ARGV[1], ARGV[2])
if redis.call('HGET', key, 'replayToken') ~= ARGV[3] then return nil end
redis.call('HSET', key, 'edits', appendJsonArray(redis.call('HGET', key, 'edits'), ARGV[4]))
return redis.call('HGETALL', key)
