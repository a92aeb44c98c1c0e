--[[
  Deletes up to ARGV[3] DLQ entries last updated before ARGV[2]; the caller
  repeats until fewer come back, so that no single call holds Redis for long.

  Input:
    (no KEYS: built from the prefix)

    ARGV[1] key prefix
    ARGV[2] before (epoch ms, exclusive)
    ARGV[3] batch size

  Output:
    how many entries were deleted
]]
--- @include "keys"
--- @include "dlq"

local prefix = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', dlqUpdatedKey(prefix), '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do deleteDlqEntry(prefix, id) end
return #ids
