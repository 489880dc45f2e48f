//! One way through a reconcile, top to bottom:
//!
//! 1. **read** the resource as the API server has it now (never a cached
//!    copy older than our own last write) and what its Secret yields;
//! 2. **decide**: `next_step`, the one pure function that says what to do;
//! 3. **execute** the call it names, to the target's API;
//! 4. **write** the transition through the one [`StatusWriter`]; a cancel
//!    POST only ever follows an intent that is already durable;
//! 5. **report** it ([`Report`]): publish its Event and count a final
//!    outcome;
//! 6. **requeue** when the transition says.
//!
//! The one-shot CLI runs steps 2 to 5 through the same [`step`], with
//! status kept in memory and a report that prints.
//!
//! It may not say what an API's answer means (`decide` does) nor build a
//! request (`execute` does).

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::apis::Apis;
use crate::claim::lease::{ClaimError, ClaimStore};
use crate::claim::{Claim, ClaimWrite};
use crate::context::{Context, PerResource};
use crate::crd::{OfferCancellation, OfferCancellationStatus, Phase};
use crate::credentials::{self, SecretReading, Yield};
use crate::decide::{
    Notice, Observed, Outcome, Requeue, Step, Transition, meaning, next_step, transition,
};
use crate::execute::{execute, send_cancel};
use crate::metrics::{Metrics, OutcomeLabels, ReconcileResult, Stage, StageClock};
use crate::status::{KubeStatus, StatusWriter, WriteError, read_fresh};
use crate::timing::CONFLICT_REQUEUE;

/// What failed in a reconcile, outside what status records.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("resource has no namespace")]
    NoNamespace,
    #[error("reading Secret {name}: {source}")]
    ReadSecret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading the resource: {0}")]
    ReadResource(#[source] kube::Error),
    #[error("reading the target's claim: {0}")]
    ReadClaim(#[source] ClaimError),
    #[error(transparent)]
    WriteStatus(#[from] WriteError),
}

impl Error {
    /// The metric label (`error`).
    pub fn label(&self) -> &'static str {
        match self {
            Error::NoNamespace => "no_namespace",
            Error::ReadSecret { .. } => "read_secret",
            Error::ReadResource(_) => "read_resource",
            Error::ReadClaim(_) => "read_claim",
            Error::WriteStatus(WriteError::Conflict) => "conflict",
            Error::WriteStatus(WriteError::NoNamespace | WriteError::Api(_)) => "write_status",
        }
    }
}

/// The controller's reconcile: the resource waits its turn at the gate (a
/// first cancel still to go waits only for other first cancels), then
/// runs one round.
pub async fn reconcile(obj: Arc<OfferCancellation>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Kept until the round that sends is counted (or the sweep finds the
    // resource gone or past its first cancel): a first round that does not
    // send (an error, a claim held by another) leaves the clock running.
    let seen = ctx.first_seen.get(&ObjectRef::from_obj(obj.as_ref()));
    let mut clock = StageClock::since(seen.unwrap_or_else(std::time::Instant::now));
    if seen.is_some() {
        clock.mark(Stage::Queued);
    }
    let turn = crate::decide::waiting_turn(&obj, Timestamp::now(), std::time::Instant::now());
    let _worker = ctx.gate.enter(turn).await;
    clock.mark(Stage::Gate);
    // Boxed: a reconcile waiting at the gate keeps only this small future.
    let wait = Box::pin(counted_round(obj, ctx.clone(), clock)).await?;
    Ok(wait.map_or_else(Action::await_change, Action::requeue))
}

/// One round, timed and counted, every log line inside carrying the
/// resource's namespace and name; returns when to look again (`None`:
/// only on a change). `clock` times the stages of a round that sends a
/// cancel.
pub async fn counted_round(
    obj: Arc<OfferCancellation>,
    ctx: Arc<Context>,
    clock: StageClock,
) -> Result<Option<Duration>, Error> {
    use tracing::Instrument;
    let started = Instant::now();
    let span = tracing::info_span!(
        "reconcile",
        namespace = obj.namespace().unwrap_or_default(),
        name = obj.name_any()
    );
    let result = round(obj, &ctx, clock).instrument(span).await;
    let took = started.elapsed().as_secs_f64();
    ctx.metrics.reconcile_duration.observe(took);
    let ended = match &result {
        Ok(None) => ReconcileResult::Success,
        Ok(Some(_)) | Err(Error::WriteStatus(WriteError::Conflict)) => ReconcileResult::Requeue,
        Err(_) => ReconcileResult::Error,
    };
    ctx.metrics.reconciled(ended);
    match result {
        // A newer version exists; its watch event brings it back. The
        // requeue only covers a watch that missed it.
        Err(Error::WriteStatus(WriteError::Conflict)) => {
            tracing::debug!("stale view: decision dropped");
            ctx.metrics.status_conflicts.inc();
            Ok(Some(CONFLICT_REQUEUE))
        }
        other => other,
    }
}

/// Everything a round decides from, read before the decision.
struct Reading {
    /// The resource as the API server has it (or our own last write).
    resource: Arc<OfferCancellation>,
    /// What the decision looks at: the resource, what its Secret yields,
    /// the target's claim, the error streak, the clock.
    observed: Observed,
    secret: Option<SecretReading>,
}

/// Read everything, decide, execute, write; when to look again.
async fn round(
    obj: Arc<OfferCancellation>,
    ctx: &Context,
    mut clock: StageClock,
) -> Result<Option<Duration>, Error> {
    let Some(Reading {
        resource,
        mut observed,
        secret,
    }) = read_all(obj, ctx).await?
    else {
        return Ok(None);
    };
    clock.mark(Stage::Reads);
    let mut writer = KubeStatus::new(ctx, &resource);
    let mut report = Announce {
        ctx,
        obj: &resource,
        clock,
    };
    let creds = secret.as_ref().and_then(SecretReading::yielded);
    let requeue = step(
        &ctx.apis,
        &ctx.claims,
        &mut observed,
        creds,
        &mut writer,
        &mut report,
    )
    .await?;
    remember(ctx, &resource, &observed, requeue);
    Ok(requeue_delay(
        requeue,
        ctx.config.min_backoff,
        ctx.config.max_backoff,
    ))
}

/// The read phase: the resource, then its Secret and the target's claim
/// where the decision will need them. `None`: the resource is gone.
async fn read_all(obj: Arc<OfferCancellation>, ctx: &Context) -> Result<Option<Reading>, Error> {
    let Some(resource) = read_current(obj, ctx).await? else {
        return Ok(None);
    };
    let key = ObjectRef::from_obj(resource.as_ref());
    let errors = ctx.errors_in_row.get(&key).unwrap_or(0);
    let mut observed = Observed::of(&resource, None, errors, Timestamp::now());
    let secret = read_secret(&resource, &observed, ctx).await?;
    observed.credentials_version = secret.as_ref().and_then(|s| s.version.clone());
    observed.claim = read_claim(&observed, ctx).await?;
    Ok(Some(Reading {
        resource,
        observed,
        secret,
    }))
}

/// What the next round needs from this one: the error streak, and a wake
/// when the claim this resource follows is let go.
fn remember(ctx: &Context, resource: &OfferCancellation, observed: &Observed, requeue: Requeue) {
    let key = ObjectRef::from_obj(resource);
    if observed.follows_a_claim()
        && let Some(target) = claim_key(observed)
    {
        ctx.claims.wait_on(&target, key.clone());
    }
    let streak = requeue.errors_in_row();
    ctx.errors_in_row.set(key, (streak > 0).then_some(streak));
}

/// The target's claim, read from the API server when the next step may
/// lead to a POST (`None` otherwise: nothing to arbitrate).
async fn read_claim(observed: &Observed, ctx: &Context) -> Result<Option<Claim>, Error> {
    let Some(key) = claim_key(observed).filter(|_| observed.needs_claim()) else {
        return Ok(None);
    };
    ctx.claims.read(&key).await.map_err(Error::ReadClaim)
}

/// The key of the target's claim; `None` for a spec that names no valid
/// target (it never sends).
fn claim_key(observed: &Observed) -> Option<String> {
    observed.spec.target().ok().map(|t| t.key())
}

/// What the resource's Secret yields, read only when the decision needs
/// it (`None`: not read).
async fn read_secret(
    resource: &OfferCancellation,
    observed: &Observed,
    ctx: &Context,
) -> Result<Option<SecretReading>, Error> {
    let name = &resource.spec.credentials_secret_ref.name;
    if !observed.needs_credentials() {
        return Ok(None);
    }
    let ns = resource.namespace().ok_or(Error::NoNamespace)?;
    credentials::read(&ctx.client, &ctx.credentials, &ns, name)
        .await
        .map(Some)
        .map_err(|source| Error::ReadSecret {
            name: name.clone(),
            source,
        })
}

/// The object as the API server has it now: the watch cache's copy, unless
/// it is older than our own last write; then a fresh GET. `None`: deleted.
async fn read_current(
    obj: Arc<OfferCancellation>,
    ctx: &Context,
) -> Result<Option<Arc<OfferCancellation>>, Error> {
    let key = ObjectRef::from_obj(obj.as_ref());
    if !behind(&ctx.written, &key, obj.meta().resource_version.as_deref()) {
        return Ok(Some(obj));
    }
    ctx.metrics.stale_reads.inc();
    obj.namespace().ok_or(Error::NoNamespace)?;
    let current = read_fresh(ctx, &obj).await.map_err(Error::ReadResource)?;
    Ok(current.map(Arc::new))
}

/// Our last status write per resource is kept until the watch cache has
/// caught up with it: deciding from an older copy could repeat what the
/// write already recorded. Says whether `seen` is such a copy, and forgets
/// our write once the cache shows it.
fn behind(
    written: &PerResource<String>,
    key: &ObjectRef<OfferCancellation>,
    seen: Option<&str>,
) -> bool {
    let Some(ours) = written.get(key) else {
        return false;
    };
    if seen.is_some_and(|seen| at_or_past(seen, &ours)) {
        written.set(key.clone(), None);
        return false;
    }
    true
}

/// Whether version `seen` is `ours` or newer. resourceVersions are opaque
/// to clients, but where both read as etcd revisions (every API server
/// today) a larger one is newer: a copy someone else wrote after our
/// write (an annotation, a label) is not behind it. Otherwise only the
/// same version counts.
fn at_or_past(seen: &str, ours: &str) -> bool {
    match (seen.parse::<u64>(), ours.parse::<u64>()) {
        (Ok(seen), Ok(ours)) => seen >= ours,
        _ => seen == ours,
    }
}

/// What follows each transition of a round, once its status is durable.
pub trait Report {
    /// `before` is the status the transition started from.
    fn transitioned(
        &mut self,
        before: &OfferCancellationStatus,
        t: &Transition,
    ) -> impl Future<Output = ()> + Send;

    /// A round that sends a cancel finished `stage`.
    fn reached(&mut self, _stage: Stage) {}
}

/// The controller's report of a changed status: a log line, the count of
/// a final outcome, and the transition's Event; and the stages of a round
/// that sent a cancel.
struct Announce<'a> {
    ctx: &'a Context,
    obj: &'a OfferCancellation,
    clock: StageClock,
}

impl Report for Announce<'_> {
    fn reached(&mut self, stage: Stage) {
        self.clock.mark(stage);
        match stage {
            // Sent: a later round (a resend) starts a clock of its own.
            Stage::Post => self.ctx.first_seen.set(ObjectRef::from_obj(self.obj), None),
            Stage::Answer => self.clock.count(&self.ctx.metrics),
            _ => {}
        }
    }

    async fn transitioned(&mut self, before: &OfferCancellationStatus, t: &Transition) {
        if &t.status == before {
            return;
        }
        tracing::info!(
            phase = t.status.phase.map(Phase::as_str),
            message = t.status.message.as_deref(),
            "status changed"
        );
        count_outcome(&self.ctx.metrics, before, &t.status);
        publish_event(self.ctx, self.obj, t.notice.as_ref()).await;
    }
}

/// Counts a resource that just ended (Cancelled or Failed).
fn count_outcome(
    metrics: &Metrics,
    before: &OfferCancellationStatus,
    after: &OfferCancellationStatus,
) {
    let outcome = match after.phase {
        _ if before.phase == after.phase => return,
        Some(Phase::Cancelled) => "cancelled",
        Some(Phase::Failed) => "failed",
        Some(Phase::Pending) | Some(Phase::Cancelling) | None => return,
    };
    metrics
        .cancellations_ended
        .get_or_create(&OutcomeLabels { outcome })
        .inc();
}

/// Publishes a transition's Event. A failure is logged: the status, not
/// the Event, is the record.
async fn publish_event(ctx: &Context, obj: &OfferCancellation, notice: Option<&Notice>) {
    let Some(notice) = notice else {
        return;
    };
    if let Err(e) = ctx.events.publish(obj, notice).await {
        tracing::warn!(error = %e, reason = notice.reason, "publishing event failed");
    }
}

/// Decide, execute, write, report: one round. An intent transition is
/// followed by the one cancel POST, once the writer has made the intent
/// durable. `credentials` is what the Secret (or the CLI's flags) yielded.
pub async fn step<W: StatusWriter, R: Report, C: ClaimStore>(
    apis: &Apis,
    claims: &C,
    observed: &mut Observed,
    credentials: Yield<'_>,
    writer: &mut W,
    report: &mut R,
) -> Result<Requeue, W::Error> {
    observed.now = Timestamp::now();
    observed.round_started = observed.now;
    observed.post_budget = apis.post_budget();
    let mut edges = Edges {
        writer,
        report,
        claims,
    };
    let answer = match next_step(observed) {
        Step::Idle => return Ok(Requeue::Never),
        Step::Wait(wait) => return Ok(Requeue::After(wait)),
        Step::Record(outcome) => return Ok(write(observed, &mut edges, outcome).await?.requeue),
        Step::Call(call) => {
            let said = execute(apis, call, &observed.asking(), credentials).await;
            with_job_detail(apis, observed, credentials, meaning(observed, said)).await
        }
    };
    edges.report.reached(Stage::TargetRead);
    let t = record_answer(observed, &mut edges, answer).await?;
    if !t.post {
        return Ok(t.requeue);
    }
    edges.report.reached(Stage::Intent);
    let said = send_cancel(apis, &observed.asking(), credentials).await;
    let answer = meaning(observed, said);
    edges.report.reached(Stage::Post);
    let answer = with_job_detail(apis, observed, credentials, answer).await;
    let requeue = record_answer(observed, &mut edges, answer).await?.requeue;
    edges.report.reached(Stage::Answer);
    Ok(requeue)
}

/// `answer`, and when it ends a job cancelled, the job's detail read right
/// after, so the end and what the job had already applied take one write.
async fn with_job_detail(
    apis: &Apis,
    observed: &Observed,
    credentials: Yield<'_>,
    answer: Outcome,
) -> Outcome {
    if !crate::decide::job_detail_follows(observed, &answer) {
        return answer;
    }
    // The end is known: the detail waits its turn as routine work, behind
    // other tenants' first cancels.
    let mut asking = observed.asking();
    asking.turn.urgency = crate::scheduling::fair::Urgency::Routine;
    let said = execute(
        apis,
        crate::decide::Call::ReadJobDetail,
        &asking,
        credentials,
    )
    .await;
    match meaning(observed, said) {
        Outcome::JobDetail(read) => Outcome::EndedWithDetail(Box::new(answer), read),
        _ => answer,
    }
}

/// Where a round's transitions go: the target's claim (held before an
/// intent), the status writer, the report, then the claim again (told the
/// answer, or let go).
struct Edges<'a, W, R, C> {
    writer: &'a mut W,
    report: &'a mut R,
    claims: &'a C,
}

/// How often an answer from CPP is written again after the resource moved
/// on under it (each time on a fresh read).
const ANSWER_WRITES: usize = 5;

/// Writes what CPP answered. A write refused because the resource moved on
/// while CPP was asked (a label or annotation edit: GitOps tools make them
/// all the time) does not lose the answer: the resource is read again and,
/// while its status is still the one the decision was made from, the
/// answer is applied to it and written again. Only when another writer
/// changed the status meanwhile is ours dropped.
async fn record_answer<W: StatusWriter, R: Report, C: ClaimStore>(
    observed: &mut Observed,
    edges: &mut Edges<'_, W, R, C>,
    answer: Outcome,
) -> Result<Transition, W::Error> {
    let decided_from = observed.status.clone();
    let mut tries = 1;
    loop {
        let refused = match write(observed, edges, answer.clone()).await {
            Ok(t) => return Ok(t),
            Err(refused) => refused,
        };
        let fresh = match edges.writer.reread(&refused).await {
            Some(fresh) if tries < ANSWER_WRITES => fresh,
            _ => return Err(refused),
        };
        if !status_unchanged(fresh.status.as_ref(), &decided_from) {
            tracing::info!(
                "another writer changed the status while CPP was asked; its answer is dropped"
            );
            return Err(refused);
        }
        tracing::debug!("the resource moved on while CPP was asked; writing the answer again");
        observed.reread(&fresh);
        tries += 1;
    }
}

/// Whether the status as the API server has it now is the one a decision
/// was made from (compared as written: status keeps whole seconds).
fn status_unchanged(now: Option<&OfferCancellationStatus>, then: &OfferCancellationStatus) -> bool {
    let written = |s: &OfferCancellationStatus| serde_json::to_value(s).ok();
    let now = now.cloned().unwrap_or_default();
    written(&now).is_some() && written(&now) == written(then)
}

/// Applies `outcome`, writes the result when the status changed, reports
/// it, and moves `observed` on to it. An intent is written only once the
/// target's claim is held; a claim someone else took first leaves the
/// status as it was, to be decided again.
async fn write<W: StatusWriter, R: Report, C: ClaimStore>(
    observed: &mut Observed,
    edges: &mut Edges<'_, W, R, C>,
    outcome: Outcome,
) -> Result<Transition, W::Error> {
    observed.now = Timestamp::now();
    let mut t = transition(observed, outcome);
    if let Some(ClaimWrite::Acquire { how, claim }) = &t.claim {
        match acquire(edges.claims, observed, claim, how).await {
            Ok(held) => observed.claim = Some(held),
            Err(refused) => t = transition(observed, refused),
        }
    }
    if t.status != observed.status {
        edges.writer.write(&t.status).await?;
    }
    edges.report.transitioned(&observed.status, &t).await;
    tell_the_claim(edges.claims, observed, t.claim.as_ref()).await;
    observed.status = t.status.clone();
    Ok(t)
}

/// Holds the target's claim; what a refusal means to the decision.
async fn acquire<C: ClaimStore>(
    claims: &C,
    observed: &Observed,
    claim: &Claim,
    how: &crate::claim::Acquire,
) -> Result<Claim, Outcome> {
    let key = claim_key(observed).unwrap_or_default();
    claims.acquire(&key, claim, how).await.map_err(|e| match e {
        ClaimError::Lost => Outcome::ClaimTaken,
        ClaimError::Api(e) => Outcome::Transient {
            message: format!("the target's claim could not be written: {e}"),
            retry_after: None,
        },
    })
}

/// After a transition is durable: our POST's answer goes onto the claim we
/// hold, for the others to follow; a cancel of ours that failed lets the
/// claim go. Both are courtesies: a claim not told expires with its
/// window, and the others then read the target's own record.
async fn tell_the_claim<C: ClaimStore>(
    claims: &C,
    observed: &Observed,
    write: Option<&ClaimWrite>,
) {
    let Some(key) = claim_key(observed) else {
        return;
    };
    let told = match write {
        Some(ClaimWrite::Answer(answer)) => match observed.claim.as_ref() {
            Some(ours) if ours.claimant == observed.claimant => {
                claims.answer(&key, ours, answer).await
            }
            _ => Ok(()),
        },
        Some(ClaimWrite::Release) => claims.release(&key, &observed.claimant).await,
        Some(ClaimWrite::Acquire { .. }) | None => Ok(()),
    };
    if let Err(e) = told {
        tracing::debug!(error = %e, "the target's claim was not updated");
    }
}

/// When to look again; `None`: only on a change.
pub(crate) fn requeue_delay(requeue: Requeue, min: Duration, cap: Duration) -> Option<Duration> {
    match requeue {
        Requeue::Never => None,
        Requeue::After(d) => Some(d),
        Requeue::Backoff { errors, at_least } => {
            Some(backoff_delay(errors, min, cap).max(at_least))
        }
    }
}

/// Capped exponential backoff for the n-th error in a row, with equal
/// jitter (half fixed, half random), in closed form: O(1) whatever the
/// count, and never longer than `cap`.
fn backoff_delay(errors: u32, min: Duration, cap: Duration) -> Duration {
    let doublings = errors.saturating_sub(1).min(31);
    let full = min.saturating_mul(1 << doublings).min(cap);
    full / 2 + full.mul_f64(fastrand::f64()) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_older_than_our_last_write_is_behind_until_the_cache_shows_it() {
        let written = PerResource::default();
        let key = ObjectRef::<OfferCancellation>::new("r").within("ns");
        assert!(!behind(&written, &key, Some("7")), "nothing written yet");
        written.set(key.clone(), Some("9".to_string()));
        assert!(
            behind(&written, &key, Some("8")),
            "the copy predates our write"
        );
        assert!(behind(&written, &key, None));
        assert!(!behind(&written, &key, Some("9")), "the cache caught up");
        assert!(!behind(&written, &key, Some("8")), "forgotten once seen");
        written.set(key.clone(), Some("12".to_string()));
        written.retain(|_, _| false);
        assert!(
            !behind(&written, &key, Some("11")),
            "deleted resources are dropped"
        );
    }

    #[test]
    fn an_answer_is_written_again_only_onto_the_status_it_was_decided_from() {
        use crate::decide::Outcome;
        let intent = OfferCancellation::test().in_doubt();
        let status = intent.status.clone().unwrap_or_default();
        // Read back from the API server: whole seconds.
        let read_back: OfferCancellationStatus =
            serde_json::from_value(serde_json::to_value(&status).unwrap()).unwrap();
        assert!(status_unchanged(Some(&read_back), &status));
        let answered = intent
            .after([Outcome::Answered(
                crate::operation::CancelOutcome::Cancelled,
            )])
            .status
            .unwrap_or_default();
        assert!(!status_unchanged(Some(&answered), &status));
        assert!(!status_unchanged(None, &status), "gone, or wiped");
        assert!(status_unchanged(None, &OfferCancellationStatus::default()));
    }

    #[test]
    fn backoff_grows_is_capped_and_costs_nothing_for_huge_counts() {
        let (min, cap) = (Duration::from_secs(2), Duration::from_secs(60));
        let first = backoff_delay(1, min, cap);
        assert!(first >= min / 2 && first <= min, "{first:?}");
        for n in (1..40).chain([u32::MAX - 1, u32::MAX]) {
            let d = backoff_delay(n, min, cap);
            assert!(d <= cap, "n={n}: {d:?}");
        }
        assert!(backoff_delay(10, min, cap) >= cap / 2);
        let started = std::time::Instant::now();
        backoff_delay(4_000_000_000, min, cap);
        assert!(started.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn retry_after_wins_over_a_shorter_backoff() {
        let d = requeue_delay(
            Requeue::Backoff {
                errors: 1,
                at_least: Duration::from_secs(45),
            },
            Duration::from_secs(2),
            Duration::from_secs(300),
        );
        assert_eq!(d, Some(Duration::from_secs(45)));
        let never = requeue_delay(
            Requeue::Never,
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert_eq!(never, None);
    }
}
