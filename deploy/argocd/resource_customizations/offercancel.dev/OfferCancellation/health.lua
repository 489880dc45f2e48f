-- Argo CD health check for offercancel.dev/OfferCancellation.
-- Cancelled: Healthy. Pending, Cancelling: Progressing. Failed: Degraded.
-- A status older than the spec (observedGeneration behind) is Progressing.
local hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the latest spec"
  return hs
end
local phase = status.phase
if phase == "Cancelled" then
  hs.status = "Healthy"
elseif phase == "Failed" then
  hs.status = "Degraded"
elseif phase == "Pending" or phase == "Cancelling" then
  hs.status = "Progressing"
else
  hs.status = "Unknown"
end
hs.message = status.message or phase
return hs
