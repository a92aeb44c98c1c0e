--[[
  Creates a job, or reports what already holds its key scope: a job, or a
  synchronous request's record (one key space). A synchronous record whose lease
  ended is never taken over (its outcome is unknown); only one past `exp` is.
  A new job is available from `now`: it waits in the sorted set with that score,
  and the next lease moves it into its priority stream. A held job (ARGV[9]) is
  created in_flight instead, leased to the caller with the token ARGV[10] until
  Redis's TIME + holdMs, with no stream entry: once that lease ends, job-lease
  finds it without an entry and queues it afresh (the dead holder's attempt
  recorded as interrupted), as it does for any leased job whose entry is gone;
  the lease after that takes it.

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
    ARGV[9] holdMs, or '' for a queued job
    ARGV[10] the lease token of a held job, or ''
    ARGV[11..] the job's hash fields as field, value pairs

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
for i = 11, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, unpack(fields))
redis.call('SET', byKey, id)
local holdMs = tonumber(ARGV[9])
if holdMs then
  -- TIME differs between a primary and its replicas: replicate the effects (a no-op from Redis 7).
  if redis.replicate_commands then redis.replicate_commands() end
  local time = redis.call('TIME')
  local deadline = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) + holdMs
  redis.call('HSET', key, 'token', ARGV[10])
  redis.call('ZADD', jobLeasesKey(prefix, redis.call('HGET', key, 'priority')), deadline, id)
  setJobState(prefix, id, nil, 'in_flight', ARGV[5])
else
  setJobState(prefix, id, nil, 'queued', ARGV[5])
  queueJob(prefix, id, ARGV[5])
end
return { 'created', redis.call('HGETALL', key) }
