--[[
  Adds one instance's requests and retries to its route's fleet-wide retry
  budget and reads the fleet's totals back (issue 14). Counts are kept per
  second of Redis's clock, as fields `<second>:q` (requests) and `<second>:r`
  (retries); seconds that left the window are deleted.

  Input:
    KEYS[1] the route's budget hash

    ARGV[1] window, whole seconds (>= 1)
    ARGV[2] requests to add (>= 0)
    ARGV[3] retries to add (>= 0)

  Output:
    { requests, retries } in the window, this call's included
]]
local second = tonumber(redis.call('TIME')[1])
local window = tonumber(ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('HINCRBY', KEYS[1], second .. ':q', ARGV[2]) end
if tonumber(ARGV[3]) > 0 then redis.call('HINCRBY', KEYS[1], second .. ':r', ARGV[3]) end
local fields = redis.call('HGETALL', KEYS[1])
local requests, retries = 0, 0
for i = 1, #fields, 2 do
  local at, kind = string.match(fields[i], '^(%d+):(%a)$')
  at = tonumber(at)
  if at == nil or at <= second - window then
    redis.call('HDEL', KEYS[1], fields[i])
  elseif kind == 'q' then
    requests = requests + tonumber(fields[i + 1])
  else
    retries = retries + tonumber(fields[i + 1])
  end
end
redis.call('EXPIRE', KEYS[1], window + 5)
return { requests, retries }
