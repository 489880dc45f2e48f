//! The reconcile path against a mocked Kubernetes API server, with CPP
//! played by wiremock: this object, this conversation with CPP, and the
//! exact calls to the API server, in order, with the status written.

mod common;

use common::*;
use kube::runtime::controller::Action;
use offer_cancel_operator::claim::lease::claim_name;
use offer_cancel_operator::crd::OfferCancellation;
use offer_cancel_operator::decide::reason;
use offer_cancel_operator::reconcile::reconcile;
use std::sync::Arc;
use std::time::Duration;
use wiremock::MockServer;

async fn run(
    obj: OfferCancellation,
    cpp: &MockServer,
    calls: Vec<Call>,
) -> (Action, Vec<serde_json::Value>) {
    let (ctx, server) = context(&cpp.uri());
    let verifier = server.run(obj.clone(), calls);
    let action = tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(obj), ctx))
        .await
        .expect("reconcile hung: an unexpected call got no answer")
        .expect("reconcile failed");
    let applied = tokio::time::timeout(Duration::from_secs(1), verifier)
        .await
        .expect("scenario not completed")
        .expect("scenario panicked");
    (action, applied)
}

fn condition<'a>(status: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} in {status}"))
}

/// As [`run`], with these claims already held; returns what the Lease
/// store saw and holds afterwards.
async fn run_with_claims(
    obj: OfferCancellation,
    cpp: &MockServer,
    held: Vec<serde_json::Value>,
    calls: Vec<Call>,
) -> (Vec<String>, Vec<serde_json::Value>) {
    let (ctx, server) = context(&cpp.uri());
    let leases = server.leases();
    for lease in held {
        let path = format!("{}{NS}/leases", common::leases::PREFIX);
        leases.lock().unwrap().answer("POST", &path, lease);
        leases.lock().unwrap().calls.clear();
    }
    let verifier = server.run(obj.clone(), calls);
    tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(obj), ctx))
        .await
        .expect("reconcile hung")
        .expect("reconcile failed");
    tokio::time::timeout(Duration::from_secs(2), verifier)
        .await
        .expect("scenario not completed")
        .expect("scenario panicked");
    let leases = leases.lock().unwrap();
    (leases.calls.clone(), leases.held())
}

/// Another resource's claim on contoso/contoso-offer, for publish-1, in
/// flight for another minute.
fn peer_claim_in_flight() -> serde_json::Value {
    let now = jiff::Timestamp::now();
    serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {
            "name": claim_name("offer/contoso/contoso-offer"),
            "labels": {"offercancel.dev/claim": "true"},
            "annotations": {
                "offercancel.dev/target": "offer/contoso/contoso-offer",
                "offercancel.dev/operation": "publish-1",
                "offercancel.dev/claimant": "team-b/their-cancel",
                "offercancel.dev/claimant-uid": "uid-b",
                "offercancel.dev/claimed-at": now.to_string(),
                "offercancel.dev/in-flight-until": (now + jiff::SignedDuration::from_secs(60)).to_string(),
            }
        },
        "spec": {}
    })
}

#[tokio::test]
async fn a_first_cancel_claims_its_target_before_the_intent_and_records_the_answer_there() {
    let cpp = Conversation::SyncCancel.serve().await;
    let calls = vec![
        Call::GetSecret(Box::new(Some(token_secret("tok")))),
        patch(|s| assert_eq!(s["phase"], "Pending")),
        Call::Event(reason::CANCEL_REQUESTED),
        patch(|s| assert_eq!(s["phase"], "Cancelled")),
        Call::Event(reason::CANCELLED),
    ];
    let (seen, held) = run_with_claims(contoso(), &cpp, vec![], calls).await;
    let name = claim_name("offer/contoso/contoso-offer");
    assert_eq!(
        seen,
        [
            format!("GET {name}"),
            "POST ".to_string(),
            format!("PATCH {name}")
        ],
        "read, created before the intent, then told the answer"
    );
    let annotations = &held[0]["metadata"]["annotations"];
    assert_eq!(annotations["offercancel.dev/operation"], "publish-1");
    assert_eq!(
        annotations["offercancel.dev/claimant"],
        "default/contoso-offer-cancel"
    );
    assert_eq!(annotations["offercancel.dev/answer"], "cancelled");
}

#[tokio::test]
async fn another_resources_post_in_flight_is_waited_for_and_nothing_is_sent() {
    let cpp = Conversation::Lists(serde_json::json!([
        {"id": "publish-1", "submissionType": "publish", "status": "running"}
    ]))
    .serve()
    .await;
    let calls = vec![
        Call::GetSecret(Box::new(Some(token_secret("tok")))),
        patch(|s| {
            assert_eq!(s["phase"], "Pending");
            assert_eq!(s["sharedCancel"], true);
            assert_eq!(s["targetOperation"]["id"], "publish-1");
            assert!(s.get("requestedAt").is_none(), "no intent of its own");
            let message = s["message"].as_str().unwrap_or_default();
            assert!(!message.contains("team-b"), "{message}");
        }),
        Call::Event(reason::CANCEL_SHARED),
    ];
    let (seen, held) = run_with_claims(contoso(), &cpp, vec![peer_claim_in_flight()], calls).await;
    assert_eq!(seen.len(), 1, "only read: {seen:?}");
    assert_eq!(
        held[0]["metadata"]["annotations"]["offercancel.dev/claimant"],
        "team-b/their-cancel"
    );
}

#[tokio::test]
async fn a_claim_namespace_that_does_not_exist_is_an_error_in_status_never_a_loop() {
    let cpp = Conversation::Lists(serde_json::json!([
        {"id": "publish-1", "submissionType": "publish", "status": "running"}
    ]))
    .serve()
    .await;
    let (ctx, server) = context(&cpp.uri());
    server.leases().lock().unwrap().no_namespace = true;
    let calls = vec![
        Call::GetSecret(Box::new(Some(token_secret("tok")))),
        patch(|s| {
            assert_eq!(s["phase"], "Pending");
            assert!(
                s.get("requestedAt").is_none(),
                "no intent without the claim"
            );
            assert_eq!(
                condition(s, "Reconciling")["reason"],
                reason::TRANSIENT_ERROR
            );
            let message = s["message"].as_str().unwrap_or_default();
            assert!(message.contains("claim"), "{message}");
        }),
        Call::Event(reason::TRANSIENT_ERROR),
    ];
    let obj = contoso();
    let verifier = server.run(obj.clone(), calls);
    let action = tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(obj), ctx))
        .await
        .expect("reconcile hung")
        .expect("reconcile failed");
    verifier.await.expect("scenario");
    assert_ne!(action, Action::requeue(Duration::ZERO), "backs off");
}

#[tokio::test]
async fn sync_cancel_records_intent_then_cancelled() {
    let cpp = Conversation::SyncCancel.serve().await;
    let calls = vec![
        Call::GetSecret(Box::new(Some(token_secret("tok")))),
        patch(|s| {
            assert_eq!(s["phase"], "Pending");
            assert_eq!(s["attempts"], 1);
            assert!(s["requestedAt"].is_string());
            assert!(s.get("httpStatus").is_none());
            assert_eq!(s["observedGeneration"], 1);
            assert_eq!(condition(s, "Reconciling")["status"], "True");
        }),
        Call::Event(reason::CANCEL_REQUESTED),
        patch(|s| {
            assert_eq!(s["phase"], "Cancelled");
            assert_eq!(s["httpStatus"], 200);
            assert!(s["completedAt"].is_string());
            assert_eq!(condition(s, "Ready")["status"], "True");
            assert_eq!(condition(s, "Ready")["observedGeneration"], 1);
            assert_eq!(condition(s, "Stalled")["status"], "False");
        }),
        Call::Event(reason::CANCELLED),
    ];
    let (action, applied) = run(contoso(), &cpp, calls).await;
    assert_eq!(action, Action::await_change());
    assert_eq!(applied.len(), 2);
    let post = &cpp.received_requests().await.unwrap()[0];
    assert_eq!(post.headers["authorization"], "Bearer tok");
}

#[tokio::test]
async fn async_cancel_records_location_exactly_and_requeues_for_polling() {
    let loc = "/api/operations/contoso$contoso-offer$2$preview?api-version=2017-10-31";
    let cpp = Conversation::AsyncCancel(loc).serve().await;
    let calls = vec![
        Call::GetSecret(Box::new(Some(token_secret("tok")))),
        patch(|s| assert_eq!(s["phase"], "Pending")),
        Call::Event(reason::CANCEL_REQUESTED),
        patch(move |s| {
            assert_eq!(s["phase"], "Cancelling");
            assert_eq!(s["httpStatus"], 202);
            assert_eq!(s["operationLocation"], loc);
            assert_eq!(
                condition(s, "Reconciling")["reason"],
                reason::CANCEL_IN_PROGRESS
            );
        }),
        Call::Event(reason::CANCEL_ACCEPTED),
    ];
    let (action, _) = run(contoso(), &cpp, calls).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
}

#[tokio::test]
async fn recorded_request_is_never_posted_again_and_unchanged_poll_writes_nothing() {
    let cpp = Conversation::StillRunning.serve().await;
    // A restarted controller: nothing in memory, the status says Cancelling.
    let calls = vec![Call::GetSecret(Box::new(Some(token_secret("tok"))))];
    let (action, applied) = run(contoso().polling(OPERATION_LOCATION), &cpp, calls).await;
    assert!(
        applied.is_empty(),
        "an unchanged poll must not write status"
    );
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
}

#[tokio::test]
async fn forbidden_is_terminal_and_never_posted() {
    let cpp = Conversation::Forbidden.serve().await;
    let calls = vec![
        Call::GetSecret(Box::new(Some(token_secret("tok")))),
        patch(|s| {
            assert_eq!(s["phase"], "Failed");
            assert!(s.get("requestedAt").is_none(), "no intent: nothing sent");
            assert_eq!(condition(s, "Stalled")["status"], "True");
            assert_eq!(condition(s, "Stalled")["reason"], reason::FORBIDDEN);
            assert_eq!(
                s["message"],
                "CPP submissions call answered HTTP 403 (Forbidden: no access)"
            );
        }),
        Call::Event(reason::CANCEL_FAILED),
    ];
    let (action, applied) = run(contoso(), &cpp, calls).await;
    assert_eq!(action, Action::await_change());

    // The resync: same resource with its Failed status. Only the Secret is read.
    let failed = serde_json::from_value(applied[0].clone()).unwrap();
    let calls = vec![Call::GetSecret(Box::new(Some(token_secret("tok"))))];
    let (action, applied) = run(resource("contoso-offer", Some(failed)), &cpp, calls).await;
    assert_eq!(action, Action::await_change());
    assert!(applied.is_empty());
}

#[tokio::test]
async fn missing_secret_stalls_with_a_clear_message_and_sends_nothing() {
    let cpp = Conversation::Silent.serve().await;
    let calls = vec![
        Call::GetSecret(Box::new(None)),
        patch(|s| {
            assert_eq!(s["phase"], "Pending");
            assert_eq!(
                s["message"],
                "Secret cpp-credentials not found in this namespace"
            );
            assert_eq!(
                condition(s, "Stalled")["reason"],
                reason::CREDENTIALS_UNAVAILABLE
            );
            assert!(s.get("requestedAt").is_none());
        }),
    ];
    let (action, _) = run(contoso(), &cpp, calls).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    assert!(cpp.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn intent_without_answer_adopts_the_running_cancel_instead_of_posting() {
    let cpp = Conversation::Lists(serde_json::json!([
        {"id": "pub-1", "submissionType": "publish", "status": "running"},
        {"id": "c-9", "submissionType": "cancel", "status": "notStarted"}
    ]))
    .serve()
    .await;
    let calls = vec![
        Call::GetSecret(Box::new(Some(token_secret("tok")))),
        patch(|s| {
            assert_eq!(s["phase"], "Cancelling");
            assert_eq!(
                s["operationLocation"],
                "/api/publishers/contoso/offers/contoso-offer/operations/c-9?api-version=2017-10-31"
            );
        }),
        Call::Event(reason::CANCEL_ACCEPTED),
    ];
    run(contoso().in_doubt(), &cpp, calls).await;
}

#[tokio::test]
async fn intent_without_answer_and_the_operation_still_running_resends_once() {
    let cpp = Conversation::ListsTargetRunningThenSyncCancel.serve().await;
    let calls = vec![
        Call::GetSecret(Box::new(Some(token_secret("tok")))),
        patch(|s| {
            assert_eq!(s["phase"], "Pending");
            assert_eq!(s["attempts"], 2);
        }),
        Call::Event(reason::CANCEL_RESENT),
        patch(|s| assert_eq!(s["phase"], "Cancelled")),
        Call::Event(reason::CANCELLED),
    ];
    run(contoso().in_doubt(), &cpp, calls).await;
}

#[tokio::test]
async fn transient_error_records_the_error_and_backs_off() {
    let cpp = Conversation::Unavailable.serve().await;
    let calls = vec![
        Call::GetSecret(Box::new(Some(token_secret("tok")))),
        patch(|s| assert_eq!(s["phase"], "Pending")),
        Call::Event(reason::CANCEL_REQUESTED),
        patch(|s| {
            assert_eq!(s["phase"], "Pending");
            assert!(
                s.get("consecutiveErrors").is_none(),
                "the count is not status"
            );
            assert_eq!(
                s["message"],
                "transient error, will retry: CPP cancel call answered HTTP 503"
            );
            assert_eq!(condition(s, "Ready")["reason"], reason::TRANSIENT_ERROR);
            assert_eq!(condition(s, "Reconciling")["status"], "True");
        }),
        Call::Event(reason::TRANSIENT_ERROR),
    ];
    let (action, _) = run(contoso(), &cpp, calls).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(40)));
}

#[tokio::test]
async fn secrets_never_reach_status_or_events() {
    let cpp = Conversation::TokenRefused.serve().await;
    let calls = vec![
        Call::GetSecret(Box::new(Some(principal_secret(
            "t1",
            "app",
            "s3cr3t-value",
        )))),
        patch(|s| {
            let text = s.to_string();
            assert!(!text.contains("s3cr3t"), "{text}");
            assert_eq!(s["phase"], "Failed");
            assert_eq!(
                condition(s, "Stalled")["reason"],
                reason::CREDENTIALS_REJECTED
            );
            assert!(s.get("requestedAt").is_none(), "no intent without a token");
        }),
        Call::Event(reason::CANCEL_FAILED),
    ];
    run(contoso(), &cpp, calls).await;
}

#[tokio::test]
async fn cancelled_and_up_to_date_reads_nothing_at_all() {
    let cpp = Conversation::Silent.serve().await;
    let done = contoso().cancelled();
    let (action, applied) = run(done, &cpp, vec![]).await;
    assert_eq!(action, Action::await_change());
    assert!(applied.is_empty());
    assert!(cpp.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_secret_is_read_once_until_the_secret_watch_reports_a_change() {
    let cpp = Conversation::Silent.serve().await;
    let (ctx, server) = context(&cpp.uri());
    // Failed and up to date: its Secret is read to see whether it changed.
    let refused = contoso().refused(403);
    let verifier = server.run(refused.clone(), vec![Call::GetSecret(Box::new(None))]);
    for _ in 0..3 {
        let once = reconcile(Arc::new(refused.clone()), ctx.clone());
        let action = tokio::time::timeout(Duration::from_secs(5), once)
            .await
            .expect("a second Secret read got no answer: the cache was not used");
        assert_eq!(action.expect("reconcile"), Action::await_change());
    }
    let applied = verifier.await.expect("one Secret read, then the cache");
    assert!(applied.is_empty());
}

#[tokio::test]
async fn a_stale_view_never_posts_its_intent_write_is_refused() {
    let cpp = Conversation::Silent.serve().await;
    // The copy has no status; the object on the server moved on (409).
    let calls = vec![
        Call::GetSecret(Box::new(Some(token_secret("tok")))),
        Call::PatchConflict,
    ];
    let (action, applied) = run(contoso(), &cpp, calls).await;
    assert!(applied.is_empty());
    assert!(
        action == Action::requeue(Duration::from_secs(2)),
        "a conflict requeues soon: {action:?}"
    );
}

#[tokio::test]
async fn a_lost_sync_answer_whose_publish_the_list_shows_cancelled_ends_cancelled_without_a_post() {
    let cpp = Conversation::Lists(serde_json::json!([
        {"id": "publish-1", "submissionType": "publish", "status": "canceled"}
    ]))
    .serve()
    .await;
    let calls = vec![
        Call::GetSecret(Box::new(Some(token_secret("tok")))),
        patch(|s| {
            assert_eq!(s["phase"], "Cancelled");
            let ready = condition(s, "Ready");
            assert_eq!(ready["reason"], reason::NOTHING_IN_PROGRESS);
        }),
        Call::Event(reason::CANCELLED),
    ];
    run(contoso().in_doubt(), &cpp, calls).await;
}

#[tokio::test]
async fn cpp_answer_survives_a_label_edit_during_the_post() {
    let cpp = Conversation::SyncCancel.serve().await;
    let calls = vec![
        Call::GetSecret(Box::new(Some(token_secret("tok")))),
        patch(|s| assert_eq!(s["phase"], "Pending")),
        Call::Event(reason::CANCEL_REQUESTED),
        // A label landed while the POST was in flight: the answer's write
        // is refused, the resource read again, and the answer written.
        Call::PatchConflict,
        labelled_meanwhile(),
        patch(|s| {
            assert_eq!(s["phase"], "Cancelled");
            assert_eq!(s["httpStatus"], 200);
            assert_eq!(s["attempts"], 1);
        }),
        Call::Event(reason::CANCELLED),
    ];
    let (action, applied) = run(contoso(), &cpp, calls).await;
    assert_eq!(action, Action::await_change());
    assert_eq!(applied.len(), 2);
    let received = cpp.received_requests().await.unwrap();
    let posts = received.iter().filter(|r| r.method.as_str() == "POST");
    assert_eq!(posts.count(), 1);
}

#[tokio::test]
async fn an_answer_another_writer_recorded_first_is_never_overwritten() {
    let cpp = Conversation::SyncCancel.serve().await;
    let calls = vec![
        Call::GetSecret(Box::new(Some(token_secret("tok")))),
        patch(|s| assert_eq!(s["phase"], "Pending")),
        Call::Event(reason::CANCEL_REQUESTED),
        Call::PatchConflict,
        Call::GetMovedOn(Box::new(|o| {
            o["status"]["phase"] = serde_json::json!("Cancelling");
            o["status"]["httpStatus"] = serde_json::json!(202);
        })),
    ];
    let (action, applied) = run(contoso(), &cpp, calls).await;
    assert_eq!(applied.len(), 1, "only our intent was written");
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
}

#[tokio::test]
async fn a_job_is_read_then_its_intent_written_then_cancelled_with_one_post() {
    let jobs = Conversation::JobCancelledAtOnce.serve().await;
    let calls = vec![
        Call::GetSecret(Box::new(Some(token_secret("tok")))),
        patch(|s| {
            assert_eq!(s["phase"], "Pending");
            assert_eq!(s["targetOperation"]["id"], JOB_ID);
            assert_eq!(s["targetOperation"]["type"], "configure job");
            assert_eq!(s["target"], format!("job {JOB_ID}"));
        }),
        Call::Event(reason::CANCEL_REQUESTED),
        patch(|s| {
            assert_eq!(s["phase"], "Cancelled");
            assert_eq!(s["httpStatus"], 200);
            assert_eq!(condition(s, "Ready")["reason"], reason::CANCELLED);
            // What the job had already applied, written with the end.
            let processed = &s["processedResources"];
            assert_eq!(processed["resources"][0]["id"], "plan/1", "{processed}");
            assert_eq!(processed["resources"].as_array().map(Vec::len), Some(1));
        }),
        Call::Event(reason::CANCELLED),
    ];
    let (action, applied) = run(contoso().job(JOB_ID), &jobs, calls).await;
    assert_eq!(action, Action::await_change());
    assert_eq!(applied.len(), 2, "the end and the detail take one write");
    let sent = jobs.received_requests().await.unwrap();
    assert_eq!(sent.len(), 3, "one status read, one POST, one detail read");
    assert!(sent.iter().all(|r| r.url.path().starts_with(JOB_BASE)));
}

#[tokio::test]
async fn a_job_that_already_succeeded_is_never_sent_a_cancel() {
    let jobs = Conversation::JobAlreadySucceeded.serve().await;
    let calls = vec![
        Call::GetSecret(Box::new(Some(token_secret("tok")))),
        patch(|s| {
            assert_eq!(s["phase"], "Failed");
            assert_eq!(
                condition(s, "Stalled")["reason"],
                reason::JOB_ALREADY_COMPLETED
            );
            assert!(
                s["message"].as_str().unwrap_or("").contains("succeeded"),
                "{s}"
            );
        }),
        Call::Event(reason::CANCEL_FAILED),
    ];
    let (action, _) = run(contoso().job(JOB_ID), &jobs, calls).await;
    assert_eq!(action, Action::await_change());
}
