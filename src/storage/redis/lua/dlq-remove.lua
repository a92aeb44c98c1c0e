--[[
  Deletes a DLQ entry and its index entries.

  Input:
    (no KEYS: built from the prefix)

    ARGV[1] key prefix
    ARGV[2] entry id

  Output:
    1 if it existed, else 0
]]
--- @include "keys"
--- @include "dlq"

return deleteDlqEntry(ARGV[1], ARGV[2])
