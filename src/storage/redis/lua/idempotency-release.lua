--[[
  Gives an in-flight key back without an answer, if the token still holds it.

  Input:
    KEYS[1] the record hash

    ARGV[1] token

  Output:
    1 released, 0 not held by this token (a completed answer is never released)
]]
local record = redis.call('HMGET', KEYS[1], 'state', 'token')
if record[1] ~= 'in_flight' or record[2] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
