--[[
  One key space for synchronous requests and jobs: a scoped key is held either by
  a job (job-key:<scope> -> job id) or by a synchronous request's record
  (idem:<scope>), never both. Needs includes/keys.lua.
]]

-- The id of the job holding a key scope, or nil (a mapping whose job was purged counts as absent).
local function jobHoldingScope(prefix, scope)
  local holder = redis.call('GET', jobByKeyKey(prefix, scope))
  if holder and redis.call('EXISTS', jobKey(prefix, holder)) == 1 then return holder end
  return nil
end

-- What a synchronous record ({fp, state, lease, exp} as HMGET returns them) means
-- at `now`: 'absent' (none, or past its ttl), 'completed', 'in_flight' (a live
-- lease) or 'outcome_unknown' (in flight, lease ended: its holder may have been
-- answered and died before recording it, so the key is never run again by itself).
-- Judged by the caller's clock, like the SQLite backend.
local function recordStatus(record, now)
  if not record[1] then return 'absent' end
  if (tonumber(record[4] or '0') or 0) <= now then return 'absent' end
  if record[2] == 'completed' then return 'completed' end
  if (tonumber(record[3] or '0') or 0) > now then return 'in_flight' end
  return 'outcome_unknown'
end
