--[[
  Creates a job, or finds the one already holding its idempotency key.
  A new job is available from `now`: it waits in the sorted set with that score,
  and the next lease moves it into its priority stream.

  Input:
    (no KEYS: built from the prefix)

    ARGV[1] key prefix
    ARGV[2] job id
    ARGV[3] idempotency key
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
    {'full', 'count' | 'bytes'} (nothing stored)
]]
--- @include "keys"
--- @include "job-queue"

local prefix, id = ARGV[1], ARGV[2]
local byKey = jobByKeyKey(prefix, ARGV[3])

local holder = redis.call('GET', byKey)
if holder then
  local holderKey = jobKey(prefix, holder)
  local fp = redis.call('HGET', holderKey, 'fp')
  -- A mapping whose job was purged counts as absent.
  if fp then
    if fp ~= ARGV[4] then return { 'mismatch' } end
    return { 'existing', redis.call('HGETALL', holderKey) }
  end
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
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, unpack(fields))
redis.call('SET', byKey, id)
setJobState(prefix, id, nil, 'queued', ARGV[5])
queueJob(prefix, id, ARGV[5])
return { 'created', redis.call('HGETALL', key) }
