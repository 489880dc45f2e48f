//! The simulator over HTTP: documented answers, test endpoints, faults, and
//! no panic on any input.

use marketplace_simulator::scenario::DEFAULT_TOKEN;
use marketplace_simulator::{self as simulator, Scenario};
use proptest::prelude::*;
use serde_json::{Value, json};

async fn sim() -> (simulator::Running, reqwest::Client) {
    (
        simulator::spawn(Scenario::default_scenario(), "127.0.0.1:0")
            .await
            .unwrap(),
        client(),
    )
}

fn cancel_url(sim: &simulator::Running, publisher: &str, offer: &str, api: &str) -> String {
    format!(
        "{}/api/publishers/{publisher}/offers/{offer}/cancel?api-version={api}",
        sim.url()
    )
}

async fn post_cancel(
    c: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut req = c
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// An authorized GET, read as JSON.
async fn get_json(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> Value {
    c.get(url)
        .bearer_auth(DEFAULT_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

const BODY: &str = r#"{"metadata":{"notification-emails":"a@b.c"}}"#;

#[tokio::test]
async fn documented_error_answers() {
    let (sim, c) = sim().await;
    let ok = cancel_url(&sim, "contoso", "sync-offer", "2017-10-31");
    assert_eq!(post_cancel(&c, &ok, None, BODY).await.0, 401);
    assert_eq!(post_cancel(&c, &ok, Some("forged"), BODY).await.0, 401);

    let (code, body) = post_cancel(
        &c,
        &cancel_url(&sim, "contoso", "sync-offer", "2016-01-01"),
        Some(DEFAULT_TOKEN),
        BODY,
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(body["error"]["code"], "InvalidAPIVersion");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2017-10-31")
    );

    let forbidden = cancel_url(&sim, "fabrikam", "fabrikam-offer", "2017-10-31");
    assert_eq!(
        post_cancel(&c, &forbidden, Some(DEFAULT_TOKEN), BODY)
            .await
            .0,
        403
    );
    let missing = cancel_url(&sim, "contoso", "nope", "2017-10-31");
    assert_eq!(
        post_cancel(&c, &missing, Some(DEFAULT_TOKEN), BODY).await.0,
        404
    );
    let idle = cancel_url(&sim, "contoso", "idle-offer", "2017-10-31");
    assert_eq!(
        post_cancel(&c, &idle, Some(DEFAULT_TOKEN), BODY).await.0,
        404
    );

    let (code, body) = post_cancel(&c, &ok, Some(DEFAULT_TOKEN), "{not json").await;
    assert_eq!(code, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Malformed JSON")
    );

    assert_eq!(post_cancel(&c, &ok, Some(DEFAULT_TOKEN), BODY).await.0, 200);
    assert_eq!(
        post_cancel(&c, &ok, Some(DEFAULT_TOKEN), BODY).await.0,
        404,
        "nothing left in progress"
    );
}

#[tokio::test]
async fn async_cancel_moves_not_started_running_completed() {
    let mut scenario = Scenario::default_scenario();
    scenario.publishers[0].offers[0].polls_until_done = 3;
    scenario.publishers[0].offers[0].retry_after_seconds = Some(7);
    let sim = simulator::spawn(scenario, "127.0.0.1:0").await.unwrap();
    let c = client();
    let resp = c
        .post(cancel_url(&sim, "contoso", "contoso-offer", "2017-10-31"))
        .bearer_auth(DEFAULT_TOKEN)
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["retry-after"], "7");
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/api/publishers/contoso/offers/contoso-offer/operations/"));
    let mut seen = vec![];
    for _ in 0..3 {
        let op: Value = get_json(&c, format!("{}{location}", sim.url())).await;
        assert_eq!(op["submissionType"], "cancel");
        seen.push(op["status"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ["notStarted", "running", "completed"]);
}

#[tokio::test]
async fn submissions_list_honours_the_status_filter() {
    let (sim, c) = sim().await;
    let base = format!(
        "{}/api/publishers/contoso/offers/contoso-offer/submissions/?api-version=2017-10-31",
        sim.url()
    );
    let all: Value = get_json(&c, &base).await;
    assert_eq!(all[0]["submissionType"], "publish");
    let none: Value = get_json(&c, format!("{base}&status=completed")).await;
    assert_eq!(none, json!([]));
    let running: Value = get_json(&c, format!("{base}&status=Running")).await;
    assert_eq!(running.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn token_endpoint_emulates_the_client_credentials_grant() {
    let (sim, c) = sim().await;
    let url = format!("{}/contoso-tenant/oauth2/token", sim.url());
    let form = |secret: &str| {
        vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", "offer-cancel-operator".to_string()),
            ("client_secret", secret.to_string()),
            ("resource", "https://cloudpartner.azure.com".to_string()),
        ]
    };
    let ok: Value = c
        .post(&url)
        .form(&form("simulated-client-secret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["token_type"], "Bearer");
    assert!(
        ok["expires_in"].is_string(),
        "v1 sends expires_in as a string"
    );
    let bad = c.post(&url).form(&form("wrong")).send().await.unwrap();
    assert_eq!(bad.status(), 401);
    let garbage = c.post(&url).body("\u{0}\u{1}").send().await.unwrap();
    assert_eq!(garbage.status(), 400);
    let stats: Value = c
        .get(format!("{}/_sim/stats", sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["tokensIssued"], 1);
}

#[tokio::test]
async fn faults_at_runtime_reset_and_stats() {
    let (sim, c) = sim().await;
    let set = |body: Value| {
        c.post(format!("{}/_sim/faults", sim.url()))
            .json(&body)
            .send()
    };
    assert_eq!(
        set(json!({"throttleRate": 1.0, "offer": "contoso/sync-offer"}))
            .await
            .unwrap()
            .status(),
        204
    );
    let url = cancel_url(&sim, "contoso", "sync-offer", "2017-10-31");
    let resp = c
        .post(&url)
        .bearer_auth(DEFAULT_TOKEN)
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(set(json!({"throttleRate": 3})).await.unwrap().status(), 400);
    assert_eq!(
        set(json!({"offer": "contoso/none"}))
            .await
            .unwrap()
            .status(),
        400
    );
    c.post(format!("{}/_sim/reset", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        post_cancel(&c, &url, Some(DEFAULT_TOKEN), BODY).await.0,
        200
    );
    let stats: Value = c
        .get(format!("{}/_sim/stats", sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["offers"]["contoso/sync-offer"]["cancelPosts"], 1);
    assert_eq!(stats["faultsInjected"], 0);
}

#[tokio::test]
async fn faults_are_deterministic_for_a_seed() {
    async fn codes(seed: u64) -> Vec<u16> {
        let mut scenario = Scenario::default_scenario();
        scenario.seed = seed;
        scenario.faults.error_rate = 0.5;
        let sim = simulator::spawn(scenario, "127.0.0.1:0").await.unwrap();
        let c = client();
        let url = format!(
            "{}/api/publishers/contoso/offers/contoso-offer/submissions/?api-version=2017-10-31",
            sim.url()
        );
        let mut out = vec![];
        for _ in 0..20 {
            out.push(
                c.get(&url)
                    .bearer_auth(DEFAULT_TOKEN)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
        }
        out
    }
    let a = codes(99).await;
    assert_eq!(a, codes(99).await);
    assert!(a.iter().any(|c| *c >= 500) && a.contains(&200), "{a:?}");
}

#[tokio::test]
async fn dropped_connections_reach_the_client_as_errors() {
    let (sim, c) = sim().await;
    c.post(format!("{}/_sim/faults", sim.url()))
        .json(&json!({"dropRate": 1.0}))
        .send()
        .await
        .unwrap();
    let url = format!(
        "{}/api/publishers/contoso/offers/contoso-offer/submissions/?api-version=2017-10-31",
        sim.url()
    );
    let result = async {
        c.get(&url)
            .bearer_auth(DEFAULT_TOKEN)
            .send()
            .await?
            .bytes()
            .await
    }
    .await;
    assert!(result.is_err(), "{result:?}");
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("api".to_string()),
        Just("publishers".to_string()),
        Just("contoso".to_string()),
        Just("offers".to_string()),
        Just("contoso-offer".to_string()),
        Just("cancel".to_string()),
        Just("operations".to_string()),
        Just("submissions".to_string()),
        Just("oauth2".to_string()),
        Just("v2.0".to_string()),
        Just("token".to_string()),
        Just("_sim".to_string()),
        Just("..".to_string()),
        "[a-zA-Z0-9$%._~-]{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, .. ProptestConfig::default() })]
    #[test]
    fn any_request_gets_a_well_formed_answer(
        method in prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE"), Just("PATCH")],
        segments in prop::collection::vec(segment(), 0..7),
        query in "[a-z=&%-]{0,20}",
        auth in prop::option::of("[ -~]{0,40}"),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (sim, c) = sim().await;
            let url = format!("{}/{}?{}", sim.url(), segments.join("/"), query);
            let mut req = c.request(method.parse().unwrap(), &url).body(body);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            if let Ok(resp) = req.send().await {
                let status = resp.status().as_u16();
                prop_assert!((200..600).contains(&status));
            }
            let alive = c.get(format!("{}/_sim/stats", sim.url())).send().await.unwrap();
            prop_assert_eq!(alive.status().as_u16(), 200);
            Ok(())
        })?;
    }
}

fn submissions_url(sim: &simulator::Running, offer: &str) -> String {
    format!(
        "{}/api/publishers/contoso/offers/{offer}/submissions/?api-version=2017-10-31",
        sim.url()
    )
}

#[tokio::test]
async fn the_list_shows_the_cancelled_operation_and_every_cancel_with_its_creation_time() {
    let (sim, c) = sim().await;
    let before: Value = get_json(&c, submissions_url(&sim, "sync-offer")).await;
    assert_eq!(before[0]["status"], "running", "{before}");
    let url = cancel_url(&sim, "contoso", "sync-offer", "2017-10-31");
    assert_eq!(
        post_cancel(&c, &url, Some(DEFAULT_TOKEN), BODY).await.0,
        200
    );
    let after = get_json(&c, submissions_url(&sim, "sync-offer")).await;
    assert_eq!(
        after[0]["status"], "canceled",
        "the stopped operation stays listed"
    );

    let started = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    let url = cancel_url(&sim, "contoso", "contoso-offer", "2017-10-31");
    assert_eq!(
        post_cancel(&c, &url, Some(DEFAULT_TOKEN), BODY).await.0,
        202
    );
    let list = get_json(&c, submissions_url(&sim, "contoso-offer")).await;
    let cancel = list
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["submissionType"] == "cancel")
        .expect("the cancel operation is listed");
    let created: jiff::Timestamp = cancel["createdDateTime"].as_str().unwrap().parse().unwrap();
    assert!(created >= started, "{created} < {started}");
    assert_eq!(
        list[0]["status"], "running",
        "still running until the cancel ends"
    );
}

#[tokio::test]
async fn a_request_dropped_after_processing_took_effect_and_counts() {
    let (sim, c) = sim().await;
    let set_drop_after = |rate: f64| {
        c.post(format!("{}/_sim/faults", sim.url()))
            .json(&json!({"dropAfterRate": rate, "offer": "contoso/sync-offer"}))
            .send()
    };
    assert!(set_drop_after(1.0).await.unwrap().status().is_success());
    let url = cancel_url(&sim, "contoso", "sync-offer", "2017-10-31");
    let sent = c
        .post(&url)
        .bearer_auth(DEFAULT_TOKEN)
        .body(BODY)
        .send()
        .await;
    let lost = match sent {
        Err(_) => true,
        Ok(answer) => answer.bytes().await.is_err(),
    };
    assert!(lost, "the answer never arrives");
    assert!(set_drop_after(0.0).await.unwrap().status().is_success());
    let stats = get_json(&c, format!("{}/_sim/stats", sim.url())).await;
    assert_eq!(stats["offers"]["contoso/sync-offer"]["cancelPosts"], 1);
    let list = get_json(&c, submissions_url(&sim, "sync-offer")).await;
    assert_eq!(list[0]["status"], "canceled", "yet CPP acted on it");
}

#[tokio::test]
async fn offer_templates_make_offers_on_first_use() {
    let scenario = Scenario::from_yaml(
        "principals: []\ntokens: [{token: t, publishers: [p]}]\npublishers:\n  - id: p\n    offerTemplates: [{id: burst-, cancel: sync}]\n",
    )
    .unwrap();
    let sim = simulator::spawn(scenario, "127.0.0.1:0").await.unwrap();
    let c = client();
    let post = |offer: &str| {
        c.post(format!(
            "{}/api/publishers/p/offers/{offer}/cancel?api-version=2017-10-31",
            sim.url()
        ))
        .bearer_auth("t")
        .body(BODY)
        .send()
    };
    assert_eq!(post("burst-17").await.unwrap().status().as_u16(), 200);
    assert_eq!(
        post("burst-17").await.unwrap().status().as_u16(),
        404,
        "nothing left to cancel"
    );
    assert_eq!(
        post("other").await.unwrap().status().as_u16(),
        404,
        "no such offer"
    );
}

/// A plain HTTP client. The workspace builds reqwest with TLS but no crypto
/// provider, so one is installed first (once; later calls find it there).
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

#[tokio::test]
async fn a_new_publish_starts_beside_the_ended_one_with_its_own_id() {
    let (sim, c) = sim().await;
    let list = format!(
        "{}/api/publishers/contoso/offers/sync-offer/submissions/?api-version=2017-10-31",
        sim.url()
    );
    let url = cancel_url(&sim, "contoso", "sync-offer", "2017-10-31");
    assert_eq!(
        post_cancel(&c, &url, Some(DEFAULT_TOKEN), BODY).await.0,
        200
    );
    let started = c
        .post(format!("{}/_sim/publish", sim.url()))
        .json(&json!({"offer": "contoso/sync-offer"}))
        .send()
        .await
        .unwrap();
    assert!(started.status().is_success());
    let id = started.json::<Value>().await.unwrap()["id"].clone();
    let ops = get_json(&c, &list).await;
    let statuses: Vec<_> = ops
        .as_array()
        .unwrap()
        .iter()
        .map(|op| (op["id"].clone(), op["status"].clone()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (json!("sync-offer-publish-1"), json!("canceled")),
            (id, json!("running")),
        ]
    );
    assert!(ops[1]["createdDateTime"].is_string());
    let unknown = c
        .post(format!("{}/_sim/publish", sim.url()))
        .json(&json!({"offer": "contoso/no-such-offer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
}

#[tokio::test]
async fn a_template_offers_latency_applies_from_its_first_request() {
    let scenario = Scenario::from_yaml(
        "publishers:\n  - id: contoso\n    offerTemplates:\n      - {id: slow-, cancel: sync, faults: {latencyMs: 400}}\n",
    )
    .unwrap();
    let sim = simulator::spawn(scenario, "127.0.0.1:0").await.unwrap();
    let c = client();
    let started = std::time::Instant::now();
    let url = cancel_url(&sim, "contoso", "slow-1", "2017-10-31");
    post_cancel(&c, &url, None, BODY).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
}

#[tokio::test]
async fn a_too_late_cancel_is_404_and_the_operation_is_listed_as_succeeded() {
    let scenario = Scenario::from_yaml(
        "tokens:\n  - {token: t, publishers: [contoso]}\npublishers:\n  - id: contoso\n    offers:\n      - {id: late, cancel: tooLate}\n",
    )
    .unwrap();
    let sim = simulator::spawn(scenario, "127.0.0.1:0").await.unwrap();
    let c = client();
    let url = cancel_url(&sim, "contoso", "late", "2017-10-31");
    assert_eq!(post_cancel(&c, &url, Some("t"), BODY).await.0, 404);
    let list = format!(
        "{}/api/publishers/contoso/offers/late/submissions/?api-version=2017-10-31",
        sim.url()
    );
    let ops: Value = c
        .get(list)
        .bearer_auth("t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ops[0]["status"], "succeeded");
}

// ---- Product Ingestion configure jobs.

const GRAPH_TOKEN: &str = "simulated-graph-token";

fn job_url(sim: &simulator::Running, id: &str, action: &str) -> String {
    format!(
        "{}/rp/product-ingestion/configure/{id}/{action}?$version=2022-03-01-preview2",
        sim.url()
    )
}

async fn job_call(c: &reqwest::Client, post: bool, url: &str, token: &str) -> (u16, Value) {
    let req = if post { c.post(url) } else { c.get(url) };
    let resp = req.bearer_auth(token).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_running_job_cancel_is_accepted_then_reads_cancelled() {
    let (sim, c) = sim().await;
    let id = simulator::scenario::DEFAULT_JOB_ID;
    let (status, body) = job_call(&c, true, &job_url(&sim, id, "cancel"), GRAPH_TOKEN).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jobStatus"], "running");
    let (_, polled) = job_call(&c, false, &job_url(&sim, id, "status"), GRAPH_TOKEN).await;
    assert_eq!(
        (polled["jobStatus"].clone(), polled["jobResult"].clone()),
        (json!("completed"), json!("cancelled")),
        "the default scenario's job reads cancelled on its first poll"
    );
    let (again, body) = job_call(&c, true, &job_url(&sim, id, "cancel"), GRAPH_TOKEN).await;
    assert_eq!(again, 400, "a second cancel of a completed job: {body}");
    assert_eq!(body["error"]["code"], "badRequest");
    let stats = get_json(&c, format!("{}/_sim/stats", sim.url())).await;
    assert_eq!(stats["jobs"][id]["cancelPosts"], 2);
}

#[tokio::test]
async fn each_api_refuses_the_others_token_and_counts_it() {
    let (sim, c) = sim().await;
    let id = simulator::scenario::DEFAULT_JOB_ID;
    let (status, _) = job_call(&c, true, &job_url(&sim, id, "cancel"), DEFAULT_TOKEN).await;
    assert_eq!(status, 401, "a CPP token at Product Ingestion");
    let cpp = cancel_url(&sim, "contoso", "sync-offer", "2017-10-31");
    let (status, _) = post_cancel(&c, &cpp, Some(GRAPH_TOKEN), BODY).await;
    assert_eq!(status, 401, "a Graph token at CPP");
    let stats = get_json(&c, format!("{}/_sim/stats", sim.url())).await;
    assert_eq!(stats["wrongAudience"], 2);
}

#[tokio::test]
async fn tokens_are_issued_for_either_audience_and_only_those() {
    let (sim, c) = sim().await;
    let token_for = |resource: &'static str| {
        let c = c.clone();
        let url = format!("{}/contoso-tenant/oauth2/token", sim.url());
        async move {
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", simulator::scenario::DEFAULT_CLIENT_ID),
                ("client_secret", simulator::scenario::DEFAULT_CLIENT_SECRET),
                ("resource", resource),
            ];
            let resp = c.post(url).form(&form).send().await.unwrap();
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (ok, graph) = token_for("https://graph.microsoft.com/").await;
    assert_eq!(ok, 200);
    let token = graph["access_token"].as_str().unwrap().to_string();
    let id = simulator::scenario::DEFAULT_JOB_ID;
    let (status, _) = job_call(&c, false, &job_url(&sim, id, "status"), &token).await;
    assert_eq!(status, 200);
    let (refused, _) = token_for("https://management.azure.com").await;
    assert_eq!(refused, 400);
}

#[tokio::test]
async fn job_answers_for_missing_forbidden_and_wrong_versions() {
    let (sim, c) = sim().await;
    let (missing, body) = job_call(
        &c,
        true,
        &job_url(&sim, "no-such-job", "cancel"),
        GRAPH_TOKEN,
    )
    .await;
    assert_eq!(missing, 404, "{body}");
    let started = c
        .post(format!("{}/_sim/jobs", sim.url()))
        .json(&json!({"publisher": "fabrikam", "job": {"id": "fab-1", "cancel": "immediate"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    let (forbidden, _) = job_call(&c, true, &job_url(&sim, "fab-1", "cancel"), GRAPH_TOKEN).await;
    assert_eq!(forbidden, 403);
    let old = job_url(&sim, simulator::scenario::DEFAULT_JOB_ID, "status")
        .replace("2022-03-01-preview2", "1999-01-01");
    let (version, _) = job_call(&c, false, &old, GRAPH_TOKEN).await;
    assert_eq!(version, 400);
    let bad = c
        .post(format!("{}/_sim/jobs", sim.url()))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn a_read_only_caller_reads_offers_and_jobs_but_its_cancels_are_403() {
    let scenario = Scenario::from_yaml(
        r#"
principals:
  - {tenantId: t, clientId: reader, clientSecret: s, publishers: [contoso], readOnly: true}
tokens:
  - {token: reader-token, publishers: [contoso], readOnly: true}
  - {token: reader-graph, publishers: [contoso], audience: graph, readOnly: true}
  - {token: writer-token, publishers: [contoso]}
publishers:
  - id: contoso
    offers: [{id: sync-offer, cancel: sync}]
    jobs: [{id: job-1, cancel: immediate}]
"#,
    )
    .unwrap();
    let sim = simulator::spawn(scenario, "127.0.0.1:0").await.unwrap();
    let c = client();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "reader"),
        ("client_secret", "s"),
        ("resource", "https://cloudpartner.azure.com"),
    ];
    let issued: Value = c
        .post(format!("{}/t/oauth2/token", sim.url()))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let principal = issued["access_token"].as_str().unwrap().to_string();
    let list = submissions_url(&sim, "sync-offer");
    let cancel = cancel_url(&sim, "contoso", "sync-offer", "2017-10-31");
    for token in [principal.as_str(), "reader-token"] {
        let read = c.get(&list).bearer_auth(token).send().await.unwrap();
        assert_eq!(read.status(), 200, "a reader reads the list");
        let (status, body) = post_cancel(&c, &cancel, Some(token), BODY).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "Forbidden");
    }
    let running: Value = c
        .get(&list)
        .bearer_auth("writer-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        running[0]["status"], "running",
        "a refused cancel stops nothing"
    );
    assert_eq!(
        post_cancel(&c, &cancel, Some("writer-token"), BODY).await.0,
        200
    );
    let (read, body) = job_call(&c, false, &job_url(&sim, "job-1", "status"), "reader-graph").await;
    assert_eq!((read, body["jobStatus"].clone()), (200, json!("running")));
    let (refused, _) = job_call(&c, true, &job_url(&sim, "job-1", "cancel"), "reader-graph").await;
    assert_eq!(refused, 403);
    let (_, after) = job_call(&c, false, &job_url(&sim, "job-1", "status"), "reader-graph").await;
    assert_eq!(
        after["jobStatus"], "running",
        "a refused cancel stops nothing"
    );
    let stats = get_json(&c, format!("{}/_sim/stats", sim.url())).await;
    assert_eq!(stats["offers"]["contoso/sync-offer"]["cancelPosts"], 3);
    assert_eq!(stats["jobs"]["job-1"]["cancelPosts"], 1);
}

#[tokio::test]
async fn unknown_targets_are_made_up_only_where_asked_and_named_ones_keep_their_answers() {
    let c = client();
    let plain = simulator::spawn(Scenario::default_scenario(), "127.0.0.1:0")
        .await
        .unwrap();
    let mine = cancel_url(&plain, "my-publisher", "my-offer", "2017-10-31");
    let (status, _) = post_cancel(&c, &mine, Some(DEFAULT_TOKEN), BODY).await;
    assert_eq!(status, 403, "a publisher the token may not use");
    let any = simulator::spawn(Scenario::any_target(), "127.0.0.1:0")
        .await
        .unwrap();
    let listed = get_json(
        &c,
        format!(
            "{}/api/publishers/my-publisher/offers/my-offer/submissions?api-version=2017-10-31",
            any.url()
        ),
    )
    .await;
    assert_eq!(listed[0]["status"], json!("running"), "{listed}");
    let mine = cancel_url(&any, "my-publisher", "my-offer", "2017-10-31");
    let (status, _) = post_cancel(&c, &mine, Some(DEFAULT_TOKEN), BODY).await;
    assert_eq!(status, 202, "made up: an asynchronous publish in progress");
    for (publisher, offer, expected) in [
        ("contoso", "no-such-offer", 404),
        ("fabrikam", "fabrikam-offer", 403),
        ("contoso", "sync-offer", 200),
    ] {
        let url = cancel_url(&any, publisher, offer, "2017-10-31");
        let (status, _) = post_cancel(&c, &url, Some(DEFAULT_TOKEN), BODY).await;
        assert_eq!(status, expected, "{publisher}/{offer}");
    }
    let job = job_url(&any, "5d1e6a7b-aaaa-4bbb-8ccc-000000000042", "cancel");
    let (status, body) = job_call(&c, true, &job, GRAPH_TOKEN).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jobResult"], json!("cancelled"), "{body}");
    let (status, _) = job_call(
        &c,
        true,
        &job_url(&any, "no-such-job", "cancel"),
        GRAPH_TOKEN,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn missing_wins_over_templates_and_made_up_offers_take_test_publishes() {
    let c = client();
    let scenario = Scenario::from_yaml(
        "makeUpUnknownTargets: true\ntokens: [{token: t, publishers: [contoso]}]\n\
         publishers:\n  - id: contoso\n    offerTemplates: [{id: no-, cancel: sync}]\n    missing: [no-such-offer]\n",
    )
    .unwrap();
    let sim = simulator::spawn(scenario, "127.0.0.1:0").await.unwrap();
    let missing = cancel_url(&sim, "contoso", "no-such-offer", "2017-10-31");
    assert_eq!(post_cancel(&c, &missing, Some("t"), BODY).await.0, 404);
    let templated = cancel_url(&sim, "contoso", "no-other", "2017-10-31");
    assert_eq!(post_cancel(&c, &templated, Some("t"), BODY).await.0, 200);
    let published = c
        .post(format!("{}/_sim/publish", sim.url()))
        .json(&json!({"offer": "elsewhere/made-up"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        published.status().as_u16(),
        200,
        "a made-up offer takes a publish"
    );
}

/// The job's detail (`GET configure/{jobId}`): each resource with its
/// `$schema`, `id` and `status`; what a cancel found processed stays
/// `succeeded`, the rest reads `cancelled`; the same admission as status.
#[tokio::test]
async fn a_jobs_detail_shows_what_its_cancel_left_applied() {
    let (sim, c) = sim().await;
    let id = simulator::scenario::DEFAULT_JOB_ID;
    let detail = format!(
        "{}/rp/product-ingestion/configure/{id}?$version=2022-03-01-preview2",
        sim.url()
    );
    let states = |body: &Value| -> Vec<String> {
        body["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["status"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let (status, running) = job_call(&c, false, &detail, GRAPH_TOKEN).await;
    assert_eq!(status, 200, "{running}");
    assert_eq!(states(&running), ["succeeded", "notStarted", "notStarted"]);
    assert!(
        running["resources"][0]["$schema"]
            .as_str()
            .unwrap_or_default()
            .contains("/schema/product/")
    );
    job_call(&c, true, &job_url(&sim, id, "cancel"), GRAPH_TOKEN).await;
    job_call(&c, false, &job_url(&sim, id, "status"), GRAPH_TOKEN).await;
    let (_, cancelled) = job_call(&c, false, &detail, GRAPH_TOKEN).await;
    assert_eq!(states(&cancelled), ["succeeded", "cancelled", "cancelled"]);
    let (refused, _) = job_call(&c, false, &detail, DEFAULT_TOKEN).await;
    assert_eq!(refused, 401, "a CPP token");
    let stats = get_json(&c, format!("{}/_sim/stats", sim.url())).await;
    assert_eq!(stats["jobs"][id]["detailGets"], 2);
}
