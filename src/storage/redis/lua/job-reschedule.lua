--[[
  Back to queued until availableAt, appending the attempts: the stream entry is
  acked and deleted and the job waits in the sorted set until a lease finds it
  due. Only the current lease token may do this.

  Input:
    (no KEYS: built from the prefix)

    ARGV[1] key prefix
    ARGV[2] consumer group
    ARGV[3] job id
    ARGV[4] lease token
    ARGV[5] now (epoch ms)
    ARGV[6] now (ISO-8601)
    ARGV[7] attempts to append (JSON array)
    ARGV[8] lastError
    ARGV[9] availableAt (epoch ms)

  Output:
    1 rescheduled, 0 the token does not hold the lease (nothing changed)
]]
--- @include "keys"
--- @include "json-array"
--- @include "job-queue"

local prefix, group, id = ARGV[1], ARGV[2], ARGV[3]
local key = jobKey(prefix, id)
local job = redis.call('HMGET', key, 'state', 'token', 'attempts')
if job[1] ~= 'in_flight' or job[2] ~= ARGV[4] then return 0 end

detachJob(prefix, group, id)
redis.call('HSET', key, 'attempts', appendJsonArray(job[3], ARGV[7]), 'lastError', ARGV[8],
  'availableAt', ARGV[9], 'updatedAt', ARGV[6], 'updatedMs', ARGV[5])
setJobState(prefix, id, 'in_flight', 'queued', ARGV[5])
queueJob(prefix, id, ARGV[9])
return 1
