--[[
  Dead: appends the attempts, keeps the response (none when not given), takes
  lastError from the DLQ entry, acks and deletes the stream entry and adds the
  DLQ entry, all in one step. Only the current lease token may do this.

  Input:
    (no KEYS: built from the prefix)

    ARGV[1] key prefix
    ARGV[2] consumer group
    ARGV[3] job id
    ARGV[4] lease token
    ARGV[5] now (epoch ms; the DLQ entry's time)
    ARGV[6] now (ISO-8601)
    ARGV[7] attempts to append to the job (JSON array)
    ARGV[8] lastError
    ARGV[9] '1' when a response follows, else '0'
    ARGV[10] response status
    ARGV[11] response headers (JSON)
    ARGV[12] response body (bytes)
    ARGV[13] DLQ entry id
    ARGV[14..] the DLQ entry's hash fields as field, value pairs (jobId,
               redrives, request and scope are added here, from the job)

  Output:
    the DLQ entry hash (HGETALL), or nil when the token does not hold the lease;
    an error reply 'DUPLICATE_ID ...' (and no change) when the entry id is taken
]]
--- @include "keys"
--- @include "json-array"
--- @include "job-queue"
--- @include "dlq"

local prefix, group, id = ARGV[1], ARGV[2], ARGV[3]
local key = jobKey(prefix, id)
local job = redis.call('HMGET', key, 'state', 'token', 'attempts', 'redrives', 'request', 'scope', 'key')
if job[1] ~= 'in_flight' or job[2] ~= ARGV[4] then return nil end

local dlqId = ARGV[13]
if redis.call('EXISTS', dlqEntryKey(prefix, dlqId)) == 1 then
  return redis.error_reply('DUPLICATE_ID dlq entry ' .. dlqId .. ' already exists')
end
detachJob(prefix, group, id)
redis.call('HSET', key, 'attempts', appendJsonArray(job[3], ARGV[7]), 'lastError', ARGV[8], 'dlqId', dlqId,
  'updatedAt', ARGV[6], 'updatedMs', ARGV[5])
if ARGV[9] == '1' then
  redis.call('HSET', key, 'respStatus', ARGV[10], 'respHeaders', ARGV[11], 'respBody', ARGV[12])
else
  redis.call('HDEL', key, 'respStatus', 'respHeaders', 'respBody')
end
setJobState(prefix, id, 'in_flight', 'dead', ARGV[5])

local fields = { 'jobId', id, 'redrives', job[4] or '0' }
-- A job from before routes existed has no request: its entry reads as the legacy target too.
if job[5] then fields[#fields + 1] = 'request'; fields[#fields + 1] = job[5] end
-- A job from before scopes holds its idempotency key as its scope.
fields[#fields + 1] = 'scope'
fields[#fields + 1] = job[6] or job[7]
for i = 14, #ARGV do fields[#fields + 1] = ARGV[i] end
return redis.call('HGETALL', insertDlqEntry(prefix, dlqId, ARGV[5], fields))
