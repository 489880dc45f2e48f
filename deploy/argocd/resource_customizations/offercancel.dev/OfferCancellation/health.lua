-- Argo CD health check for offercancel.dev/OfferCancellation. It reads the
-- conditions as kstatus does, with two readings of its own:
-- - a preview waiting for its confirmation (reason PreviewReady) is
--   Suspended: it waits for a person, as a paused rollout does;
-- - a safe ending, where this resource never sent a cancel (attempts 0)
--   and by design sends none (OperationEnded, JobAlreadyCompleted,
--   NothingToCancel, Expired), is Healthy with its message: the resource
--   did its job, never to cancel the wrong operation, and a manifest
--   applied again after its operation ended stays green. The same
--   reasons after a cancel was sent (it came too late, or its answer was
--   lost past notAfter) are failures: Degraded.
-- Otherwise Ready=True is Healthy, Stalled=True is Degraded whatever the
-- phase (a failure, or credentials missing), and anything else, or a
-- status older than the spec, is Progressing.
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
local ready = {}
local stalled = {}
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    elseif condition.type == "Stalled" then
      stalled = condition
    end
  end
end
local safe = {OperationEnded = true, JobAlreadyCompleted = true, NothingToCancel = true, Expired = true}
local sent = status.attempts ~= nil and status.attempts > 0
local phase = status.phase
if phase == "Pending" and ready.reason == "PreviewReady" then
  hs.status = "Suspended"
elseif phase == "Failed" and safe[ready.reason] and not sent then
  hs.status = "Healthy"
elseif ready.status == "True" or phase == "Cancelled" then
  hs.status = "Healthy"
elseif stalled.status == "True" or phase == "Failed" then
  hs.status = "Degraded"
elseif phase == "Pending" or phase == "Cancelling" then
  hs.status = "Progressing"
else
  hs.status = "Unknown"
end
hs.message = status.message or phase
return hs
