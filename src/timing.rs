//! When the operator looks again, and how long it waits: every delay that
//! shapes its behaviour, in one place, each with its reason. (Protocol
//! limits, such as the longest `Retry-After` honoured, stay with the code
//! that reads the protocol.)

use std::time::Duration;

// ---- Requeues: when a resource is looked at again ----

/// After a status write refused as stale: the newer version's watch event
/// brings the resource back; this only covers a watch that missed it.
pub const CONFLICT_REQUEUE: Duration = Duration::from_secs(2);

/// After a reconcile error that status could not record (the API server
/// unreachable, say): soon enough to recover, slow enough not to hammer.
pub const ERROR_REQUEUE: Duration = Duration::from_secs(30);

/// While a Secret yields no credentials: a change to the Secret triggers
/// a reconcile at once, so this only covers a missed watch event.
pub const CREDENTIALS_RETRY: Duration = Duration::from_secs(300);

/// While another reconcile in this process decides about the same target,
/// or the cache is behind our own write to a resource on it: both clear
/// within one round, so look again soon.
pub const TARGET_BUSY: Duration = Duration::from_millis(500);

/// While another resource's cancel for the same target is in flight: its
/// answer is one POST away.
pub const PEER_WAIT: Duration = Duration::from_secs(1);

/// While a cancel was accepted without a location: the cancel operation
/// appears in the operations list within seconds.
pub const UNTRACKED_LOOK: Duration = Duration::from_secs(1);

// ---- Backoff after transient errors ----

/// The controller's first backoff step (it doubles per error in a row).
pub const MIN_BACKOFF: Duration = Duration::from_secs(2);

/// The controller's backoff cap: `--max-backoff-seconds`' default.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The `cancel` command's backoff bounds: someone is waiting at a
/// terminal, so it starts and stays shorter than the controller's.
pub const CLI_MIN_BACKOFF: Duration = Duration::from_secs(1);
pub const CLI_MAX_BACKOFF: Duration = Duration::from_secs(60);

// ---- The cancel POST ----

/// The cancel POST's budget when the caller names none: the HTTP client's
/// default request timeout.
pub const DEFAULT_POST_BUDGET: Duration = Duration::from_secs(30);

/// How long past an intent's `postDeadline` another writer still waits
/// before it takes the missing answer for a lost one: clocks of two
/// replicas differ a little, and CPP may act on a request a moment after
/// its sender gave up on it.
pub const IN_FLIGHT_MARGIN: Duration = Duration::from_secs(10);

// ---- The controller process ----

/// How often the sweep sets the gauges and drops what is kept for
/// resources and Secrets that are gone.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// How often a standby looks whether the leader released the Lease.
pub const STANDBY_CHECK: Duration = Duration::from_secs(1);

/// How long the controller may take to wind down after SIGTERM: less than
/// a pod's termination grace period.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
