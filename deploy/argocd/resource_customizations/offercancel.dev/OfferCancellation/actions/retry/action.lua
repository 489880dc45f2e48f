-- Asks the operator for one new attempt of a Failed OfferCancellation:
-- every new value of the offercancel.dev/retry annotation is one retry
-- (README, "Retrying a Failed cancellation"). The value is the time of
-- the click, so each click is a new value.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["offercancel.dev/retry"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
