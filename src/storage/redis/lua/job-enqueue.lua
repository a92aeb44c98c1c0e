--[[
  Creates a job, or reports what already holds its key scope: a job, or a
  synchronous request's record (one key space). A synchronous record whose lease
  ended is never taken over (its outcome is unknown); only one past `exp` is.
  A new job is available from `now`: it waits in the sorted set with that score,
  and the next lease moves it into its priority stream.

  Input:
    (no KEYS: built from the prefix)

    ARGV[1] key prefix
    ARGV[2] job id
    ARGV[3] key scope
    ARGV[4] fingerprint
    ARGV[5] now (epoch ms)
    ARGV[6] maxQueued, or '' for no limit
    ARGV[7] maxQueuedBytes, or '' for no limit
    ARGV[8] the job's body bytes
    ARGV[9..] the job's hash fields as field, value pairs

  Output:
    {'created', job hash}
    {'existing', job hash}
    {'mismatch'}
    {'answered', status, headers JSON, body} (a synchronous request answered the key)
    {'in_flight'} (a synchronous request holds the key under a live lease)
    {'outcome_unknown'} (a synchronous request held it, same fingerprint, and its lease ended)
    {'full', 'count' | 'bytes'} (nothing stored)
]]
--- @include "keys"
--- @include "job-queue"
--- @include "key-space"

local prefix, id, scope, fingerprint = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local byKey = jobByKeyKey(prefix, scope)

local holder = jobHoldingScope(prefix, scope)
if holder then
  local holderKey = jobKey(prefix, holder)
  if redis.call('HGET', holderKey, 'fp') ~= fingerprint then return { 'mismatch' } end
  return { 'existing', redis.call('HGETALL', holderKey) }
end

local recordKey = idempotencyRecordKey(prefix, scope)
local record = redis.call('HMGET', recordKey, 'fp', 'state', 'lease', 'exp')
local status = recordStatus(record, tonumber(ARGV[5]))
if status ~= 'absent' then
  if record[1] ~= fingerprint then return { 'mismatch' } end
  if status ~= 'completed' then return { status } end
  local answer = redis.call('HMGET', recordKey, 'status', 'headers', 'body')
  return { 'answered', answer[1] or '0', answer[2] or '{}', answer[3] or '' }
end

local maxQueued, maxQueuedBytes = tonumber(ARGV[6]), tonumber(ARGV[7])
if maxQueued then
  local queued = redis.call('ZCARD', jobsInStateKey(prefix, 'queued')) + redis.call('ZCARD', jobsInStateKey(prefix, 'in_flight'))
  if queued >= maxQueued then return { 'full', 'count' } end
end
if maxQueuedBytes then
  local bytes = tonumber(redis.call('GET', jobsQueuedBytesKey(prefix)) or '0')
  if bytes + tonumber(ARGV[8]) > maxQueuedBytes then return { 'full', 'bytes' } end
end

local key = jobKey(prefix, id)
if redis.call('EXISTS', key) == 1 then
  return redis.error_reply('job id ' .. id .. ' already exists')
end
-- Past `exp` but not yet reclaimed: its holder's token must no longer complete the key.
if record[1] then redis.call('DEL', recordKey) end
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, unpack(fields))
redis.call('SET', byKey, id)
setJobState(prefix, id, nil, 'queued', ARGV[5])
queueJob(prefix, id, ARGV[5])
return { 'created', redis.call('HGETALL', key) }
