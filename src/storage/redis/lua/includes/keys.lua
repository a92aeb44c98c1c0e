--[[
  The key layout, built from the prefix every script gets as ARGV[1].
  Mirrors src/storage/redis/keys.ts; change both together.
]]
local function idempotencyRecordKey(prefix, scope) return prefix .. 'idem:' .. scope end
local function jobKey(prefix, id) return prefix .. 'job:' .. id end
local function jobByKeyKey(prefix, scope) return prefix .. 'job-key:' .. scope end
local function jobStreamKey(prefix, priority) return prefix .. 'jobs:stream:' .. priority end
local function jobLeasesKey(prefix, priority) return prefix .. 'jobs:leases:' .. priority end
local function jobsWaitingKey(prefix) return prefix .. 'jobs:waiting' end
local function jobsInStateKey(prefix, state) return prefix .. 'jobs:state:' .. state end
local function jobsQueuedBytesKey(prefix) return prefix .. 'jobs:queued-bytes' end
local function dlqEntryKey(prefix, id) return prefix .. 'dlq:entry:' .. id end
local function dlqSeqKey(prefix) return prefix .. 'dlq:seq' end
local function dlqOrderKey(prefix) return prefix .. 'dlq:order' end
local function dlqUpdatedKey(prefix) return prefix .. 'dlq:updated' end
local function dlqBytesKey(prefix) return prefix .. 'dlq:bytes' end
