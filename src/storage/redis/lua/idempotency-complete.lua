--[[
  Stores the definitive answer under a key, if the token still holds it.
  The answer lives ttlMs from now (logically `exp`, natively PEXPIRE).

  Input:
    KEYS[1] the record hash

    ARGV[1] token
    ARGV[2] now (epoch ms)
    ARGV[3] ttlMs
    ARGV[4] status
    ARGV[5] headers JSON
    ARGV[6] body (bytes)

  Output:
    1 stored, 0 the token no longer holds the key (nothing changed)
]]
local key = KEYS[1]
local record = redis.call('HMGET', key, 'state', 'token')
if record[1] ~= 'in_flight' or record[2] ~= ARGV[1] then return 0 end

local ttlMs = tonumber(ARGV[3])
redis.call('HDEL', key, 'token', 'lease')
redis.call('HSET', key, 'state', 'completed', 'status', ARGV[4], 'headers', ARGV[5], 'body', ARGV[6],
  'exp', tonumber(ARGV[2]) + ttlMs)
redis.call('PEXPIRE', key, ttlMs)
return 1
