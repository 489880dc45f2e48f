//! When the operator looks again, and how long it waits: every delay that
//! shapes its behaviour, in one place, each with its reason. (Protocol
//! limits, such as the longest `Retry-After` honoured, stay with the code
//! that reads the protocol.)
//!
//! Only durations and their reasons: no clock is read here.

use jiff::SignedDuration;
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

/// While workload identity's ServiceAccount is missing (or its token
/// refused): no watch reports its creation, so it is asked for again.
pub const SERVICE_ACCOUNT_RETRY: Duration = Duration::from_secs(30);

/// While another resource's POST to the same target may be in flight, or
/// was answered without a location to follow: its answer is one POST
/// away, and the list read again shows what it did.
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

/// The cancel POST's budget when the caller names none: one request.
pub const DEFAULT_POST_BUDGET: Duration = REQUEST_TIMEOUT;

/// How long past an intent's `postDeadline` another writer still waits
/// before it takes the missing answer for a lost one: clocks of two
/// replicas differ a little, and CPP may act on a request a moment after
/// its sender gave up on it.
pub const IN_FLIGHT_MARGIN: Duration = Duration::from_secs(10);

/// How long an intent recorded without a `postDeadline` (by a release
/// before 0.1.0) may still have its POST in flight, from `requestedAt`:
/// such a POST waited for the rate limit and a token without a deadline of
/// its own, and then for one request (`--request-timeout-seconds`, 30 s by
/// default). Ten minutes covers any of those as configured in practice;
/// waiting longer only delays settling a lost answer, sending sooner may
/// send a second cancel.
pub const EARLIER_RELEASE_POST_WINDOW: SignedDuration = SignedDuration::from_secs(600);

// ---- Deciding about a target others also name ----

/// A resource that finds nothing in progress, and the latest operation
/// cancelled by a cancel the target's claim says was requested at most
/// this long before the resource was created, ends Cancelled with it:
/// GitOps applies the manifests of one change within moments of each
/// other, and the operation that ran when it was applied is the one that
/// cancel stopped. Only then: an operation running now is always this
/// resource's own to cancel.
pub const SHARE_WINDOW: SignedDuration = SignedDuration::from_secs(60);

/// How long a claim is kept past its in-flight window: by then the
/// target's own record (a listed cancel, an operation no longer running)
/// says what its POST did, and a claim only ever served until it does.
pub const CLAIM_TTL: SignedDuration = SignedDuration::from_secs(3600);

/// How often the leader sweeps claims past [`CLAIM_TTL`].
pub const CLAIM_SWEEP_EVERY: Duration = Duration::from_secs(600);

/// How far CPP's clock may be behind ours when matching a cancel
/// operation's `createdDateTime` against our recorded intent.
pub const CLOCK_SKEW: SignedDuration = SignedDuration::from_secs(120);

// ---- Requests ----

/// One HTTP request, all in (`--request-timeout-seconds`' default).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Setting up a connection: a host that does not answer fails well within
/// the request timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a routine request (a poll) waits behind first cancels for its
/// slot of the rate limit before it is served among them: polls are
/// delayed, never starved.
pub const ROUTINE_PATIENCE: Duration = Duration::from_secs(5);

// ---- The controller process ----

/// How long a resource may be without any status before the sweep wakes
/// it: a new one is reconciled when created, so only a status wiped
/// through the status subresource (or a restore without status) is found.
/// Status changes alone wake nothing (see `watch`), so this is how a
/// wiped status is handled as a re-creation, with its guards.
pub const STATUS_GRACE: SignedDuration = SignedDuration::from_secs(10);

/// How often the sweep sets the gauges and drops what is kept for
/// resources and Secrets that are gone.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// How often a standby looks whether the leader released the Lease.
pub const STANDBY_CHECK: Duration = Duration::from_secs(1);

/// How long the controller may take to wind down after SIGTERM: less than
/// a pod's termination grace period.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
