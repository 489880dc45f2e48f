-- Actions Argo CD offers on an OfferCancellation: "retry" on a Failed one
-- only (a retry of anything else would do nothing, or send nothing new).
local actions = {}
if obj.status ~= nil and obj.status.phase == "Failed" then
  actions["retry"] = {["disabled"] = false}
end
return actions
