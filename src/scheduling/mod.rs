//! Who goes next when work has to wait, and how much may go at once.
//!
//! What this room owns: the fair order ([`fair`]: first cancels before
//! routine work, namespaces in turn), the reconcile workers that follow it
//! ([`gate`]), and the request budget of the target APIs that follows it
//! too ([`budget`]). It knows nothing of resources, decisions or HTTP: it
//! orders opaque work by urgency and namespace (the fair order's own
//! tests pin the clock; the gate and the budget read it when work
//! arrives).

pub mod budget;
pub mod fair;
pub mod gate;
