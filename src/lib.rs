//! offer-cancel-operator: cancels in-flight Cloud Partner Portal offer
//! operations from Kubernetes.
//!
//! One reconcile, top to bottom, is [`reconcile`]: read the resource and
//! its Secret, [`decide`], call CPP through [`cpp`], write through
//! [`status`], requeue. Dependencies point down this list's layers:
//!
//! - The resource and the words for CPP's answers:
//!   - [`crd`]: the `OfferCancellation` resource.
//!   - [`operation`]: what CPP says of an operation.
//!   - [`fair`]: who goes next when work waits (first cancels, then
//!     namespaces in turn).
//! - Deciding and talking (neither knows the other):
//!   - [`decide`]: the pure decision (what next, and what status follows).
//!   - [`cpp`]: the Cloud Partner Portal client (wire format, auth, Location).
//! - Doing:
//!   - [`reconcile`]: read → decide → execute → write → requeue.
//!   - [`status`]: the one status writer.
//!   - [`context`]: what every reconcile shares.
//!   - [`gate`]: the reconcile workers, in [`fair`]'s order.
//!   - [`credentials`]: what a Secret yields, and its cache.
//!   - `events`, `watch` (private): Events for transitions; what is watched
//!     and kept.
//! - Running:
//!   - [`controller`]: watches and the reconcile loop.
//!   - [`run`]: the `controller` command (leader election, shutdown).
//!   - [`oneshot`]: the `cancel` command.
//!   - [`cli`], [`metrics`], [`health`], [`telemetry`], [`rbac`].
//! - `fixtures`: test builders (tests and the `fixtures` feature only).
//!
//! The CPP simulator is a crate of its own (`crates/cpp-simulator`),
//! reached through the default `simulator` feature.
pub mod cli;
pub mod context;
pub mod controller;
pub mod cpp;
pub mod crd;
pub mod credentials;
pub mod decide;
mod events;
pub mod fair;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod gate;
pub mod health;
pub mod metrics;
pub mod oneshot;
pub mod operation;
pub mod rbac;
pub mod reconcile;
pub mod run;
pub mod status;
pub mod telemetry;
mod watch;
