//! offer-cancel-operator: cancels in-flight Cloud Partner Portal offer
//! operations from Kubernetes.
//!
//! - [`crd`]: the `OfferCancellation` resource.
//! - [`cpp`]: the Cloud Partner Portal client (wire format, auth, Location).
//! - [`decide`]: the pure decision (what next, and what status follows).
//! - [`engine`]: executes decisions against CPP, saving status in between.
//! - [`controller`]: Kubernetes wiring (status writes, events, the run loop).
//! - [`watch`]: what is watched and kept (lenient, trimmed, metadata only).
//! - [`credentials`]: credentials from Secrets.
//! - [`events`]: Kubernetes Events for transitions.
//! - [`oneshot`]: the `cancel` command.
//! - [`simulator`]: a local CPP.
//! - [`metrics`], [`health`], [`telemetry`]: operating it.
//! - [`cli`]: flags and environment.
//! - [`rbac`]: every Kubernetes call the operator makes.
pub mod cli;
pub mod context;
pub mod controller;
pub mod cpp;
pub mod crd;
mod credentials;
pub mod decide;
mod events;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
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
