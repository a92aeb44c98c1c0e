--[[
  Adds a DLQ entry at the end of the queue.

  Input:
    (no KEYS: the keys are built from the prefix, see includes/keys.lua)

    ARGV[1] key prefix
    ARGV[2] entry id
    ARGV[3] updatedAt (epoch ms, for purges)
    ARGV[4..] the entry's hash fields as field, value pairs

  Output:
    the entry hash (HGETALL); an error reply 'DUPLICATE_ID ...' when the id is taken
]]
--- @include "keys"
--- @include "dlq"

if redis.call('EXISTS', dlqEntryKey(ARGV[1], ARGV[2])) == 1 then
  return redis.error_reply('DUPLICATE_ID dlq entry ' .. ARGV[2] .. ' already exists')
end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
local key = insertDlqEntry(ARGV[1], ARGV[2], ARGV[3], fields)
return redis.call('HGETALL', key)
