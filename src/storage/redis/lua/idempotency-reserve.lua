--[[
  Takes an idempotency key, or reports why not. Keys are scoped keys shared with
  jobs: a key a job holds is never reserved, and the job is reported instead.

  The record is judged with the caller's clock (ARGV[2]), like the SQLite
  backend: a record past `exp` counts as absent; an in-flight record past `lease`
  is never taken over (its outcome is unknown) and keeps the key until `exp`.
  Redis expiry (PEXPIRE, on Redis's own clock) only reclaims the memory.

  Input:
    KEYS[1] the record (hash: fp, state, token, lease, exp, status, headers, body)

    ARGV[1] fingerprint
    ARGV[2] now (epoch ms)
    ARGV[3] leaseMs
    ARGV[4] ttlMs
    ARGV[5] token for a new reservation
    ARGV[6] key prefix
    ARGV[7] the (scoped) key itself

  Output:
    {'reserved'}
    {'in_flight'}
    {'outcome_unknown'} (same fingerprint, in flight, its lease ended)
    {'mismatch'}
    {'completed', status, headers JSON, body}
    {'job', job id, state} or {'job', job id, state, status, headers JSON, body} when it has an answer
]]
--- @include "keys"
--- @include "key-space"

local key = KEYS[1]
local fingerprint = ARGV[1]
local now = tonumber(ARGV[2])
local leaseMs = tonumber(ARGV[3])
local ttlMs = tonumber(ARGV[4])

local jobId = jobHoldingScope(ARGV[6], ARGV[7])
if jobId then
  local job = redis.call('HMGET', jobKey(ARGV[6], jobId), 'fp', 'state', 'respStatus', 'respHeaders', 'respBody')
  if job[1] ~= fingerprint then return { 'mismatch' } end
  if job[3] then return { 'job', jobId, job[2], job[3], job[4] or '{}', job[5] or '' } end
  return { 'job', jobId, job[2] }
end

local record = redis.call('HMGET', key, 'fp', 'state', 'lease', 'exp')
local status = recordStatus(record, now)

if status == 'absent' then
  -- DEL first: a record past `exp` that Redis has not reclaimed yet leaves no field behind.
  redis.call('DEL', key)
  redis.call('HSET', key, 'fp', fingerprint, 'state', 'in_flight', 'token', ARGV[5],
    'lease', now + leaseMs, 'exp', now + ttlMs)
  redis.call('PEXPIRE', key, ttlMs)
  return { 'reserved' }
end
if record[1] ~= fingerprint then return { 'mismatch' } end
if status ~= 'completed' then return { status } end
local answer = redis.call('HMGET', key, 'status', 'headers', 'body')
return { 'completed', answer[1] or '0', answer[2] or '{}', answer[3] or '' }
