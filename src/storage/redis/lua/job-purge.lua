--[[
  Deletes up to ARGV[3] delivered and dead jobs last updated before ARGV[2]
  (and their idempotency-key mapping); the caller repeats until fewer come back.

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
    local idempotencyKey = redis.call('HGET', key, 'key')
    if idempotencyKey then
      local byKey = jobByKeyKey(prefix, idempotencyKey)
      if redis.call('GET', byKey) == id then redis.call('DEL', byKey) end
    end
    redis.call('DEL', key)
    redis.call('ZREM', set, id)
  end
  deleted = deleted + #ids
  left = left - #ids
end
return deleted
