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

-- Whether a synchronous record ({fp, state, lease, exp} as HMGET returns them)
-- still holds its key at `now`: not expired, and answered or under a live lease.
-- Judged by the caller's clock, like the SQLite backend.
local function recordHoldsKey(record, now)
  if not record[1] then return false end
  if (tonumber(record[4] or '0') or 0) <= now then return false end
  return record[2] == 'completed' or (tonumber(record[3] or '0') or 0) > now
end
