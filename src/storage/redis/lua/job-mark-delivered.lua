--[[
  A dead job whose DLQ entry was replayed by hand: delivered, as job-complete
  leaves a job (attempts appended, response kept, in the delivered set scored by
  now so that purges count from the replay), with dlqId dropped because its
  entry is gone. lastError stays, as it does on a job completed after retries.
  A dead job has no stream entry, lease or waiting place, so nothing to detach.

  Input:
    (no KEYS: built from the prefix)

    ARGV[1] key prefix
    ARGV[2] job id
    ARGV[3] now (epoch ms)
    ARGV[4] now (ISO-8601)
    ARGV[5] attempts to append (JSON array)
    ARGV[6] response status
    ARGV[7] response headers (JSON)
    ARGV[8] response body (bytes)

  Output:
    1 delivered, 0 the job does not exist or is not dead (nothing changed)
]]
--- @include "keys"
--- @include "json-array"
--- @include "job-queue"

local prefix, id = ARGV[1], ARGV[2]
local key = jobKey(prefix, id)
local job = redis.call('HMGET', key, 'state', 'attempts')
if job[1] ~= 'dead' then return 0 end

redis.call('HSET', key, 'attempts', appendJsonArray(job[2], ARGV[5]),
  'respStatus', ARGV[6], 'respHeaders', ARGV[7], 'respBody', ARGV[8],
  'updatedAt', ARGV[4], 'updatedMs', ARGV[3])
redis.call('HDEL', key, 'dlqId')
setJobState(prefix, id, 'dead', 'delivered', ARGV[3])
return 1
