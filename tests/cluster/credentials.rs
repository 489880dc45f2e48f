//! Credentials without long-lived secrets, on the real control plane:
//! workload identity (a token the API server issues to the namespace's own
//! ServiceAccount, verified by the simulator against the API server's
//! keys) and client certificates.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, PostParams};
use offer_cancel_operator::crd::Phase;
use offer_cancel_operator::fixtures::certificate::{self, Validity};
use std::time::Duration;

use crate::envtest::{ControlPlane, wait_phase};
use crate::support::{self, Fixture, ScenarioYaml};

/// The issuer the control plane's ServiceAccount tokens name.
const ISSUER: &str = "https://kubernetes.default.svc";

/// Entra ID reads an issuer's keys without credentials: so may the
/// simulator (Kubernetes' documented set-up for a public issuer).
async fn issuer_keys_readable_anonymously(client: &kube::Client) {
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "oidc-discovery-anonymous"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "system:service-account-issuer-discovery"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                      "name": "system:unauthenticated"}]
    }))
    .expect("binding");
    support::create_unless_there(&Api::<ClusterRoleBinding>::all(client.clone()), &binding).await;
}

async fn service_account(client: &kube::Client, ns: &str, name: &str) {
    let mut account = ServiceAccount::default();
    account.metadata.name = Some(name.into());
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &account)
        .await
        .expect("create ServiceAccount");
}

/// An app of contoso's whose federated credential names `subject`.
fn federated_app(scenario: &mut ScenarioYaml, client_id: &str, subject: &str) {
    scenario.push(
        "principals",
        serde_json::json!({
            "tenantId": "t", "clientId": client_id, "publishers": ["contoso"],
            "federatedCredentials": [{"issuer": ISSUER, "subject": subject}]
        }),
    );
}

async fn create(fx: &Fixture, name: &str, offer: &str, secret: &str) {
    let resource = support::resource_using(name, offer, secret);
    fx.api
        .create(&PostParams::default(), &resource)
        .await
        .expect("create resource");
}

/// `name` once it is Stalled with CredentialsUnavailable.
async fn stalled(
    fx: &Fixture,
    name: &str,
    within: Duration,
) -> offer_cancel_operator::crd::OfferCancellation {
    let started = std::time::Instant::now();
    loop {
        let r = fx.api.get(name).await.expect("read resource");
        let status = serde_json::to_value(&r.status).expect("status");
        if crate::stalled_reason(&status) == "CredentialsUnavailable" {
            return r;
        }
        assert!(started.elapsed() < within, "{name} never Stalled: {status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn message_of(r: &offer_cancel_operator::crd::OfferCancellation) -> String {
    r.status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

/// A namespace's resource is Cancelled with one POST using a token for
/// its own ServiceAccount, checked against the API server's keys; a
/// Secret naming an app whose federated credential is another
/// namespace's is refused by Entra (the simulator) and says which subject
/// the app would need; a missing ServiceAccount waits, Stalled, and the
/// cancel goes on once it exists. The operator runs as its own
/// ServiceAccount with deploy/'s RBAC, so that RBAC is shown to suffice.
pub async fn workload_identity_uses_only_the_namespaces_own_service_account(plane: &ControlPlane) {
    let admin = plane.admin_client().await;
    issuer_keys_readable_anonymously(&admin).await;
    let fx = Fixture::with_scenario(plane, "wi", |s| {
        let ns = s.ns.clone();
        s.push(
            "issuers",
            serde_json::json!({
                "issuer": ISSUER, "jwksUri": plane.jwks_uri(),
                "caFile": plane.serving_certificate().display().to_string()
            }),
        );
        federated_app(
            s,
            "wi-app",
            &format!("system:serviceaccount:{ns}:offercancel"),
        );
        federated_app(s, "team-a-app", "system:serviceaccount:team-a:offercancel");
        federated_app(s, "late-app", &format!("system:serviceaccount:{ns}:late"));
    })
    .await;
    let ns = fx.ns.clone();
    service_account(&fx.client, &ns, "offercancel").await;
    let wi = |client: &'static str| {
        [
            ("tenantId", "t"),
            ("clientId", client),
            ("workloadIdentity", "true"),
        ]
    };
    support::add_secret(&fx.client, &ns, "wi", &wi("wi-app")).await;
    support::add_secret(&fx.client, &ns, "team-a", &wi("team-a-app")).await;
    let mut late = wi("late-app").to_vec();
    late.push(("serviceAccountName", "late"));
    support::add_secret(&fx.client, &ns, "late", &late).await;
    support::apply_deploy_rbac(&fx.client).await;
    let lease = format!("wi-{ns}");
    let flags = [
        "--leader-elect",
        "--lease-namespace",
        "offercancel-system",
        "--lease-name",
        &lease,
    ];
    let operator = fx.operator_as(plane, true, &flags);

    create(&fx, "own", "sync-wi-own", "wi").await;
    create(&fx, "borrowed", "sync-wi-borrowed", "team-a").await;
    create(&fx, "late", "sync-wi-late", "late").await;
    let own = wait_phase(&fx.api, "own", Phase::Cancelled, Duration::from_secs(60)).await;
    assert_eq!(fx.posts("sync-wi-own").await, 1, "{}", message_of(&own));

    let borrowed = wait_phase(&fx.api, "borrowed", Phase::Failed, Duration::from_secs(60)).await;
    let message = message_of(&borrowed);
    let subject = format!("system:serviceaccount:{ns}:offercancel");
    assert!(
        message.contains("AADSTS700213") && message.contains(&subject),
        "the refusal names the subject the app would need: {message}"
    );
    assert_eq!(fx.posts("sync-wi-borrowed").await, 0);

    let waiting = stalled(&fx, "late", Duration::from_secs(30)).await;
    let status = waiting.status.clone().unwrap_or_default();
    assert_eq!(
        status.phase,
        Some(Phase::Pending),
        "{}",
        message_of(&waiting)
    );
    assert!(
        message_of(&waiting).contains(&format!("ServiceAccount {ns}/late not found")),
        "{}",
        message_of(&waiting)
    );
    service_account(&fx.client, &ns, "late").await;
    wait_phase(&fx.api, "late", Phase::Cancelled, Duration::from_secs(75)).await;
    assert_eq!(fx.posts("sync-wi-late").await, 1);

    let log = operator.log_text();
    assert!(!log.contains("eyJ"), "no token in the log");
    assert!(!log.contains("Forbidden"), "the operator hit RBAC:\n{log}");
    operator.sigkill();
    fx.cleanup().await;
}

/// An app's certificate signs its client assertion: Cancelled with one
/// POST. An expired certificate, or one whose PEM is unreadable, ends
/// Failed/CredentialsRejected naming the key, and sends nothing; the
/// PEM is nowhere in status.
pub async fn certificate_credentials_cancel_and_an_expired_one_is_refused(plane: &ControlPlane) {
    let current = certificate::made(Validity::Current);
    let expired = certificate::made(Validity::Expired);
    let registered = [current.cert_pem.clone(), expired.cert_pem.clone()];
    let fx = Fixture::with_scenario(plane, "cert", |s| {
        s.push(
            "principals",
            serde_json::json!({
                "tenantId": "t", "clientId": "cert-app", "publishers": ["contoso"],
                "certificates": registered,
            }),
        );
    })
    .await;
    let secret = |pem: &str| {
        vec![
            ("tenantId", "t".to_string()),
            ("clientId", "cert-app".to_string()),
            ("clientCertificate", pem.to_string()),
        ]
    };
    let garbled = current.pem.replace("MII", "###");
    for (name, pem) in [
        ("current", &current.pem),
        ("expired", &expired.pem),
        ("garbled", &garbled),
    ] {
        let data = secret(pem);
        let data: Vec<(&str, &str)> = data.iter().map(|(k, v)| (*k, v.as_str())).collect();
        support::add_secret(&fx.client, &fx.ns, name, &data).await;
    }
    let operator = fx.operator(plane, &[]);
    create(&fx, "current", "sync-cert-current", "current").await;
    create(&fx, "expired", "sync-cert-expired", "expired").await;
    create(&fx, "garbled", "sync-cert-garbled", "garbled").await;
    wait_phase(
        &fx.api,
        "current",
        Phase::Cancelled,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(fx.posts("sync-cert-current").await, 1);
    for name in ["expired", "garbled"] {
        let failed = wait_phase(&fx.api, name, Phase::Failed, Duration::from_secs(60)).await;
        let status = failed.status.clone().unwrap_or_default();
        let text = serde_json::to_string(&status).expect("status");
        assert!(
            text.contains("CredentialsRejected")
                && message_of(&failed).contains("clientCertificate"),
            "{name}: {text}"
        );
        assert!(
            !text.contains("MII") && !text.contains("BEGIN"),
            "{name}: {text}"
        );
        assert_eq!(fx.posts(&format!("sync-cert-{name}")).await, 0, "{name}");
    }
    assert!(message_of(&fx.api.get("expired").await.expect("read")).contains("expired"));
    let log = operator.log_text();
    assert!(
        !log.contains("MII") && !log.contains("PRIVATE KEY"),
        "no key in the log"
    );
    operator.sigkill();
    fx.cleanup().await;
}
