--[[
  Leases up to `limit` jobs: high, then normal, then low priority; within a
  priority first the jobs whose lease ran out (their worker died), then new ones.

  Each priority is a stream read by one consumer group. First the due jobs of
  the waiting set (availableAt <= now, the caller's clock) move into their
  streams, oldest first; XREADGROUP (never blocking inside a script) then hands
  out entries nobody has seen. A leased job's deadline goes into the priority's
  lease set, on Redis's own clock (TIME), so that relays whose clocks disagree
  still agree on when a lease ends; an expired one is moved to this consumer with
  XCLAIM (its delivery count goes up). Not XAUTOCLAIM: its one min-idle time per
  call cannot honour leases of different lengths. Every leased job gets a fresh
  token on its hash, so a worker whose lease was taken over can no longer
  complete, reschedule or bury it. A job taken over from a dead worker (leased
  again, or queued afresh) gets the interrupted attempt (ARGV[8]) appended, so
  that the attempt it was making counts.

  Input:
    (no KEYS: built from the prefix)

    ARGV[1] key prefix
    ARGV[2] consumer group
    ARGV[3] consumer name (this relay instance)
    ARGV[4] now (epoch ms)
    ARGV[5] now (ISO-8601)
    ARGV[6] leaseMs
    ARGV[7] limit
    ARGV[8] the interrupted attempt, as a JSON array of one record
    ARGV[9..8+limit] one fresh token per job that may be leased

  Output:
    { job hash (HGETALL)... } in lease order
]]
--- @include "keys"
--- @include "job-queue"
--- @include "json-array"

-- TIME differs between a primary and its replicas: replicate the effects, not
-- the script (always so from Redis 7, where this call is a no-op).
if redis.replicate_commands then redis.replicate_commands() end

local prefix, group, consumer = ARGV[1], ARGV[2], ARGV[3]
local now, nowIso = tonumber(ARGV[4]), ARGV[5]
local leaseMs = tonumber(ARGV[6])
local limit = tonumber(ARGV[7])
local time = redis.call('TIME')
local deadline = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) + leaseMs
local redisNow = deadline - leaseMs
local interrupted = ARGV[8]
local nextToken = 9
local leased = {}

-- XREADGROUP rounds per priority: each leases at least one job or ends the loop,
-- except for orphaned entries, which are cleaned up as they are met.
local MAX_ROUNDS = 50

-- Its worker stopped mid-attempt: the attempt goes into the history, sent or not.
local function recordInterrupted(id)
  local key = jobKey(prefix, id)
  redis.call('HSET', key, 'attempts', appendJsonArray(redis.call('HGET', key, 'attempts'), interrupted))
end

local function lease(priority, id)
  local key = jobKey(prefix, id)
  redis.call('HSET', key, 'token', ARGV[nextToken], 'updatedAt', nowIso, 'updatedMs', now)
  nextToken = nextToken + 1
  redis.call('ZADD', jobLeasesKey(prefix, priority), deadline, id)
  setJobState(prefix, id, redis.call('HGET', key, 'state'), 'in_flight', now)
  leased[#leased + 1] = redis.call('HGETALL', key)
end

-- An entry whose job is gone or has moved on (finished, rescheduled, redriven)
-- can never be leased again.
local function dropEntry(stream, entryId)
  redis.pcall('XACK', stream, group, entryId)
  redis.call('XDEL', stream, entryId)
end

promoteDue(prefix, group, now)

for _, priority in ipairs({ 'high', 'normal', 'low' }) do
  local stream = jobStreamKey(prefix, priority)
  local leases = jobLeasesKey(prefix, priority)
  if #leased < limit then
    local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', redisNow, 'LIMIT', 0, limit - #leased)
    for _, id in ipairs(expired) do
      local job = redis.call('HMGET', jobKey(prefix, id), 'state', 'stream')
      local claimed = {}
      if job[1] == 'in_flight' and job[2] then
        claimed = redis.call('XCLAIM', stream, group, consumer, 0, job[2])
      end
      if #claimed == 1 then
        recordInterrupted(id)
        lease(priority, id)
      else
        -- Its entry is gone (a flushed or trimmed stream): queue the job afresh rather than lose it.
        redis.call('ZREM', leases, id)
        if job[1] == 'in_flight' then
          recordInterrupted(id)
          redis.call('HDEL', jobKey(prefix, id), 'stream', 'token')
          setJobState(prefix, id, 'in_flight', 'queued', now)
          queueJob(prefix, id, now)
        end
      end
    end
  end
  if #leased < limit and redis.call('EXISTS', stream) == 1 then
    for _ = 1, MAX_ROUNDS do
      if #leased >= limit then break end
      local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', limit - #leased, 'STREAMS', stream, '>')
      if not read or #read[1][2] == 0 then break end
      for _, entry in ipairs(read[1][2]) do
        local entryId, fields = entry[1], entry[2]
        local id = fields and fields[2]
        local job = id and redis.call('HMGET', jobKey(prefix, id), 'state', 'stream')
        if job and job[1] == 'queued' and job[2] == entryId then
          lease(priority, id)
        else
          dropEntry(stream, entryId)
        end
      end
    end
  end
end
return leased
