--[[
  One page of the DLQ, oldest first, keyset-paged by seq, with optional filters.

  At most ARGV[7] entries are examined per call so that a filter matching little
  in a long queue cannot stall Redis: a page may then hold fewer than `limit`
  items and still point to a next page.

  Input:
    KEYS[1] the order set (entry id scored by seq)

    ARGV[1] key prefix
    ARGV[2] seq after which to start (exclusive; 0 for the first page)
    ARGV[3] limit
    ARGV[4] reason to match, or ''
    ARGV[5] updatedBefore: only entries updated at or before (epoch ms), or ''
    ARGV[6] redrivesBelow: only entries with fewer redrives, or ''
    ARGV[7] most entries to examine

  Output:
    { next seq or '' when this is the last page, entry summary... }, each summary
    a flat field/value list of every field but the body (absent ones left out),
    then 'bodyBytes' and the body's length: a listing never copies a body.
]]
--- @include "keys"

local prefix = ARGV[1]
local after = ARGV[2]
local limit = tonumber(ARGV[3])
local reason = ARGV[4]
local updatedBefore = tonumber(ARGV[5])
local redrivesBelow = tonumber(ARGV[6])
local budget = tonumber(ARGV[7])

-- Every entry field a listing shows; keep in step with codec.ts (toDlqSummary).
local SUMMARY_FIELDS = { 'id', 'createdAt', 'updatedAt', 'request', 'scope', 'key', 'fp', 'headers', 'attempts',
  'lastError', 'status', 'replays', 'reason', 'cause', 'jobId', 'redrives', 'edits' }

local function summary(key)
  local values = redis.call('HMGET', key, unpack(SUMMARY_FIELDS))
  local out = {}
  for i, field in ipairs(SUMMARY_FIELDS) do
    if values[i] then
      out[#out + 1] = field
      out[#out + 1] = values[i]
    end
  end
  out[#out + 1] = 'bodyBytes'
  out[#out + 1] = redis.call('HSTRLEN', key, 'body')
  return out
end

local function matches(key)
  if reason == '' and not updatedBefore and not redrivesBelow then return redis.call('EXISTS', key) == 1 end
  local e = redis.call('HMGET', key, 'reason', 'updatedMs', 'redrives')
  if not e[2] then return false end
  if reason ~= '' and e[1] ~= reason then return false end
  if updatedBefore and tonumber(e[2]) > updatedBefore then return false end
  if redrivesBelow and tonumber(e[3] or '0') >= redrivesBelow then return false end
  return true
end

local items = {}
local lastItemSeq = nil
local scanned = 0
while true do
  local batch = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. after, '+inf', 'WITHSCORES', 'LIMIT', 0, 100)
  if #batch == 0 then break end
  for i = 1, #batch, 2 do
    local id, seq = batch[i], batch[i + 1]
    local key = dlqEntryKey(prefix, id)
    if matches(key) then
      -- One match beyond the page proves another page exists.
      if #items == limit then return { lastItemSeq, unpack(items) } end
      items[#items + 1] = summary(key)
      lastItemSeq = seq
    end
    after = seq
    scanned = scanned + 1
    if scanned >= budget then return { after, unpack(items) } end
  end
end
return { '', unpack(items) }
