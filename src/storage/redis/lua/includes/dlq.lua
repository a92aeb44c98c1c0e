--[[
  Adding and deleting DLQ entries: a hash per entry, ordered by a sequence that
  is never handed out twice (so a cursor pointing at a deleted entry stays valid),
  indexed by last update for purges, and the body bytes of all of them kept in a
  counter (the DLQ cap). Needs includes/keys.lua.
]]

-- fields: a flat list of hash field/value pairs (everything but seq).
local function insertDlqEntry(prefix, id, updatedMs, fields)
  local key = dlqEntryKey(prefix, id)
  local seq = redis.call('INCR', dlqSeqKey(prefix))
  redis.call('HSET', key, 'seq', seq, unpack(fields))
  redis.call('INCRBY', dlqBytesKey(prefix), redis.call('HSTRLEN', key, 'body'))
  redis.call('ZADD', dlqOrderKey(prefix), seq, id)
  redis.call('ZADD', dlqUpdatedKey(prefix), updatedMs, id)
  return key
end

-- 1 if the entry existed.
local function deleteDlqEntry(prefix, id)
  local key = dlqEntryKey(prefix, id)
  local size = redis.call('HSTRLEN', key, 'body')
  local removed = redis.call('DEL', key)
  if removed == 1 then redis.call('DECRBY', dlqBytesKey(prefix), size) end
  redis.call('ZREM', dlqOrderKey(prefix), id)
  redis.call('ZREM', dlqUpdatedKey(prefix), id)
  return removed
end
