-- Argo CD health check for offercancel.dev/OfferCancellation.
-- Cancelled: Healthy. Pending, Cancelling: Progressing. Failed: Degraded.
-- A preview (Ready reason PreviewReady) waits for the user to confirm it:
-- Suspended, as a paused rollout is, neither healthy nor failed.
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
local previewed = false
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" and condition.reason == "PreviewReady" then
      previewed = true
    end
  end
end
if phase == "Pending" and previewed then
  hs.status = "Suspended"
elseif phase == "Cancelled" then
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
