--[[
  Takes an entry out of the DLQ and puts its request back on the job queue,
  available now, in one step: whoever deletes the entry first is the only one
  who moves it.

  Which job: the entry's own job when it still exists, else a job already
  holding the entry's key scope, else a new normal-priority job with id ARGV[5],
  the entry's request, key scope and key (each ARGV[6] when it has none),
  fingerprint (or ARGV[6]), body, headers, attempts and lastError, and
  redrives = entry's + 1. The new job holds the scope, so that a client's own
  resend of the key finds it.
  A found job that is queued or in flight is left as it is (requeuing it would
  break a live worker's lease and deliver the request twice); a delivered or dead
  one is requeued with redrives = max(entry's, job's) + 1, no DLQ link, no answer.

  Input:
    (no KEYS: built from the prefix)

    ARGV[1] key prefix
    ARGV[2] DLQ entry id
    ARGV[3] now (epoch ms)
    ARGV[4] now (ISO-8601)
    ARGV[5] id for a new job
    ARGV[6] key scope, idempotency key and fingerprint for a new job when the entry has none

  Output:
    the job hash (HGETALL), or nil when the entry is gone or a replay holds it
    (the replay owns its delivery: moving it now would send the request twice)
]]
--- @include "keys"
--- @include "job-queue"
--- @include "dlq"
--- @include "key-space"

local prefix, dlqId = ARGV[1], ARGV[2]
local nowMs, nowIso = ARGV[3], ARGV[4]
local entryKey = dlqEntryKey(prefix, dlqId)
if redis.call('EXISTS', entryKey) == 0 then return nil end
local replayUntil = redis.call('HGET', entryKey, 'replayUntil')
if replayUntil and (tonumber(replayUntil) or 0) > tonumber(nowMs) then return nil end
local entry = redis.call('HMGET', entryKey, 'jobId', 'key', 'fp', 'body', 'headers', 'attempts', 'lastError', 'redrives',
  'request', 'scope')
local ownJobId, entryIdemKey = entry[1], entry[2]
-- '' is an entry without a key; no field at all, one from before scopes, whose key was the scope.
local entryScope = entry[10]
if entryScope == '' then entryScope = nil elseif not entryScope then entryScope = entryIdemKey end
local entryRedrives = tonumber(entry[8] or '0') or 0
deleteDlqEntry(prefix, dlqId)

local found = nil
if ownJobId and redis.call('EXISTS', jobKey(prefix, ownJobId)) == 1 then
  found = ownJobId
elseif entryScope then
  found = jobHoldingScope(prefix, entryScope)
end

if found then
  local key = jobKey(prefix, found)
  local job = redis.call('HMGET', key, 'state', 'redrives')
  if job[1] == 'queued' or job[1] == 'in_flight' then return redis.call('HGETALL', key) end
  -- max: an entry from a synchronous request must not reset a job's redrive cap.
  local redrives = math.max(entryRedrives, tonumber(job[2] or '0') or 0) + 1
  -- Delivered and dead jobs are in no stream and not waiting: nothing to detach.
  redis.call('HDEL', key, 'dlqId', 'respStatus', 'respHeaders', 'respBody')
  redis.call('HSET', key, 'availableAt', nowMs, 'redrives', redrives, 'updatedAt', nowIso, 'updatedMs', nowMs)
  setJobState(prefix, found, job[1], 'queued', nowMs)
  queueJob(prefix, found, nowMs)
  return redis.call('HGETALL', key)
end

local id = ARGV[5]
local idempotencyKey = entryIdemKey or ARGV[6]
local scope = entryScope or ARGV[6]
local key = jobKey(prefix, id)
redis.call('HSET', key, 'id', id, 'priority', 'normal', 'scope', scope, 'key', idempotencyKey, 'fp', entry[3] or ARGV[6],
  'body', entry[4], 'headers', entry[5], 'attempts', entry[6] or '[]', 'lastError', entry[7] or '',
  'createdAt', nowIso, 'updatedAt', nowIso, 'updatedMs', nowMs, 'availableAt', nowMs, 'redrives', entryRedrives + 1)
if entry[9] then redis.call('HSET', key, 'request', entry[9]) end
redis.call('SET', jobByKeyKey(prefix, scope), id)
setJobState(prefix, id, nil, 'queued', nowMs)
queueJob(prefix, id, nowMs)
return redis.call('HGETALL', key)
