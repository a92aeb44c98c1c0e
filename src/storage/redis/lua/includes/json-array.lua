--[[
  Appends one JSON array to another as text. Decoding and re-encoding with cjson
  would not round-trip (an empty array comes back as {}, '/' gets escaped), and the
  attempts are stored exactly as the relay wrote them.
]]
local function appendJsonArray(existing, extra)
  if not existing or existing == '' or existing == '[]' then return extra end
  if extra == '[]' then return existing end
  return string.sub(existing, 1, -2) .. ',' .. string.sub(extra, 2)
end
