-- Argo CD health of a TuningStudy, from its kstatus conditions.
local hs = {status = "Progressing", message = "waiting for the operator"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.status.observedGeneration ~= nil and obj.metadata.generation ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "the operator has not acted on the latest spec yet"
  return hs
end
local found = {}
for _, c in ipairs(obj.status.conditions) do
  if c.status == "True" then
    found[c.type] = c
  end
end
for _, kind in ipairs({"Stalled", "Failed"}) do
  if found[kind] ~= nil then
    hs.status = "Degraded"
    hs.message = (found[kind].reason or kind) .. ": " .. (found[kind].message or "")
    return hs
  end
end
for _, kind in ipairs({"Succeeded", "Ready"}) do
  if found[kind] ~= nil then
    hs.status = "Healthy"
    hs.message = found[kind].message or found[kind].reason or kind
    return hs
  end
end
return hs
