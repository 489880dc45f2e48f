//! offer-cancel-operator: cancels in-flight Cloud Partner Portal offer
//! operations and Partner Center Product Ingestion configure jobs from
//! Kubernetes.
//!
//! One reconcile, top to bottom, is [`reconcile`]: read the resource and
//! its Secret, [`decide`], call the target's API through [`apis`], write
//! through [`status`], report (Event, count), requeue. Dependencies point
//! down this list's layers:
//!
//! - Words every layer uses:
//!   - [`crd`]: the `OfferCancellation` resource and its target: types,
//!     validation, the generated schema.
//!   - [`operation`]: what an API says of an operation or a job.
//!   - [`scheduling`]: who goes next when work waits (first cancels,
//!     then namespaces in turn): the reconcile workers' gate and the
//!     request budget both follow its order.
//!   - [`text`]: bounded strings; [`timing`]: every requeue and wait.
//! - Deciding and talking (neither knows the other):
//!   - [`claim`]: one cancel per target: the claim the API server
//!     arbitrates, its pure rules, and the one place it is read and
//!     written (Leases).
//!   - [`decide`]: the pure decision (what next, what an API's answer
//!     means, and what status follows).
//!   - [`http`]: what both clients share (HTTP, tokens per
//!     audience, Location rules, retry classes).
//!   - [`cpp`]: the Cloud Partner Portal client; [`ingestion`]: the
//!     Product Ingestion client, its peer.
//!   - [`metrics`]: what is counted, including what the clients report;
//!     [`apis`]: both clients on one transport.
//! - Doing:
//!   - [`reconcile`]: read → decide → execute → write → report → requeue.
//!   - [`execute`]: the call a step names, to the target's API, and what
//!     the API said (what it means is [`decide`]'s to say).
//!   - [`status`]: the one status writer.
//!   - [`context`]: what every reconcile shares.
//!   - [`credentials`]: what a Secret yields, and its cache;
//!     [`workload_identity`]: a namespace's ServiceAccount tokens
//!     (TokenRequest).
//!   - `events`, `watch` (private): Events for transitions; what is watched
//!     and kept.
//!   - [`control_loop`]: watches and the reconcile loop; [`health`]:
//!     probes; [`telemetry`]: logs and traces.
//! - Commands:
//!   - [`commands`]: `controller`, `cancel`, `crd`, `simulator`, as a
//!     dispatch table of plain configs.
//!   - [`cli`]: flags into those configs (the only module that knows of
//!     clap; the binary's `main.rs` calls it).
//! - `fixtures`: test builders (tests and the `fixtures` feature only).
//!
//! The simulator of CPP and Product Ingestion is a crate of its own
//! (`crates/marketplace-simulator`), reached through the default
//! `simulator` feature.
pub mod apis;
pub mod claim;
pub mod cli;
pub mod commands;
pub mod context;
pub mod control_loop;
pub mod cpp;
pub mod crd;
pub mod credentials;
pub mod decide;
mod events;
pub mod execute;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod health;
pub mod http;
pub mod ingestion;
pub mod metrics;
pub mod operation;
pub mod reconcile;
pub mod scheduling;
pub mod status;
pub mod telemetry;
pub mod text;
pub mod timing;
mod watch;
pub mod workload_identity;
