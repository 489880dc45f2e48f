use super::conditions::MAX_EVENT_NOTE;
use super::settle::settle;
use super::target::{describe, target};
use super::*;
use crate::claim::{self, Claim, ClaimAnswer, ClaimWrite, Claimant};
use crate::crd::{OfferCancellation, Phase};
use crate::fixtures::at;
use crate::operation::{CancelOutcome, Operation, PolledOperation};
use crate::timing::{CREDENTIALS_RETRY, IN_FLIGHT_MARGIN};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

/// When an intent recorded at the clock's zero can no longer have a POST
/// in flight: its budget and the margin are over.
fn past_the_window() -> Timestamp {
    let budget = fresh().post_budget + IN_FLIGHT_MARGIN;
    at(budget.as_secs() as i64)
}

/// A fresh resource as the decision sees it, at the pinned clock's zero.
fn fresh() -> Observed {
    OfferCancellation::test().observed()
}

/// Accepted (202) with `location`, as the decision sees it.
fn polling(location: &str) -> Observed {
    OfferCancellation::test().polling(location).observed()
}

fn polled(status: &str, state: OperationState) -> Outcome {
    Outcome::Polled(PolledOperation {
        operation: Operation {
            status: status.into(),
            detail: "boom".into(),
            ..Operation::default()
        },
        state,
        location: None,
        retry_after: None,
    })
}

#[test]
fn only_a_cancelled_resource_is_decided_without_its_secret() {
    let done = OfferCancellation::test().cancelled();
    assert!(!done.observed().needs_credentials());
    let mut unread = done.observed();
    unread.credentials_version = None;
    assert_eq!(unread.step(), Step::Idle);
    let mut edited = done.edited().observed();
    edited.credentials_version = None;
    assert_eq!(edited.step(), Step::Record(Outcome::Acknowledged));
    for other in [
        OfferCancellation::test(),
        OfferCancellation::test().in_doubt(),
        OfferCancellation::test().polling("/op"),
        OfferCancellation::test().refused(403),
    ] {
        assert!(other.observed().needs_credentials(), "{:?}", other.status);
    }
}

#[test]
fn fresh_resource_sends_the_cancel() {
    assert_eq!(fresh().step(), Step::Call(Call::ReadTarget));
}

#[test]
fn invalid_spec_fails_without_any_call() {
    let mut w = fresh();
    w.spec.offer_id = Some("a/../b".into());
    let Step::Record(outcome) = w.step() else {
        panic!("expected a record step");
    };
    let t = w.apply(outcome);
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(
        w.condition(condition::STALLED),
        ("True".into(), reason::INVALID_SPEC.into())
    );
    assert_eq!(w.step(), Step::Idle);
}

#[test]
fn intent_is_recorded_before_the_post() {
    let mut w = fresh();
    let t = w.apply(crate::fixtures::intent());
    assert_eq!(t.status.phase, Some(Phase::Pending));
    assert_eq!(t.status.requested_at, Some(Time(at(0))));
    assert_eq!(t.status.attempts, 1);
    assert_eq!(t.status.credentials_version.as_deref(), Some("100"));
    assert_eq!(t.notice.unwrap().reason, reason::CANCEL_REQUESTED);
    assert_eq!(w.condition(condition::RECONCILING).0, "True");
}

#[test]
fn synchronous_200_is_cancelled_and_ready() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    w.now = at(1);
    let t = w.apply(Outcome::Answered(CancelOutcome::Cancelled));
    assert_eq!(t.status.phase, Some(Phase::Cancelled));
    assert_eq!(t.status.http_status, Some(200));
    assert_eq!(t.status.completed_at, Some(Time(at(1))));
    assert_eq!(t.requeue, Requeue::Never);
    assert_eq!(
        w.condition(condition::READY),
        ("True".into(), reason::CANCELLED.into())
    );
    assert_eq!(w.condition(condition::RECONCILING).0, "False");
    assert_eq!(w.condition(condition::STALLED).0, "False");
    assert_eq!(w.step(), Step::Idle);
}

#[test]
fn accepted_202_polls_after_the_larger_of_interval_and_retry_after() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    let t = w.apply(Outcome::Answered(CancelOutcome::Accepted {
        http: 202,
        location: Some("/api/operations/a$b$2$preview?api-version=2017-10-31".into()),
        retry_after: Some(Duration::from_secs(90)),
    }));
    assert_eq!(t.status.phase, Some(Phase::Cancelling));
    assert_eq!(t.status.http_status, Some(202));
    assert_eq!(t.requeue, Requeue::After(Duration::from_secs(90)));
    assert_eq!(t.notice.unwrap().reason, reason::CANCEL_ACCEPTED);
    assert_eq!(
        w.step(),
        Step::Call(Call::Poll {
            location: "/api/operations/a$b$2$preview?api-version=2017-10-31".into()
        })
    );
    let short = transition(
        &w,
        Outcome::Answered(CancelOutcome::Accepted {
            http: 202,
            location: Some("/x".into()),
            retry_after: Some(Duration::from_secs(2)),
        }),
    );
    assert_eq!(short.requeue, Requeue::After(Duration::from_secs(30)));
}

#[test]
fn a_poll_that_learns_nothing_new_changes_nothing() {
    let mut w = polling("/op");
    w.apply(polled("running", OperationState::InProgress));
    let before = w.status.clone();
    w.now = at(300);
    let t = w.apply(polled("running", OperationState::InProgress));
    assert_eq!(
        t.status, before,
        "an unchanged poll must not rewrite status"
    );
    assert_eq!(t.notice, None);
    assert_eq!(t.requeue, Requeue::After(Duration::from_secs(30)));
}

#[test]
fn an_in_progress_poll_writes_nothing_even_when_its_wording_changes() {
    let mut w = polling("/op");
    let accepted = w.status.clone();
    w.apply(polled("notStarted", OperationState::InProgress));
    w.now = at(60);
    let t = w.apply(polled("running", OperationState::InProgress));
    assert_eq!(t.status, accepted, "intent, accepted, ended: three writes");
    let moved = w.apply(Outcome::Polled(PolledOperation {
        operation: Operation {
            status: "running".into(),
            ..Operation::default()
        },
        state: OperationState::InProgress,
        location: Some("/op/2".into()),
        retry_after: None,
    }));
    assert_eq!(moved.status.operation_location.as_deref(), Some("/op/2"));
}

#[test]
fn poll_done_is_cancelled_and_failed_is_failed_with_details() {
    let mut w = polling("/op");
    let t = w.apply(polled("completed", OperationState::Done));
    assert_eq!(t.status.phase, Some(Phase::Cancelled));
    assert_eq!(t.status.operation_status.as_deref(), Some("completed"));

    let mut w = polling("/op");
    let t = w.apply(polled("failed", OperationState::Failed));
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert!(t.status.message.unwrap().contains("boom"));
    assert_eq!(
        w.condition(condition::STALLED),
        ("True".into(), reason::OPERATION_FAILED.into())
    );
}

#[test]
fn a_new_location_from_a_poll_replaces_the_old_one() {
    let mut w = polling("/old");
    w.apply(Outcome::Polled(PolledOperation {
        operation: Operation {
            status: "running".into(),
            ..Operation::default()
        },
        state: OperationState::InProgress,
        location: Some("/new".into()),
        retry_after: None,
    }));
    assert_eq!(
        w.step(),
        Step::Call(Call::Poll {
            location: "/new".into()
        })
    );
}

#[test]
fn forbidden_is_terminal_and_never_reposted() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    let t = w.apply(Outcome::Rejected {
        reason: reason_for_status(403),
        message: "CPP cancel call answered HTTP 403".into(),
        cancel_status: Some(403),
    });
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(t.status.http_status, Some(403));
    assert_eq!(t.requeue, Requeue::Never);
    assert_eq!(
        w.condition(condition::STALLED),
        ("True".into(), reason::FORBIDDEN.into())
    );
    // Resyncs, requeues and restarts all see the same status.
    for secs in [30, 3600, 86_400] {
        w.now = at(secs);
        assert_eq!(w.step(), Step::Idle);
    }
}

/// A re-armed Failed resource whose last answer ruled out an accepted
/// cancel: it starts over (one write, nothing sent), then is a first
/// cancel that reads the list.
fn restarts_as_a_first_cancel(w: &mut Observed) {
    assert_eq!(w.step(), Step::Record(Outcome::Restarted));
    let t = w.apply(Outcome::Restarted);
    assert!(!t.post);
    assert_eq!(t.status.phase, Some(Phase::Pending));
    assert_eq!(t.status.requested_at, None);
    assert_eq!(
        w.condition(condition::RECONCILING),
        ("True".into(), reason::RETRYING.into())
    );
    assert_eq!(w.step(), Step::Call(Call::ReadTarget));
}

#[test]
fn failed_retries_on_new_annotation_value_once() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    w.apply(Outcome::Rejected {
        reason: reason::NOT_FOUND,
        message: "404".into(),
        cancel_status: Some(404),
    });
    w.retry_request = Some("1".into());
    restarts_as_a_first_cancel(&mut w);
    let t = w.apply(crate::fixtures::intent());
    assert_eq!(t.status.attempts, 2);
    assert_eq!(t.status.http_status, None);
    w.apply(Outcome::Rejected {
        reason: reason::NOT_FOUND,
        message: "404".into(),
        cancel_status: Some(404),
    });
    assert_eq!(
        w.step(),
        Step::Idle,
        "the same annotation value asks for one attempt"
    );
}

#[test]
fn a_refused_credential_retries_when_the_secret_changes_not_when_the_spec_does() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    w.apply(Outcome::Rejected {
        reason: reason::UNAUTHORIZED,
        message: "401".into(),
        cancel_status: Some(401),
    });
    assert_eq!(w.step(), Step::Idle);
    let mut rotated = w.clone();
    rotated.credentials_version = Some("101".into());
    restarts_as_a_first_cancel(&mut rotated);
    w.generation = 2;
    assert_eq!(
        w.step(),
        Step::Record(Outcome::Acknowledged),
        "an edit that does not answer the failure only records its generation"
    );
}

#[test]
fn a_kept_nothing_to_cancel_is_not_rearmed_by_its_secret_or_an_unrelated_edit() {
    let mut w = fresh();
    w.apply(Outcome::Targeted(Targeting::NothingToCancel(None)));
    assert_eq!(w.condition(condition::STALLED).1, reason::NOTHING_TO_CANCEL);
    w.now = at(86_400 * 21);
    w.credentials_version = Some("a label moved it".into());
    assert_eq!(w.step(), Step::Idle);
    w.spec.notification_emails = vec!["jondoe@contoso.com".into()];
    w.generation = 2;
    assert_eq!(w.step(), Step::Record(Outcome::Acknowledged));
    w.apply(Outcome::Acknowledged);
    assert_eq!(w.step(), Step::Idle);
    w.retry_request = Some("1".into());
    restarts_as_a_first_cancel(&mut w);
}

#[test]
fn cancelled_is_never_sent_again_even_on_edits_or_retry_annotation() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    w.apply(Outcome::Answered(CancelOutcome::Cancelled));
    w.retry_request = Some("again".into());
    w.credentials_version = Some("999".into());
    assert_eq!(w.step(), Step::Idle);
    w.generation = 2;
    assert_eq!(w.step(), Step::Record(Outcome::Acknowledged));
    let t = w.apply(Outcome::Acknowledged);
    assert_eq!(t.status.observed_generation, Some(2));
    assert!(
        t.status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(2))
    );
    assert_eq!(t.status.phase, Some(Phase::Cancelled));
    assert_eq!(w.step(), Step::Idle);
}

#[test]
fn crash_after_intent_settles_from_the_list_before_anything_else() {
    let mut w = fresh();
    let intent = w.apply(crate::fixtures::intent());
    assert!(intent.post, "the POST follows the durable intent");
    // The controller restarts here: only the status survives. Once the
    // POST can no longer be in flight, the list settles it.
    w.now = past_the_window();
    assert_eq!(w.step(), Step::Call(Call::Settle));
    let t = w.apply(Outcome::Settled(Settlement::Follow {
        location: "/api/publishers/contoso/offers/contoso-offer/operations/1".into(),
    }));
    assert!(!t.post);
    assert_eq!(w.status.phase, Some(Phase::Cancelling));
    assert!(matches!(w.step(), Step::Call(Call::Poll { .. })));
}

fn listed(kind: &str, status: &str, created: Option<i64>) -> Operation {
    Operation {
        id: Some(format!("{kind}-{status}")),
        kind: Some(kind.into()),
        status: status.into(),
        created: created.map(at),
        ..Operation::default()
    }
}

fn settle_at_zero(ops: &[Operation]) -> Settlement {
    settle(ops, Some(at(0)), None, |id| format!("/ops/{id}"))
}

#[test]
fn settle_adopts_a_cancel_created_since_the_intent_whatever_its_state() {
    let running = [
        listed("publish", "running", Some(-600)),
        listed("cancel", "notStarted", Some(1)),
    ];
    assert_eq!(
        settle_at_zero(&running),
        Settlement::Follow {
            location: "/ops/cancel-notStarted".into()
        }
    );
    let done = [
        listed("publish", "canceled", Some(-600)),
        listed("cancel", "completed", Some(1)),
    ];
    assert!(matches!(
        settle_at_zero(&done),
        Settlement::Ended(op) if op.state() == OperationState::Done
    ));
    let failed = [listed("cancel", "failed", Some(1))];
    assert!(matches!(
        settle_at_zero(&failed),
        Settlement::Ended(op) if op.state() == OperationState::Failed
    ));
}

#[test]
fn settle_ignores_an_older_finished_cancel_and_reads_what_is_in_progress() {
    let old_cancel = listed("cancel", "completed", Some(-3600));
    let still = [
        old_cancel.clone(),
        listed("publish", "Not Started", Some(-600)),
    ];
    assert!(matches!(
        settle_at_zero(&still),
        Settlement::EarlierTargetRunning(op) if op.id == "publish-Not Started"
    ));
    let idle = [old_cancel, listed("publish", "canceled", Some(-600))];
    assert_eq!(
        settle_at_zero(&idle),
        Settlement::TargetCancelled {
            operation: describe(&idle[1])
        }
    );
    assert_eq!(
        settle_at_zero(&[]),
        Settlement::NothingInProgress { latest: None }
    );
}

/// What a release before the guards (1d17ef8) wrote when it recorded its
/// intent at [`crate::fixtures::T0`]: no `postDeadline`, no
/// `targetOperation`, no `startedAt`, no `target`.
const INTENT_BEFORE_THE_GUARDS: &str = r#"{
  "phase": "Pending",
  "conditions": [
    {"type": "Ready", "status": "False", "reason": "CancelRequested",
     "message": "sending the cancel request to CPP", "observedGeneration": 1,
     "lastTransitionTime": "2026-11-25T10:00:00Z"},
    {"type": "Reconciling", "status": "True", "reason": "CancelRequested",
     "message": "sending the cancel request to CPP", "observedGeneration": 1,
     "lastTransitionTime": "2026-11-25T10:00:00Z"},
    {"type": "Stalled", "status": "False", "reason": "CancelRequested",
     "message": "sending the cancel request to CPP", "observedGeneration": 1,
     "lastTransitionTime": "2026-11-25T10:00:00Z"}
  ],
  "observedGeneration": 1,
  "message": "sending the cancel request to CPP",
  "requestedAt": "2026-11-25T10:00:00Z",
  "attempts": 1,
  "credentialsVersion": "100"
}"#;

/// What 0.1.0 (c44befc) wrote when it recorded its intent at T0.
const INTENT_OF_0_1_0: &str = r#"{
  "phase": "Pending",
  "target": "contoso/contoso-offer",
  "conditions": [
    {"type": "Ready", "status": "False", "reason": "CancelRequested",
     "message": "sending the cancel request to CPP", "observedGeneration": 1,
     "lastTransitionTime": "2026-11-25T10:00:00Z"},
    {"type": "Reconciling", "status": "True", "reason": "CancelRequested",
     "message": "sending the cancel request to CPP", "observedGeneration": 1,
     "lastTransitionTime": "2026-11-25T10:00:00Z"},
    {"type": "Stalled", "status": "False", "reason": "CancelRequested",
     "message": "sending the cancel request to CPP", "observedGeneration": 1,
     "lastTransitionTime": "2026-11-25T10:00:00Z"}
  ],
  "observedGeneration": 1,
  "message": "sending the cancel request to CPP",
  "requestedAt": "2026-11-25T10:00:00Z",
  "targetOperation": {"id": "publish-1", "type": "publish", "created": "2026-11-25T09:55:00Z"},
  "startedAt": "2026-11-25T10:00:00Z",
  "postDeadline": "2026-11-25T10:00:30Z",
  "attempts": 1,
  "credentialsVersion": "100"
}"#;

fn written_by_an_earlier_release(status: &str) -> Observed {
    let mut w = fresh();
    w.status = serde_json::from_str(status).expect("a status an earlier release wrote");
    w
}

#[test]
fn an_intent_from_before_the_guards_is_waited_for_as_long_as_its_post_could_take() {
    let mut w = written_by_an_earlier_release(INTENT_BEFORE_THE_GUARDS);
    for secs in [0, 31, 300, 609] {
        w.now = at(secs);
        assert!(
            matches!(w.step(), Step::Wait(_)),
            "at {secs}s: {:?}",
            w.step()
        );
        assert!(!w.needs_claim());
    }
    w.now = at(610);
    assert_eq!(w.step(), Step::Call(Call::Settle));
}

#[test]
fn an_intent_of_0_1_0_is_waited_for_until_its_post_deadline() {
    let mut w = written_by_an_earlier_release(INTENT_OF_0_1_0);
    w.now = at(39);
    assert!(matches!(w.step(), Step::Wait(_)));
    w.now = at(40);
    assert_eq!(w.step(), Step::Call(Call::Settle));
    let t = w.apply(Outcome::Settled(settle(
        &[listed("publish", "canceled", Some(-300))],
        Some(at(0)),
        Some("publish-canceled"),
        |id| format!("/ops/{id}"),
    )));
    assert_eq!(t.status.phase, Some(Phase::Cancelled));
}

#[test]
fn an_intent_from_before_the_guards_never_takes_a_publish_started_since() {
    let mut old_publish = listed("publish", "canceled", Some(-300));
    old_publish.id = Some("publish-old".into());
    let new_publish = listed("publish", "running", Some(3600));
    let ops = [old_publish.clone(), new_publish];
    let mut w = written_by_an_earlier_release(INTENT_BEFORE_THE_GUARDS);
    w.now = at(7200);
    let found = settle(&ops, Some(at(0)), None, |id| format!("/ops/{id}"));
    let t = w.apply(Outcome::Settled(found));
    assert!(!t.post, "nothing is sent: {:?}", t.status);
    assert_eq!(t.status.phase, Some(Phase::Cancelled));
    assert!(t.status.message.unwrap().contains("publish-old"));

    old_publish.status = "succeeded".into();
    let ops = [old_publish, listed("publish", "running", Some(3600))];
    let mut w = written_by_an_earlier_release(INTENT_BEFORE_THE_GUARDS);
    w.now = at(7200);
    let found = settle(&ops, Some(at(0)), None, |id| format!("/ops/{id}"));
    let t = w.apply(Outcome::Settled(found));
    assert!(!t.post, "the newer publish is never cancelled");
    assert_eq!(w.condition(condition::STALLED).1, reason::OPERATION_ENDED);
}

#[test]
fn an_intent_from_before_the_guards_is_resent_only_for_its_own_publish_and_records_it() {
    let ops = [listed("publish", "running", Some(-300))];
    let mut w = written_by_an_earlier_release(INTENT_BEFORE_THE_GUARDS);
    w.now = at(700);
    let found = settle(&ops, Some(at(0)), None, |id| format!("/ops/{id}"));
    let t = w.apply(Outcome::Settled(found));
    assert!(t.post, "its own publish still runs: {:?}", t.status);
    assert_eq!(
        t.status.target_operation.map(|op| op.id),
        Some("publish-running".into())
    );
    assert_eq!(w.condition(condition::RECONCILING).1, reason::CANCEL_RESENT);
}

/// An earlier release's intent (no target), and the list shows nothing in
/// progress, the latest operation as `latest` says.
fn nothing_left(latest: Option<Operation>) -> Outcome {
    Outcome::Settled(Settlement::NothingInProgress { latest })
}

#[test]
fn a_lost_answer_with_nothing_in_progress_is_cancelled_only_when_the_list_shows_it() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    let mut idle = w.clone();
    let t = w.apply(nothing_left(Some(listed("publish", "canceled", None))));
    assert_eq!(t.status.phase, Some(Phase::Cancelled));
    assert_eq!(
        w.condition(condition::READY),
        ("True".into(), reason::NOTHING_IN_PROGRESS.into())
    );
    assert!(t.status.message.unwrap().contains("lost"));
    assert_eq!(w.step(), Step::Idle);
    let t = idle.apply(nothing_left(Some(listed("publish", "succeeded", None))));
    assert_eq!(
        t.status.phase,
        Some(Phase::Failed),
        "nothing shows a cancel"
    );
    assert_eq!(
        idle.condition(condition::STALLED).1,
        reason::NOTHING_TO_CANCEL
    );
}

#[test]
fn resend_after_in_doubt_keeps_the_first_request_time_and_a_404_reads_the_list_again() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    w.now = at(50);
    let t = w.apply(Outcome::Settled(Settlement::TargetRunning));
    assert!(t.post, "the operation still runs: the cancel goes again");
    assert_eq!(t.status.requested_at, Some(Time(at(0))));
    assert_eq!(t.status.attempts, 2);
    let unread = w.clone().apply(not_found_with(ListAfterNotFound::Unread));
    assert_eq!(unread.status.phase, Some(Phase::Failed), "nothing shows it");
    let t = w.apply(not_found_with(ListAfterNotFound::Shows {
        settlement: Some(Settlement::TargetCancelled {
            operation: "publish publish-1 (canceled)".into(),
        }),
        latest: None,
    }));
    assert_eq!(t.status.phase, Some(Phase::Cancelled));
    assert_eq!(
        w.condition(condition::READY),
        ("True".into(), reason::NOTHING_IN_PROGRESS.into())
    );
}

#[test]
fn a_404_to_a_first_answered_post_stays_failed_not_found() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    let t = w.apply(Outcome::Rejected {
        reason: reason::NOT_FOUND,
        message: "CPP cancel call answered HTTP 404".into(),
        cancel_status: Some(404),
    });
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(
        w.condition(condition::STALLED),
        ("True".into(), reason::NOT_FOUND.into())
    );
}

#[test]
fn retry_after_an_accepted_cancel_resumes_the_recorded_location_without_a_post() {
    let mut w = polling("/op/1");
    w.apply(Outcome::Rejected {
        reason: reason::UNAUTHORIZED,
        message: "CPP operation call answered HTTP 401".into(),
        cancel_status: None,
    });
    assert_eq!(w.status.phase, Some(Phase::Failed));
    w.credentials_version = Some("rotated".into());
    assert_eq!(w.step(), Step::Record(Outcome::Resumed));
    let t = w.apply(Outcome::Resumed);
    assert!(!t.post);
    assert_eq!(t.status.phase, Some(Phase::Cancelling));
    assert_eq!(
        w.step(),
        Step::Call(Call::Poll {
            location: "/op/1".into()
        })
    );
}

#[test]
fn retry_after_an_unanswered_post_settles_from_the_list() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    w.apply(Outcome::Rejected {
        reason: reason::FORBIDDEN,
        message: "CPP submissions call answered HTTP 403".into(),
        cancel_status: None,
    });
    w.retry_request = Some("1".into());
    w.now = past_the_window();
    assert_eq!(w.step(), Step::Record(Outcome::Resumed));
    w.apply(Outcome::Resumed);
    assert_eq!(w.step(), Step::Call(Call::Settle));
}

#[test]
fn retry_after_the_cancel_operation_itself_failed_posts_anew() {
    let mut w = polling("/op/1");
    w.apply(polled("failed", OperationState::Failed));
    w.retry_request = Some("1".into());
    restarts_as_a_first_cancel(&mut w);
    assert_eq!(
        w.status.operation_location, None,
        "the failed cancel is not polled"
    );
}

#[test]
fn restart_mid_poll_resumes_polling_the_recorded_location() {
    let w = polling("/api/operations/x");
    assert_eq!(
        w.step(),
        Step::Call(Call::Poll {
            location: "/api/operations/x".into()
        })
    );
}

#[test]
fn accepted_without_location_looks_it_up_and_fails_clearly_if_absent() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    w.apply(Outcome::Answered(CancelOutcome::Accepted {
        http: 202,
        location: None,
        retry_after: None,
    }));
    assert_eq!(w.status.phase, Some(Phase::Cancelling));
    assert_eq!(w.step(), Step::Call(Call::Settle));
    let t = w.apply(Outcome::Settled(Settlement::TargetRunning));
    assert!(!t.post, "accepted once: never POSTed again");
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(
        w.condition(condition::STALLED),
        ("True".into(), reason::LOCATION_UNAVAILABLE.into())
    );
}

#[test]
fn transient_errors_back_off_and_notify_once_per_streak() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    let first = w.apply(Outcome::Transient {
        message: "CPP cancel call answered HTTP 503".into(),
        retry_after: Some(Duration::from_secs(4)),
    });
    assert_eq!(first.status.phase, Some(Phase::Pending));
    assert_eq!(
        first.requeue,
        Requeue::Backoff {
            errors: 1,
            at_least: Duration::from_secs(4)
        }
    );
    assert_eq!(first.notice.unwrap().reason, reason::TRANSIENT_ERROR);
    assert_eq!(
        w.condition(condition::READY),
        ("False".into(), reason::TRANSIENT_ERROR.into())
    );
    assert_eq!(w.condition(condition::RECONCILING).0, "True");
    let second = w.apply(Outcome::Transient {
        message: "CPP cancel call answered HTTP 503".into(),
        retry_after: None,
    });
    assert_eq!(second.status, first.status, "a streak writes status once");
    assert_eq!(second.notice, None);
    assert_eq!(second.requeue.errors_in_row(), 2);
    // After a transient error the POST is in doubt: look before resending,
    // once it can no longer be in flight.
    assert!(matches!(w.step(), Step::Wait(_)));
    w.now = past_the_window();
    assert_eq!(w.step(), Step::Call(Call::Settle));
}

#[test]
fn transient_error_while_polling_keeps_polling() {
    let mut w = polling("/op");
    w.apply(Outcome::Transient {
        message: "timed out".into(),
        retry_after: None,
    });
    assert_eq!(w.status.phase, Some(Phase::Cancelling));
    assert_eq!(
        w.step(),
        Step::Call(Call::Poll {
            location: "/op".into()
        })
    );
    w.apply(polled("running", OperationState::InProgress));
    assert_eq!(w.errors_in_row, 0, "an answer ends the streak");
}

#[test]
fn missing_credentials_stall_without_sending_and_recover() {
    let mut w = fresh();
    let t = w.apply(Outcome::CredentialsUnavailable(
        "Secret cpp not found".into(),
    ));
    assert_eq!(t.status.phase, Some(Phase::Pending));
    assert_eq!(t.requeue, Requeue::After(CREDENTIALS_RETRY));
    assert_eq!(
        w.condition(condition::STALLED),
        ("True".into(), reason::CREDENTIALS_UNAVAILABLE.into())
    );
    assert_eq!(w.step(), Step::Call(Call::ReadTarget), "still nothing sent");
}

#[test]
fn timeout_fails_polling_at_the_deadline() {
    let mut w = OfferCancellation::test()
        .with_timeout(100)
        .polling("/op")
        .observed();
    w.now = at(80);
    let t = w.apply(polled("running", OperationState::InProgress));
    assert_eq!(
        t.requeue,
        Requeue::After(Duration::from_secs(20)),
        "wake at the deadline"
    );
    w.now = at(100);
    assert_eq!(w.step(), Step::Record(Outcome::TimedOut));
    let t = w.apply(Outcome::TimedOut);
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(
        w.condition(condition::STALLED),
        ("True".into(), reason::TIMEOUT.into())
    );
}

#[test]
fn observed_generation_is_set_on_status_and_every_condition() {
    let mut w = fresh();
    w.generation = 7;
    let t = w.apply(crate::fixtures::intent());
    assert_eq!(t.status.observed_generation, Some(7));
    assert_eq!(t.status.conditions.len(), 3);
    assert!(
        t.status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(7))
    );
}

#[test]
fn messages_carry_nothing_volatile() {
    let mut a = fresh();
    let mut b = fresh();
    b.now = at(12_345);
    a.apply(crate::fixtures::intent());
    b.apply(crate::fixtures::intent());
    assert_eq!(a.status.message, b.status.message);
    let ta = a.apply(polled("failed", OperationState::Failed));
    let tb = b.apply(polled("failed", OperationState::Failed));
    assert_eq!(ta.notice, tb.notice);
}

#[test]
fn status_reasons_cover_terminal_http_codes() {
    assert_eq!(reason_for_status(400), reason::BAD_REQUEST);
    assert_eq!(reason_for_status(401), reason::UNAUTHORIZED);
    assert_eq!(reason_for_status(403), reason::FORBIDDEN);
    assert_eq!(reason_for_status(404), reason::NOT_FOUND);
    assert_eq!(reason_for_status(418), reason::REJECTED);
}

#[test]
fn long_messages_fit_status_and_event_limits() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    let verbose = format!("CPP cancel call answered HTTP 400 ({})", "é".repeat(2000));
    let t = w.apply(Outcome::Rejected {
        reason: reason::BAD_REQUEST,
        message: verbose,
        cancel_status: Some(400),
    });
    assert!(t.status.message.as_ref().unwrap().len() <= crate::crd::MAX_MESSAGE_LEN);
    assert!(
        t.status
            .conditions
            .iter()
            .all(|c| c.message.len() <= crate::crd::MAX_MESSAGE_LEN)
    );
    assert!(t.notice.unwrap().note.len() <= MAX_EVENT_NOTE);
    assert!(serde_json::to_vec(&t.status).unwrap().len() < 16 * 1024);
}

#[test]
fn retry_after_a_failed_cancel_found_in_the_list_posts_anew() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    let t = w.apply(Outcome::Settled(Settlement::Ended(Operation {
        status: "failed".into(),
        detail: "could not stop".into(),
        ..listed("cancel", "failed", Some(1))
    })));
    assert_eq!(t.status.phase, Some(Phase::Failed));
    w.retry_request = Some("1".into());
    // No endless resume of a failed cancel: it starts over.
    restarts_as_a_first_cancel(&mut w);
}

#[test]
fn an_intent_records_until_when_its_post_may_be_in_flight() {
    let mut w = fresh();
    w.post_budget = Duration::from_secs(7);
    let t = w.apply(crate::fixtures::intent());
    assert_eq!(t.status.post_deadline, Some(Time(at(7))));
    assert_eq!(t.status.started_at, Some(Time(at(0))));
}

#[test]
fn a_young_intent_is_waited_for_and_never_acted_on() {
    let mut w = OfferCancellation::test().in_doubt().observed();
    let window = w.post_budget + IN_FLIGHT_MARGIN;
    let end = window.as_secs() as i64;
    // Another writer (or a restart) finds the intent one second before
    // the POST could no longer be in flight: wait that second, send nothing.
    w.now = at(end - 1);
    assert_eq!(w.step(), Step::Wait(Duration::from_secs(1)));
    w.now = at(1);
    assert_eq!(w.step(), Step::Wait(window - Duration::from_secs(1)));
    w.now = at(end);
    assert_eq!(w.step(), Step::Call(Call::Settle));
}

#[test]
fn an_intent_without_post_deadline_is_waited_for_the_earlier_releases_window() {
    let mut w = OfferCancellation::test().in_doubt().observed();
    w.status.post_deadline = None;
    assert!(
        matches!(w.step(), Step::Wait(_)),
        "its POST may be in flight"
    );
    w.now = at(609);
    assert!(matches!(w.step(), Step::Wait(_)));
    w.now = at(610);
    assert_eq!(w.step(), Step::Call(Call::Settle));
}

#[test]
fn a_young_intent_is_waited_for_even_past_the_timeout() {
    let mut w = OfferCancellation::test()
        .with_timeout(5)
        .in_doubt()
        .observed();
    w.now = at(6);
    assert!(matches!(w.step(), Step::Wait(_)));
}

/// A cancel in doubt whose timeout ran out: the list is asked first.
fn timed_out_in_doubt() -> Observed {
    let mut w = OfferCancellation::test()
        .with_timeout(5)
        .in_doubt()
        .observed();
    w.now = past_the_window();
    assert_eq!(w.step(), Step::Call(Call::Settle), "CPP is asked first");
    w
}

#[test]
fn a_timeout_in_doubt_is_cancelled_when_cpp_shows_the_cancel_done() {
    let mut w = timed_out_in_doubt();
    w.apply(Outcome::Settled(Settlement::Ended(listed(
        "cancel",
        "completed",
        Some(1),
    ))));
    assert_eq!(w.status.phase, Some(Phase::Cancelled));
    let mut w = timed_out_in_doubt();
    w.apply(nothing_left(Some(listed("publish", "canceled", None))));
    assert_eq!(
        w.condition(condition::READY),
        ("True".into(), reason::NOTHING_IN_PROGRESS.into())
    );
}

#[test]
fn a_timeout_in_doubt_never_resends_and_fails_with_timeout() {
    let mut w = timed_out_in_doubt();
    let t = w.apply(Outcome::Settled(Settlement::TargetRunning));
    assert!(!t.post, "nothing is resent past the timeout");
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(w.condition(condition::STALLED).1, reason::TIMEOUT);
    assert_eq!(t.status.attempts, 1);
}

#[test]
fn a_timeout_in_doubt_keeps_a_running_cancel_for_the_retry_which_gets_a_fresh_deadline() {
    let mut w = timed_out_in_doubt();
    let t = w.apply(Outcome::Settled(Settlement::Follow {
        location: "/op/9".into(),
    }));
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(t.status.operation_location.as_deref(), Some("/op/9"));
    let retried_at = w.now;
    w.retry_request = Some("again".into());
    assert_eq!(w.step(), Step::Record(Outcome::Resumed));
    w.apply(Outcome::Resumed);
    assert_eq!(w.status.started_at, Some(Time(retried_at)));
    assert_eq!(
        w.step(),
        Step::Call(Call::Settle),
        "not timed out again at once"
    );
    w.apply(Outcome::Settled(Settlement::Follow {
        location: "/op/9".into(),
    }));
    assert_eq!(w.status.phase, Some(Phase::Cancelling));
    w.now = retried_at + jiff::SignedDuration::from_secs(5);
    assert_eq!(w.step(), Step::Record(Outcome::TimedOut));
}

fn target_of(ops: &[Operation], wanted: Option<&str>) -> Targeting {
    target(ops, wanted, |id| format!("/ops/{id}"))
}

/// A fresh resource after the operations list said `found`.
fn after_reading(found: Targeting) -> (Observed, Transition) {
    let mut w = fresh();
    assert_eq!(
        w.step(),
        Step::Call(Call::ReadTarget),
        "the list is read first"
    );
    let t = w.apply(Outcome::Targeted(found));
    (w, t)
}

#[test]
fn the_intent_records_the_operation_in_progress_and_only_then_posts() {
    let ops = [
        listed("publish", "succeeded", Some(-9000)),
        listed("goLive", "running", Some(-60)),
    ];
    let found = target_of(&ops, None);
    let Targeting::Send(recorded) = &found else {
        panic!("{found:?}");
    };
    assert_eq!(recorded.id, "goLive-running");
    assert_eq!(recorded.type_.as_deref(), Some("goLive"));
    let (w, t) = after_reading(found);
    assert!(t.post);
    assert_eq!(
        w.status.target_operation.as_ref().map(|t| t.id.as_str()),
        Some("goLive-running")
    );
}

#[test]
fn an_operation_id_that_has_ended_sends_nothing_and_says_how_it_ended() {
    let ops = [
        listed("publish", "canceled", Some(-9000)),
        listed("publish", "running", Some(-60)),
    ];
    let (w, t) = after_reading(target_of(&ops, Some("publish-canceled")));
    assert!(!t.post, "nothing is sent");
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(w.condition(condition::STALLED).1, reason::OPERATION_ENDED);
    let message = t.status.message.unwrap_or_default();
    assert!(
        message.contains("publish publish-canceled (canceled)"),
        "{message}"
    );
    assert!(message.contains("nothing was sent"), "{message}");
}

#[test]
fn an_operation_id_the_offer_does_not_list_sends_nothing() {
    let ops = [listed("publish", "running", Some(-60))];
    let (w, t) = after_reading(target_of(&ops, Some("7f3c")));
    assert!(!t.post);
    assert_eq!(
        w.condition(condition::STALLED).1,
        reason::OPERATION_NOT_FOUND
    );
}

#[test]
fn an_operation_id_in_progress_is_the_target_whatever_else_runs() {
    let ops = [
        listed("publish", "running", Some(-60)),
        listed("goLive", "notStarted", Some(-10)),
    ];
    let Targeting::Send(t) = target_of(&ops, Some("publish-running")) else {
        panic!("the named operation is in progress");
    };
    assert_eq!(t.id, "publish-running");
}

#[test]
fn nothing_in_progress_sends_nothing_and_names_the_latest_operation() {
    let ops = [
        listed("publish", "succeeded", Some(-9000)),
        listed("publish", "canceled", Some(-600)),
    ];
    let (w, t) = after_reading(target_of(&ops, None));
    assert!(!t.post);
    assert_eq!(w.condition(condition::STALLED).1, reason::NOTHING_TO_CANCEL);
    let message = t.status.message.unwrap_or_default();
    assert!(
        message.contains("latest publish publish-canceled (canceled)"),
        "{message}"
    );
}

#[test]
fn a_cancel_already_requested_for_the_offer_is_followed_and_shared() {
    let ops = [
        listed("publish", "running", Some(-60)),
        listed("cancel", "running", Some(-5)),
    ];
    let (mut w, t) = after_reading(target_of(&ops, None));
    assert!(!t.post, "one cancel per target");
    assert_eq!(t.status.phase, Some(Phase::Cancelling));
    assert!(t.status.shared_cancel);
    assert_eq!(
        t.status.operation_location.as_deref(),
        Some("/ops/cancel-running")
    );
    assert!(matches!(w.step(), Step::Call(Call::Poll { .. })));
    w.apply(polled("completed", OperationState::Done));
    assert_eq!(w.status.phase, Some(Phase::Cancelled));
    assert_eq!(
        w.condition(condition::READY),
        ("True".into(), reason::CANCEL_SHARED.into())
    );
    let message = w.status.message.clone().unwrap_or_default();
    assert!(
        message.contains("already requested for this offer"),
        "{message}"
    );
}

/// An intent for `publish-1` whose answer was lost, settled once the POST
/// can no longer be in flight.
fn lost_answer_for_publish_1() -> Observed {
    let mut w = OfferCancellation::test().in_doubt().observed();
    w.now = past_the_window();
    w
}

#[test]
fn a_resend_happens_only_while_the_recorded_operation_is_in_progress() {
    let w = lost_answer_for_publish_1();
    let target = w.status.target_operation.as_ref().map(|t| t.id.clone());
    let target = target.as_deref();
    assert_eq!(target, Some("publish-1"));
    let running = [listed("publish", "running", Some(-60))];
    let mut publish_1 = running[0].clone();
    publish_1.id = Some("publish-1".into());
    let locate = |id: &str| format!("/ops/{id}");
    assert_eq!(
        settle(&[publish_1.clone()], Some(at(0)), target, locate),
        Settlement::TargetRunning
    );
    // A publish started since (another id) is never the target: the
    // recorded one was cancelled, so nothing is resent.
    publish_1.status = "canceled".into();
    let newer = listed("publish", "running", Some(100));
    let cancelled = settle(&[publish_1.clone(), newer], Some(at(0)), target, locate);
    assert!(
        matches!(cancelled, Settlement::TargetCancelled { .. }),
        "{cancelled:?}"
    );
    publish_1.status = "succeeded".into();
    let ended = settle(&[publish_1], Some(at(0)), target, locate);
    assert!(matches!(ended, Settlement::TargetEnded { .. }), "{ended:?}");
    let mut w = w;
    let t = w.apply(Outcome::Settled(ended));
    assert!(!t.post);
    assert_eq!(w.condition(condition::STALLED).1, reason::OPERATION_ENDED);
}

fn not_after(w: &mut Observed, secs: i64) {
    w.spec.not_after = Some(Time(at(secs)));
}

#[test]
fn nothing_is_sent_past_not_after() {
    let mut w = fresh();
    not_after(&mut w, 10);
    w.now = at(9);
    assert_eq!(w.step(), Step::Call(Call::ReadTarget));
    w.now = at(10);
    assert_eq!(w.step(), Step::Record(Outcome::Expired));
    let t = w.apply(Outcome::Expired);
    assert!(!t.post);
    assert_eq!(w.condition(condition::STALLED).1, reason::EXPIRED);
    // A retry after it expires again, without a call.
    w.retry_request = Some("again".into());
    assert_eq!(w.step(), Step::Record(Outcome::Expired));
}

#[test]
fn a_lost_answer_past_not_after_is_never_resent() {
    let mut w = lost_answer_for_publish_1();
    not_after(&mut w, 5);
    let t = w.apply(Outcome::Settled(Settlement::TargetRunning));
    assert!(!t.post);
    assert_eq!(w.condition(condition::STALLED).1, reason::EXPIRED);
}

#[test]
fn a_cancel_accepted_before_not_after_is_followed_to_its_end() {
    let mut w = polling("/op");
    not_after(&mut w, 5);
    w.now = at(60);
    assert!(matches!(w.step(), Step::Call(Call::Poll { .. })));
}

fn not_found(offer_missing: bool, settlement: Option<Settlement>) -> Outcome {
    let list = match offer_missing {
        true => ListAfterNotFound::OfferMissing,
        false => ListAfterNotFound::Shows {
            settlement,
            latest: Some(listed("publish", "canceled", Some(-60))),
        },
    };
    not_found_with(list)
}

fn not_found_with(list: ListAfterNotFound) -> Outcome {
    Outcome::CancelNotFound(Box::new(NotFound {
        http: 404,
        message: "CPP cancel call answered HTTP 404".into(),
        list,
    }))
}

#[test]
fn a_404_whose_list_cannot_be_read_stands_as_not_found() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    let t = w.apply(not_found_with(ListAfterNotFound::Unread));
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(t.status.http_status, Some(404));
    assert_eq!(w.condition(condition::STALLED).1, reason::NOT_FOUND);
}

#[test]
fn a_rejected_404_is_never_taken_for_success_even_after_a_resend() {
    // Only CPP's 404 path (CancelNotFound) carries the lost-answer rule.
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    w.now = at(50);
    w.apply(Outcome::Settled(Settlement::TargetRunning));
    let t = w.apply(Outcome::Rejected {
        reason: reason::NOT_FOUND,
        message: "some 404".into(),
        cancel_status: Some(404),
    });
    assert_eq!(t.status.phase, Some(Phase::Failed));
}

#[test]
fn a_404_to_a_first_post_says_what_cpp_shows() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    let t = w.clone().apply(not_found(false, None));
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(t.status.http_status, Some(404));
    let message = t.status.message.clone().unwrap_or_default();
    assert!(
        message.contains("nothing in progress: latest publish publish-canceled (canceled)"),
        "{message}"
    );
    let mut missing = w.clone();
    missing.apply(not_found(true, None));
    assert_eq!(
        missing.condition(condition::STALLED).1,
        reason::OFFER_NOT_FOUND
    );
    let mut followed = w.clone();
    let t = followed.apply(not_found(
        false,
        Some(Settlement::Follow {
            location: "/ops/c".into(),
        }),
    ));
    assert_eq!(
        t.status.phase,
        Some(Phase::Cancelling),
        "a cancel since the intent is adopted"
    );
    let mut nothing = w.clone();
    nothing.apply(not_found(false, None));
    assert_eq!(
        nothing.condition(condition::STALLED).1,
        reason::NOTHING_TO_CANCEL
    );
}

/// Another resource's claim on the target, for `operation`, taken at the
/// clock's zero and in flight for the fixture's POST window.
fn peer_claim(operation: &str, answer: Option<ClaimAnswer>) -> Claim {
    Claim {
        claimant: Claimant {
            namespace: "elsewhere".into(),
            name: "peer".into(),
            uid: "uid-peer".into(),
        },
        operation: operation.into(),
        claimed_at: at(0),
        in_flight_until: past_the_window(),
        answer,
        answered_at: None,
        version: "41".into(),
    }
}

/// A fresh resource created at the clock's zero that finds `claim` on
/// its target, and has read the list.
fn fresh_with_claim(claim: Option<Claim>, found: Targeting) -> (Observed, Transition) {
    let mut w = fresh();
    w.created = Some(at(0));
    w.claim = claim;
    let t = w.apply(Outcome::Targeted(found));
    (w, t)
}

fn send_publish_1() -> Targeting {
    Targeting::Send(crate::fixtures::running_publish())
}

fn publish_2() -> crate::crd::TargetOperation {
    crate::crd::TargetOperation {
        id: "publish-2".into(),
        type_: Some("publish".into()),
        created: None,
    }
}

#[test]
fn the_target_is_claimed_before_the_intent_for_as_long_as_the_post_may_fly() {
    let (w, t) = fresh_with_claim(None, send_publish_1());
    assert!(t.post);
    let Some(ClaimWrite::Acquire { how, claim }) = t.claim else {
        panic!("no claim: {:?}", t.claim);
    };
    assert_eq!(how, claim::Acquire::Create);
    assert_eq!(claim.operation, "publish-1");
    assert_eq!(claim.claimant, w.claimant);
    let deadline = t.status.post_deadline.map(|d| d.0);
    assert_eq!(
        deadline.map(|d| d + jiff::SignedDuration::try_from(IN_FLIGHT_MARGIN).unwrap()),
        Some(claim.in_flight_until),
        "held until the intent's window ends"
    );
}

#[test]
fn another_resources_post_in_flight_is_waited_for_and_nothing_is_sent() {
    let (w, t) = fresh_with_claim(Some(peer_claim("publish-1", None)), send_publish_1());
    assert!(!t.post);
    assert_eq!(t.claim, None);
    assert_eq!(t.requeue, Requeue::After(Duration::from_secs(1)));
    assert_eq!(t.status.phase, Some(Phase::Pending));
    assert!(t.status.shared_cancel);
    assert_eq!(
        t.status.target_operation.as_ref().map(|o| o.id.as_str()),
        Some("publish-1")
    );
    assert_eq!(w.condition(condition::RECONCILING).1, reason::CANCEL_SHARED);
    let message = t.status.message.unwrap_or_default();
    assert!(
        !message.contains("elsewhere") && !message.contains("peer"),
        "{message}"
    );
    // Written once: waiting on writes nothing more.
    let again = w.clone().apply(Outcome::Targeted(send_publish_1()));
    assert_eq!(again.status, w.status);
    assert_eq!(again.notice, None);
}

#[test]
fn a_post_in_flight_is_waited_for_whatever_operation_it_cancels() {
    let (_, t) = fresh_with_claim(
        Some(peer_claim("publish-1", None)),
        Targeting::Send(publish_2()),
    );
    assert!(!t.post, "a CPP cancel stops whatever runs");
}

#[test]
fn an_unanswered_claim_past_its_window_is_taken_over_fenced_on_its_version() {
    let mut w = fresh();
    w.claim = Some(peer_claim("publish-1", None));
    w.now = past_the_window();
    w.round_started = w.now;
    let t = w.apply(Outcome::Targeted(send_publish_1()));
    assert!(
        t.post,
        "the list, read after the window, shows it still running"
    );
    assert!(matches!(
        t.claim,
        Some(ClaimWrite::Acquire { how: claim::Acquire::TakeOver { ref version }, .. }) if version == "41"
    ));
}

#[test]
fn another_resources_accepted_cancel_of_the_same_operation_is_followed() {
    let accepted = ClaimAnswer::Accepted {
        location: Some("/op/7".into()),
    };
    let (_, t) = fresh_with_claim(
        Some(peer_claim("publish-1", Some(accepted))),
        send_publish_1(),
    );
    assert!(!t.post);
    assert_eq!(t.status.phase, Some(Phase::Cancelling));
    assert_eq!(t.status.operation_location.as_deref(), Some("/op/7"));
    assert!(t.status.shared_cancel);
}

#[test]
fn an_accepted_cancel_the_list_no_longer_shows_running_binds_no_one_past_its_window() {
    // The claimant was deleted, or its cancel operation failed: CPP lists
    // the publish running and no cancel beside it.
    let accepted = ClaimAnswer::Accepted {
        location: Some("/op/7".into()),
    };
    let mut w = fresh();
    w.claim = Some(peer_claim("publish-1", Some(accepted)));
    w.now = past_the_window() + jiff::SignedDuration::from_secs(12);
    w.round_started = w.now;
    let t = w.apply(Outcome::Targeted(send_publish_1()));
    assert!(t.post, "the publish runs on, and nothing cancels it: send");
}

#[test]
fn a_follower_whose_followed_cancel_failed_sends_its_own() {
    let accepted = ClaimAnswer::Accepted {
        location: Some("/op/7".into()),
    };
    let claim = peer_claim("publish-1", Some(accepted));
    let (mut w, _) = fresh_with_claim(Some(claim), send_publish_1());
    assert_eq!(w.status.phase, Some(Phase::Cancelling), "following /op/7");
    let t = w.apply(polled("failed", OperationState::Failed));
    assert_eq!(
        t.status.phase,
        Some(Phase::Pending),
        "not Failed: nothing of its own failed"
    );
    assert_eq!(w.step(), Step::Call(Call::ReadTarget));
    let t = w.apply(Outcome::Targeted(send_publish_1()));
    assert!(t.post, "the claim's cancel is over: its own goes");
    assert!(matches!(
        t.claim,
        Some(ClaimWrite::Acquire {
            how: claim::Acquire::TakeOver { .. },
            ..
        })
    ));
}

#[test]
fn a_cancel_of_the_previous_publish_never_counts() {
    let previous = peer_claim("publish-1", Some(ClaimAnswer::Cancelled));
    let (_, t) = fresh_with_claim(Some(previous), Targeting::Send(publish_2()));
    assert!(t.post, "publish-2 is this resource's own to cancel");
    assert_eq!(t.status.target_operation, Some(publish_2()));
}

#[test]
fn a_follower_is_cancelled_only_once_the_list_shows_its_operation_cancelled() {
    let done = peer_claim("publish-1", Some(ClaimAnswer::Cancelled));
    let (mut w, t) = fresh_with_claim(Some(done), send_publish_1());
    assert!(!t.post);
    assert_eq!(
        t.status.phase,
        Some(Phase::Pending),
        "the list still showed it running"
    );
    assert_eq!(
        w.operation_named(),
        Some("publish-1"),
        "as if operationId named it"
    );
    assert_eq!(w.step(), Step::Call(Call::ReadTarget));
    let t = w.apply(Outcome::Targeted(Targeting::Ended(listed(
        "publish", "canceled", None,
    ))));
    assert_eq!(t.status.phase, Some(Phase::Cancelled));
    assert_eq!(
        w.condition(condition::READY),
        ("True".into(), reason::CANCEL_SHARED.into())
    );
}

#[test]
fn a_followed_operation_that_went_live_is_not_cancelled() {
    let (mut w, _) = fresh_with_claim(Some(peer_claim("publish-1", None)), send_publish_1());
    let mut live = listed("publish", "succeeded", None);
    live.id = Some("publish-1".into());
    w.apply(Outcome::Targeted(Targeting::Ended(live)));
    assert_eq!(w.status.phase, Some(Phase::Failed));
    assert_eq!(w.condition(condition::STALLED).1, reason::OPERATION_ENDED);
}

#[test]
fn nothing_in_progress_is_shared_only_with_a_cancel_claimed_around_this_resources_creation() {
    let cancelled = || {
        let mut op = listed("publish", "canceled", Some(-5));
        op.id = Some("publish-1".into());
        op
    };
    let done = peer_claim("publish-1", Some(ClaimAnswer::Cancelled));
    let (w, t) = fresh_with_claim(
        Some(done.clone()),
        Targeting::NothingToCancel(Some(cancelled())),
    );
    assert_eq!(t.status.phase, Some(Phase::Cancelled));
    assert_eq!(w.condition(condition::READY).1, reason::CANCEL_SHARED);
    // Created an hour after that cancel: someone else's errand.
    let mut late = fresh();
    late.created = Some(at(3600));
    late.now = at(3600);
    late.claim = Some(done);
    late.apply(Outcome::Targeted(Targeting::NothingToCancel(Some(
        cancelled(),
    ))));
    assert_eq!(
        late.condition(condition::STALLED).1,
        reason::NOTHING_TO_CANCEL
    );
    // No claim: nothing says it was for this resource.
    let (w, _) = fresh_with_claim(None, Targeting::NothingToCancel(Some(cancelled())));
    assert_eq!(w.condition(condition::STALLED).1, reason::NOTHING_TO_CANCEL);
}

#[test]
fn a_lost_answer_is_resent_only_while_the_claim_lets_us() {
    let mut ours = fresh();
    ours.apply(crate::fixtures::intent());
    ours.now = past_the_window();
    let mine = Claim {
        claimant: ours.claimant.clone(),
        ..peer_claim("publish-1", None)
    };
    ours.claim = Some(mine);
    let t = ours
        .clone()
        .apply(Outcome::Settled(Settlement::TargetRunning));
    assert!(t.post, "our own claim is renewed for the resend");
    assert!(matches!(
        t.claim,
        Some(ClaimWrite::Acquire {
            how: claim::Acquire::TakeOver { .. },
            ..
        })
    ));
    let mut taken = ours.clone();
    taken.claim = Some(Claim {
        in_flight_until: past_the_window() + jiff::SignedDuration::from_secs(30),
        ..peer_claim("publish-1", None)
    });
    let t = taken.apply(Outcome::Settled(Settlement::TargetRunning));
    assert!(
        !t.post,
        "another resource took the claim over and sent: wait"
    );
    assert_eq!(t.status, taken.status);
}

#[test]
fn a_follower_whose_claimant_let_go_sends_its_own_and_owns_it() {
    let (mut w, _) = fresh_with_claim(Some(peer_claim("publish-1", None)), send_publish_1());
    assert!(w.status.shared_cancel, "following");
    w.claim = None;
    let t = w.apply(Outcome::Targeted(send_publish_1()));
    assert!(t.post);
    assert!(!t.status.shared_cancel, "its own cancel now");
    let t = w.apply(Outcome::Rejected {
        reason: reason::FORBIDDEN,
        message: "CPP cancel call answered HTTP 403".into(),
        cancel_status: Some(403),
    });
    assert_eq!(t.claim, Some(ClaimWrite::Release), "and its own to let go");
}

#[test]
fn a_failed_cancel_of_ours_lets_the_claim_go_and_a_follower_never_does() {
    let refused = OfferCancellation::test().in_doubt().observed();
    let t = transition(
        &refused,
        Outcome::Rejected {
            reason: reason::FORBIDDEN,
            message: "CPP cancel call answered HTTP 403".into(),
            cancel_status: Some(403),
        },
    );
    assert_eq!(t.claim, Some(ClaimWrite::Release));
    let (w, _) = fresh_with_claim(Some(peer_claim("publish-1", None)), send_publish_1());
    let t = transition(&w, Outcome::TimedOut);
    assert_eq!(t.claim, None, "a follower holds no claim");
}

#[test]
fn our_answer_goes_onto_the_claim() {
    let w = OfferCancellation::test().in_doubt().observed();
    let t = transition(&w, Outcome::Answered(CancelOutcome::Cancelled));
    assert_eq!(t.claim, Some(ClaimWrite::Answer(ClaimAnswer::Cancelled)));
}

#[test]
fn a_404_to_a_resend_says_what_the_list_shows_of_the_operation() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    w.now = past_the_window();
    w.apply(Outcome::Settled(Settlement::TargetRunning));
    let live = ListAfterNotFound::Shows {
        settlement: Some(Settlement::TargetEnded {
            operation: "publish publish-1 (succeeded)".into(),
        }),
        latest: None,
    };
    let t = w.clone().apply(not_found_with(live));
    assert_eq!(
        t.status.phase,
        Some(Phase::Failed),
        "went live: not Cancelled"
    );
    let message = t.status.message.clone().unwrap_or_default();
    assert!(message.contains("publish-1"), "{message}");
    let mut ended = w.clone();
    ended.play(&t);
    assert_eq!(
        ended.condition(condition::STALLED).1,
        reason::OPERATION_ENDED
    );
    let cancelled = ListAfterNotFound::Shows {
        settlement: Some(Settlement::TargetCancelled {
            operation: "publish publish-1 (canceled)".into(),
        }),
        latest: None,
    };
    let t = w.clone().apply(not_found_with(cancelled));
    assert_eq!(
        t.status.phase,
        Some(Phase::Cancelled),
        "CPP lists it cancelled"
    );
    let unknown = ListAfterNotFound::Shows {
        settlement: Some(Settlement::TargetMissing {
            id: "publish-1".into(),
        }),
        latest: None,
    };
    let t = w.apply(not_found_with(unknown));
    assert_eq!(
        t.status.phase,
        Some(Phase::Failed),
        "nothing shows it cancelled"
    );
}

const JOB: &str = "9f1c0e2a-1b2c-4d5e-8f90-123456789abc";
const JOB_STATUS: &str = "https://graph.example/rp/product-ingestion/configure/9f1c0e2a-1b2c-4d5e-8f90-123456789abc/status?$version=2022-03-01-preview2";

/// A job as its status shows it, in the operations list's words.
fn job(status: &str) -> Operation {
    Operation {
        id: Some(JOB.into()),
        kind: Some("configure job".into()),
        status: status.into(),
        ..Operation::default()
    }
}

/// A fresh job resource whose status read showed it running: the intent
/// is recorded.
fn job_sending() -> Observed {
    let mut w = OfferCancellation::test().job(JOB).observed();
    let found = target(&[job("running")], Some(JOB), |_| JOB_STATUS.into());
    let t = w.apply(Outcome::Targeted(found));
    assert!(t.post, "a running job is cancelled");
    w
}

fn job_accepted() -> Observed {
    let mut w = job_sending();
    w.apply(Outcome::Answered(CancelOutcome::Accepted {
        http: 200,
        location: Some(JOB_STATUS.into()),
        retry_after: None,
    }));
    w
}

#[test]
fn a_job_answered_cancelled_at_once_is_cancelled() {
    let mut w = job_sending();
    let t = w.apply(Outcome::Answered(CancelOutcome::Cancelled));
    assert_eq!(t.status.phase, Some(Phase::Cancelled));
    assert_eq!(t.status.http_status, Some(200));
    assert_eq!(t.status.target.as_deref(), Some(&*format!("job {JOB}")));
    assert!(!w.status.message.unwrap_or_default().contains("CPP"));
}

#[test]
fn a_job_still_running_is_polled_at_its_status_url_once_a_minute() {
    let mut w = job_accepted();
    assert_eq!(w.status.phase, Some(Phase::Cancelling));
    assert_eq!(w.status.http_status, Some(200));
    assert_eq!(w.status.operation_location.as_deref(), Some(JOB_STATUS));
    let location = JOB_STATUS.to_string();
    assert_eq!(w.step(), Step::Call(Call::Poll { location }));
    let t = w.apply(polled("running", OperationState::InProgress));
    assert_eq!(t.requeue, Requeue::After(Duration::from_secs(60)));
    let t = w.apply(polled("cancelled", OperationState::Done));
    assert_eq!(t.status.phase, Some(Phase::Cancelled));
    assert_eq!(t.status.operation_status.as_deref(), Some("cancelled"));
}

#[test]
fn a_job_that_ended_otherwise_while_followed_fails_with_its_result_and_errors() {
    let mut w = job_accepted();
    let t = w.apply(polled("succeeded", OperationState::Failed));
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(
        w.condition(condition::STALLED).1,
        reason::JOB_ALREADY_COMPLETED
    );
    let message = t.status.message.unwrap_or_default();
    assert!(
        message.contains("succeeded") && message.contains("boom"),
        "{message}"
    );
}

#[test]
fn a_job_that_completed_before_any_cancel_sends_nothing() {
    let mut w = OfferCancellation::test().job(JOB).observed();
    for ended in ["succeeded", "failed", "cancelled"] {
        let found = target(&[job(ended)], Some(JOB), |_| JOB_STATUS.into());
        let t = transition(&w, Outcome::Targeted(found));
        assert!(!t.post, "{ended}");
        assert_eq!(t.status.phase, Some(Phase::Failed));
        let stalled = t
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == condition::STALLED);
        assert_eq!(stalled.unwrap().reason, reason::JOB_ALREADY_COMPLETED);
        assert!(t.status.message.unwrap_or_default().contains(ended));
    }
    w.apply(Outcome::Rejected {
        reason: reason::JOB_NOT_FOUND,
        message: "Product Ingestion status call answered HTTP 404".into(),
        cancel_status: None,
    });
    assert_eq!(w.condition(condition::STALLED).1, reason::JOB_NOT_FOUND);
}

#[test]
fn a_refused_cancel_says_how_the_job_ended() {
    for (ended, settlement) in [
        (
            "succeeded",
            Settlement::TargetEnded {
                operation: describe(&job("succeeded")),
            },
        ),
        (
            "cancelled",
            Settlement::TargetCancelled {
                operation: describe(&job("cancelled")),
            },
        ),
    ] {
        let mut w = job_sending();
        let t = w.apply(Outcome::CancelRefused {
            http: 400,
            message: "HTTP 400 (badRequest: Cannot cancel job, job has already completed.)".into(),
            settlement,
        });
        assert_eq!(t.status.phase, Some(Phase::Failed), "{ended}");
        assert_eq!(t.status.http_status, Some(400));
        assert_eq!(
            w.condition(condition::STALLED).1,
            reason::JOB_ALREADY_COMPLETED
        );
        assert!(t.status.message.unwrap_or_default().contains(ended));
    }
    let mut w = job_sending();
    let t = w.apply(Outcome::CancelRefused {
        http: 400,
        message: "HTTP 400 (badRequest: too far along)".into(),
        settlement: Settlement::TargetRunning,
    });
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(w.condition(condition::STALLED).1, reason::BAD_REQUEST);
}

/// The intent's answer was lost; the status read settles it.
fn job_in_doubt() -> Observed {
    let mut w = job_sending();
    w.now = past_the_window();
    assert_eq!(w.step(), Step::Call(Call::Settle));
    w
}

#[test]
fn a_lost_answer_is_settled_from_the_jobs_status_never_by_a_blind_resend() {
    let settle_job = |status: &str| {
        let since = Some(at(0));
        settle(&[job(status)], since, Some(JOB), |_| JOB_STATUS.into())
    };
    let mut w = job_in_doubt();
    let t = w.apply(Outcome::Settled(settle_job("cancelled")));
    assert_eq!(t.status.phase, Some(Phase::Cancelled));
    assert!(!t.post);
    let mut w = job_in_doubt();
    let t = w.apply(Outcome::Settled(settle_job("succeeded")));
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(
        w.condition(condition::STALLED).1,
        reason::JOB_ALREADY_COMPLETED
    );
    let mut w = job_in_doubt();
    let t = w.apply(Outcome::Settled(settle_job("running")));
    assert!(
        t.post,
        "still running: sent again, fenced by this intent's write"
    );
    assert_eq!(w.condition(condition::RECONCILING).1, reason::CANCEL_RESENT);
}

#[test]
fn a_resent_cancel_refused_because_our_first_one_took_effect_is_cancelled() {
    let mut w = job_in_doubt();
    w.apply(Outcome::Settled(Settlement::TargetRunning));
    let operation = describe(&job("cancelled"));
    let t = w.apply(Outcome::CancelRefused {
        http: 400,
        message: "HTTP 400 (badRequest: Cannot cancel job, job has already completed.)".into(),
        settlement: Settlement::TargetCancelled { operation },
    });
    assert_eq!(t.status.phase, Some(Phase::Cancelled));
    assert_eq!(w.condition(condition::READY).1, reason::NOTHING_IN_PROGRESS);
}

#[test]
fn a_404_to_a_resent_job_cancel_is_not_taken_for_success() {
    let mut w = job_in_doubt();
    w.apply(Outcome::Settled(Settlement::TargetRunning));
    let t = w.apply(Outcome::Rejected {
        reason: reason::JOB_NOT_FOUND,
        message: "Product Ingestion cancel call answered HTTP 404".into(),
        cancel_status: Some(404),
    });
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(w.condition(condition::STALLED).1, reason::JOB_NOT_FOUND);
}

#[test]
fn a_retried_job_resumes_following_the_cancel_it_had_accepted() {
    let mut w = job_accepted();
    w.apply(Outcome::TimedOut);
    assert_eq!(w.status.phase, Some(Phase::Failed));
    w.retry_request = Some("again".into());
    assert_eq!(w.step(), Step::Record(Outcome::Resumed));
    let t = w.apply(Outcome::Resumed);
    assert_eq!(t.status.phase, Some(Phase::Cancelling));
    assert!(!t.post, "an accepted cancel is never sent again");
}

#[test]
fn two_resources_naming_one_job_send_one_cancel() {
    let first = job_sending();
    let mut second = OfferCancellation::test().job(JOB).observed();
    second.claimant.uid = "uid-2".into();
    second.claim = Some(Claim {
        claimant: first.claimant.clone(),
        ..peer_claim(JOB, None)
    });
    second.now = at(1);
    let found = target(&[job("running")], Some(JOB), |_| JOB_STATUS.into());
    let t = transition(&second, Outcome::Targeted(found));
    assert!(!t.post, "the first one's POST is in flight: wait");
}

#[test]
fn a_job_another_resource_just_cancelled_is_cancelled_not_failed() {
    let mut second = OfferCancellation::test().job(JOB).observed();
    second.created = Some(at(1));
    second.claim = Some(peer_claim(JOB, Some(ClaimAnswer::Cancelled)));
    second.now = at(2);
    let found = target(&[job("cancelled")], Some(JOB), |_| JOB_STATUS.into());
    let t = second.apply(Outcome::Targeted(found.clone()));
    assert!(!t.post);
    assert_eq!(t.status.phase, Some(Phase::Cancelled));
    assert_eq!(second.condition(condition::READY).1, reason::CANCEL_SHARED);
    // Without that claim, someone else cancelled it: nothing of ours did.
    let mut alone = OfferCancellation::test().job(JOB).observed();
    alone.now = at(2);
    let t = alone.apply(Outcome::Targeted(found));
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(
        alone.condition(condition::STALLED).1,
        reason::JOB_ALREADY_COMPLETED
    );
}

// ---- A retry asked for, as the audit of issue 27 probed it ----

#[test]
fn putting_back_a_retry_value_answered_before_asks_for_nothing() {
    let mut w = fresh();
    w.retry_request = Some("2026-01-01".into());
    w.apply(Outcome::Targeted(Targeting::NothingToCancel(None)));
    assert_eq!(w.step(), Step::Idle, "Git's value is answered");
    w.retry_request = Some("2026-11-25T10:05:00Z".into());
    restarts_as_a_first_cancel(&mut w);
    w.apply(Outcome::Targeted(Targeting::NothingToCancel(None)));
    assert_eq!(w.step(), Step::Idle, "the click is answered");
    w.now = at(86_400 * 21);
    w.retry_request = Some("2026-01-01".into());
    assert_eq!(w.step(), Step::Idle, "self-heal put Git's value back");
    w.retry_request = None;
    assert_eq!(w.step(), Step::Idle, "and removed it");
    w.retry_request = Some("2026-12-24".into());
    restarts_as_a_first_cancel(&mut w);
}

#[test]
fn the_values_answered_before_are_bounded() {
    let mut w = fresh();
    w.apply(Outcome::Targeted(Targeting::NothingToCancel(None)));
    for round in 0..20 {
        w.retry_request = Some(format!("{round}"));
        restarts_as_a_first_cancel(&mut w);
        w.apply(Outcome::Targeted(Targeting::NothingToCancel(None)));
    }
    let earlier = &w.status.earlier_retry_requests;
    assert_eq!(earlier.len(), crate::crd::MAX_EARLIER_RETRY_REQUESTS);
    assert_eq!(earlier.last().map(String::as_str), Some("18"));
    assert_eq!(w.status.retry_request.as_deref(), Some("19"));
}

#[test]
fn a_transient_error_never_drops_a_retry_that_a_fix_asked_for() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    w.apply(Outcome::Rejected {
        reason: reason::UNAUTHORIZED,
        message: "CPP cancel call answered HTTP 401".into(),
        cancel_status: Some(401),
    });
    w.now = at(86_400);
    w.credentials_version = Some("101".into());
    restarts_as_a_first_cancel(&mut w);
    w.apply(Outcome::Transient {
        message: "HTTP 503".into(),
        retry_after: None,
    });
    assert_eq!(
        w.step(),
        Step::Call(Call::ReadTarget),
        "the attempt goes on"
    );

    let mut e = fresh();
    e.spec.not_after = Some(Time(at(-10)));
    e.apply(Outcome::Expired);
    e.now = at(100);
    e.generation = 2;
    e.spec.not_after = Some(Time(at(3600)));
    restarts_as_a_first_cancel(&mut e);
    e.apply(Outcome::Transient {
        message: "HTTP 503".into(),
        retry_after: None,
    });
    assert_eq!(e.step(), Step::Call(Call::ReadTarget));
}

#[test]
fn a_retry_that_finds_no_secret_waits_for_it_as_a_first_cancel() {
    let mut w = fresh();
    w.apply(Outcome::Targeted(Targeting::NothingToCancel(None)));
    w.retry_request = Some("1".into());
    restarts_as_a_first_cancel(&mut w);
    w.credentials_version = None;
    w.apply(Outcome::CredentialsUnavailable(
        "Secret cpp not found".into(),
    ));
    assert_eq!(
        w.status.phase,
        Some(Phase::Pending),
        "not a Failed one any more"
    );
    assert_eq!(
        w.condition(condition::STALLED).1,
        reason::CREDENTIALS_UNAVAILABLE
    );
    assert_eq!(
        w.status.retry_request.as_deref(),
        Some("1"),
        "the ask was answered"
    );
}

#[test]
fn a_retry_says_what_rearmed_it() {
    let mut w = fresh();
    w.apply(Outcome::Targeted(Targeting::NothingToCancel(None)));
    w.retry_request = Some("1".into());
    let t = w.apply(Outcome::Restarted);
    let message = t.status.message.unwrap_or_default();
    assert!(message.contains("retry annotation"), "{message}");
    assert_eq!(t.notice.map(|n| n.reason), Some(reason::RETRYING));
}

#[test]
fn a_retry_that_meets_a_peer_post_in_flight_follows_it_not_in_doubt() {
    let mut w = fresh();
    w.apply(crate::fixtures::intent());
    w.apply(Outcome::Rejected {
        reason: reason::BAD_REQUEST,
        message: "CPP cancel call answered HTTP 400".into(),
        cancel_status: Some(400),
    });
    w.now = at(86_400 * 14);
    w.round_started = w.now;
    w.retry_request = Some("1".into());
    restarts_as_a_first_cancel(&mut w);
    w.claim = Some(Claim {
        claimed_at: w.now,
        in_flight_until: w.now + jiff::SignedDuration::from_secs(40),
        ..peer_claim("publish-2", None)
    });
    let publish_2 = crate::crd::TargetOperation {
        id: "publish-2".into(),
        type_: Some("publish".into()),
        created: None,
    };
    let t = w.apply(Outcome::Targeted(Targeting::Send(publish_2)));
    assert!(!t.post, "the peer's POST is in flight: wait for it");
    assert!(w.follows_a_claim(), "{:?}", w.status);
    assert_ne!(w.step(), Step::Call(Call::Settle));
}

#[test]
fn an_intent_from_before_the_guards_never_takes_a_publish_inside_the_clock_skew() {
    let ops = [
        listed("publish", "succeeded", Some(-3600)),
        listed("publish", "running", Some(-30)),
    ];
    let found = settle(&ops, Some(at(0)), None, |id| format!("/ops/{id}"));
    assert_eq!(
        found,
        Settlement::EarlierTargetUnknown,
        "it may have started after"
    );
    let undated = [listed("publish", "running", None)];
    let found = settle(&undated, Some(at(0)), None, |id| format!("/ops/{id}"));
    assert_eq!(found, Settlement::EarlierTargetUnknown);
}

/// The second audit's probe: the publish the intent was for started a
/// minute before it (inside the skew), an older one was cancelled long
/// ago. Neither may be taken for it: nothing sent, and never Cancelled.
#[test]
fn an_intent_from_before_the_guards_never_ends_cancelled_by_an_older_publish() {
    let mut w = written_by_an_earlier_release(INTENT_BEFORE_THE_GUARDS);
    w.now = at(700);
    let ops = [
        listed("publish", "canceled", Some(-86_400)),
        listed("publish", "running", Some(-60)),
    ];
    let found = settle(&ops, Some(at(0)), None, |id| format!("/ops/{id}"));
    let t = w.apply(Outcome::Settled(found));
    assert!(!t.post);
    assert_eq!(t.status.phase, Some(Phase::Failed));
    assert_eq!(
        w.condition(condition::STALLED).1,
        reason::OPERATION_NOT_FOUND
    );
}

#[test]
fn an_intent_in_flight_from_an_earlier_release_gets_its_claim_at_start_up() {
    let mut legacy = written_by_an_earlier_release(INTENT_BEFORE_THE_GUARDS);
    legacy.now = at(30);
    let claim = legacy.claim_of_intent_in_flight().expect("in flight");
    assert_eq!(claim.claimant, legacy.claimant);
    assert_eq!(
        claim.operation, "",
        "it names no operation: it holds the target"
    );
    assert_eq!(claim.claimed_at, at(0));
    assert_eq!(claim.in_flight_until, at(610));
    legacy.now = at(610);
    assert_eq!(
        legacy.claim_of_intent_in_flight(),
        None,
        "its window is over"
    );

    let mut of_0_1_0 = written_by_an_earlier_release(INTENT_OF_0_1_0);
    of_0_1_0.now = at(5);
    let claim = of_0_1_0.claim_of_intent_in_flight().expect("in flight");
    assert_eq!(claim.operation, "publish-1");
    assert_eq!(claim.in_flight_until, at(40));

    for settled in [
        OfferCancellation::test(),
        OfferCancellation::test().polling("/op"),
        OfferCancellation::test().cancelled(),
        OfferCancellation::test().refused(400),
    ] {
        assert_eq!(settled.observed().claim_of_intent_in_flight(), None);
    }
}

/// What 0.1.0 left when a retry it began met a transient error: Failed,
/// its conditions `TransientError`, "will retry". This release goes on
/// with it, as 0.1.0 would have.
#[test]
fn a_retry_0_1_0_left_in_the_middle_goes_on() {
    for (reason_left, message) in [
        (
            reason::TRANSIENT_ERROR,
            "transient error, will retry: HTTP 503",
        ),
        (reason::CREDENTIALS_UNAVAILABLE, "Secret cpp not found"),
    ] {
        let mut w = fresh();
        w.apply(Outcome::Targeted(Targeting::NothingToCancel(None)));
        for c in &mut w.status.conditions {
            c.reason = reason_left.into();
            c.message = message.into();
        }
        restarts_as_a_first_cancel(&mut w);
        assert!(
            w.status
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("unfinished"),
            "{:?}",
            w.status.message
        );
    }
}
