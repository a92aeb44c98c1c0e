--[[
  Moving jobs between the places a job can be: the waiting set (queued, scored by
  availableAt), its priority stream (due, or leased, with its lease deadline in
  the per-priority lease set) and the per-state sets.
  Needs includes/keys.lua.

  Every queued job waits in the sorted set, new ones included, and only lease
  moves the due ones into the streams, in availableAt order: a stream keeps
  insertion order, and jobs may be enqueued with times out of order.
]]

-- How many due waiting jobs one call moves into the streams. Bounded so that a
-- backlog cannot stall Redis inside one script; the next call moves the rest.
local PROMOTE_MAX = 1000

-- Appends the job to its priority stream, creating the stream and the consumer
-- group on first use (a stream that exists always has the group).
local function pushJob(prefix, group, id, priority)
  local stream = jobStreamKey(prefix, priority)
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
  end
  local entryId = redis.call('XADD', stream, '*', 'job', id)
  redis.call('HSET', jobKey(prefix, id), 'stream', entryId)
  return entryId
end

-- Moves waiting jobs whose availableAt <= now into their streams, oldest first.
local function promoteDue(prefix, group, now)
  local waiting = jobsWaitingKey(prefix)
  local due = redis.call('ZRANGEBYSCORE', waiting, '-inf', now, 'LIMIT', 0, PROMOTE_MAX)
  for _, id in ipairs(due) do
    redis.call('ZREM', waiting, id)
    local priority = redis.call('HGET', jobKey(prefix, id), 'priority')
    if priority then pushJob(prefix, group, id, priority) end
  end
end

-- Takes the job out of wherever it waits or runs: its stream entry is acked and
-- deleted, it leaves the waiting set and the lease deadlines, and its lease token
-- is dropped so that a worker still holding it can no longer finish it.
local function detachJob(prefix, group, id)
  local key = jobKey(prefix, id)
  local fields = redis.call('HMGET', key, 'priority', 'stream')
  if fields[1] then redis.call('ZREM', jobLeasesKey(prefix, fields[1]), id) end
  if fields[1] and fields[2] then
    local stream = jobStreamKey(prefix, fields[1])
    -- pcall: a stream that lost its group (flushed under us) has nothing pending to ack.
    redis.pcall('XACK', stream, group, fields[2])
    redis.call('XDEL', stream, fields[2])
  end
  redis.call('HDEL', key, 'stream', 'token')
  redis.call('ZREM', jobsWaitingKey(prefix), id)
end

-- A queued job waits in the sorted set until a lease finds it due.
local function queueJob(prefix, id, availableAt)
  redis.call('ZADD', jobsWaitingKey(prefix), availableAt, id)
end

-- The states a queue quota counts.
local QUEUED_STATES = { queued = true, in_flight = true }

-- Records the state on the job and in the per-state sets (counts, purges, and the
-- queued-or-in-flight count), and keeps the queued bytes: every state change of
-- every job goes through here, so the counter cannot miss one.
local function setJobState(prefix, id, from, to, nowMs)
  local wasQueued = from ~= nil and from ~= false and QUEUED_STATES[from] == true
  local isQueued = QUEUED_STATES[to] == true
  if wasQueued ~= isQueued then
    local size = redis.call('HSTRLEN', jobKey(prefix, id), 'body')
    redis.call('INCRBY', jobsQueuedBytesKey(prefix), isQueued and size or -size)
  end
  if from then redis.call('ZREM', jobsInStateKey(prefix, from), id) end
  redis.call('ZADD', jobsInStateKey(prefix, to), nowMs, id)
  redis.call('HSET', jobKey(prefix, id), 'state', to)
end
