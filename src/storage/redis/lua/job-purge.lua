--[[
  Deletes up to ARGV[3] delivered and dead jobs last updated before ARGV[2]
  (and their key-scope mapping); the caller repeats until fewer come back.

  Input:
    (no KEYS: built from the prefix)

    ARGV[1] key prefix
    ARGV[2] before (epoch ms, exclusive)
    ARGV[3] batch size

  Output:
    how many jobs were deleted
]]
--- @include "keys"

local prefix, before = ARGV[1], '(' .. ARGV[2]
local left = tonumber(ARGV[3])
local deleted = 0
for _, state in ipairs({ 'delivered', 'dead' }) do
  if left <= 0 then break end
  local set = jobsInStateKey(prefix, state)
  local ids = redis.call('ZRANGEBYSCORE', set, '-inf', before, 'LIMIT', 0, left)
  for _, id in ipairs(ids) do
    local key = jobKey(prefix, id)
    -- Jobs from before scopes are mapped by their idempotency key.
    local fields = redis.call('HMGET', key, 'scope', 'key')
    local scope = fields[1] or fields[2]
    if scope then
      local byKey = jobByKeyKey(prefix, scope)
      if redis.call('GET', byKey) == id then redis.call('DEL', byKey) end
    end
    redis.call('DEL', key)
    redis.call('ZREM', set, id)
  end
  deleted = deleted + #ids
  left = left - #ids
end
return deleted
