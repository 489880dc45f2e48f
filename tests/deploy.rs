//! deploy/: every manifest parses into its Kubernetes type, RBAC grants
//! exactly what tests/common/rbac.rs lists, the Deployment is hardened, the image
//! recipe is sane, and the Argo CD health check maps every phase.

mod common;

use common::rbac::{Access, LEADER_ELECTION, WATCHED, access, required};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use offer_cancel_operator::decide::Outcome;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn manifests(dir: &str) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // The Argo CD check's test data are resources of our own
                // kind, checked by argo_cd_health_test_cases_all_pass.
                if !path.ends_with("argocd") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn docs(path: &Path) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn typed<T: serde::de::DeserializeOwned>(v: &serde_yaml::Value, path: &Path) -> T {
    serde_yaml::from_value(v.clone()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn find<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let path = PathBuf::from(file);
    typed(&docs(&path)[0], &path)
}

#[test]
fn every_manifest_parses_into_its_kubernetes_type() {
    let mut kinds = BTreeSet::new();
    for path in manifests("deploy").into_iter().chain(manifests("crds")) {
        for doc in docs(&path) {
            let kind = doc["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{} has no kind", path.display()))
                .to_string();
            match kind.as_str() {
                "Kustomization" | "Component" => {
                    assert!(doc["resources"].is_sequence(), "{}", path.display())
                }
                "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(&doc, &path)),
                "NetworkPolicy" => drop(typed::<NetworkPolicy>(&doc, &path)),
                // The Prometheus Operator's kinds, whose types we do not
                // hold: their group, and a spec.
                "PodMonitor" | "PrometheusRule" => {
                    assert_eq!(
                        doc["apiVersion"],
                        "monitoring.coreos.com/v1",
                        "{}",
                        path.display()
                    );
                    assert!(doc["spec"].is_mapping(), "{}", path.display());
                }
                // kube-state-metrics' configuration file, not an object.
                "CustomResourceStateMetrics" => {
                    assert!(doc["spec"]["resources"].is_sequence(), "{}", path.display())
                }
                "Namespace" => drop(typed::<Namespace>(&doc, &path)),
                "ServiceAccount" => drop(typed::<ServiceAccount>(&doc, &path)),
                "ClusterRole" => drop(typed::<ClusterRole>(&doc, &path)),
                "ClusterRoleBinding" => drop(typed::<ClusterRoleBinding>(&doc, &path)),
                "Role" => drop(typed::<Role>(&doc, &path)),
                "RoleBinding" => drop(typed::<RoleBinding>(&doc, &path)),
                "Deployment" => drop(typed::<Deployment>(&doc, &path)),
                "Service" => drop(typed::<Service>(&doc, &path)),
                "CustomResourceDefinition" => drop(typed::<CustomResourceDefinition>(&doc, &path)),
                other => panic!("{}: unexpected kind {other}", path.display()),
            }
            kinds.insert(kind);
        }
    }
    for want in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "Deployment",
        "Service",
        "CustomResourceDefinition",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "PodMonitor",
        "PrometheusRule",
    ] {
        assert!(kinds.contains(want), "no {want} in deploy/");
    }
}

#[test]
fn user_roles_aggregate_into_edit_admin_and_view_and_grant_no_more() {
    let path = PathBuf::from("deploy/user-roles.yaml");
    let roles: Vec<ClusterRole> = docs(&path).iter().map(|d| typed(d, &path)).collect();
    let role = |name: &str| {
        roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let label = |r: &ClusterRole, key: &str| {
        r.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(&format!("rbac.authorization.k8s.io/{key}")))
            .cloned()
    };
    let editor = role("offercancel-editor");
    assert_eq!(label(editor, "aggregate-to-edit").as_deref(), Some("true"));
    assert_eq!(label(editor, "aggregate-to-admin").as_deref(), Some("true"));
    assert_eq!(label(editor, "aggregate-to-view"), None);
    let viewer = role("offercancel-viewer");
    assert_eq!(label(viewer, "aggregate-to-view").as_deref(), Some("true"));
    let viewer_grants = grants(viewer.rules.as_deref().unwrap_or_default());
    assert!(
        viewer_grants
            .iter()
            .all(|(_, _, v)| ["get", "list", "watch"].contains(&v.as_str())),
        "{viewer_grants:?}"
    );
    let editor_grants = grants(editor.rules.as_deref().unwrap_or_default());
    let on_status: Vec<_> = editor_grants
        .iter()
        .filter(|(_, r, _)| r.ends_with("/status"))
        .collect();
    assert!(
        on_status.iter().all(|(_, _, v)| v == "get"),
        "status is the operator's alone: {on_status:?}"
    );
    for verb in ["create", "update", "patch", "delete"] {
        let on = (
            "offercancel.dev".into(),
            "offercancellations".into(),
            verb.to_string(),
        );
        assert!(editor_grants.contains(&on), "the editor may {verb}");
    }
    assert!(
        editor_grants
            .iter()
            .chain(&viewer_grants)
            .all(|(g, _, _)| g == "offercancel.dev")
    );
}

#[test]
fn the_deployment_spreads_its_replicas_and_a_drain_evicts_one_at_a_time() {
    let deployment: Deployment = find("deploy/base/deployment.yaml");
    let spec = deployment.spec.expect("spec");
    let pod = spec.template.spec.expect("pod spec");
    let spread = pod.topology_spread_constraints.expect("topology spread");
    assert!(
        spread
            .iter()
            .any(|c| c.topology_key == "kubernetes.io/hostname" && c.max_skew == 1)
    );
    let pdb: PodDisruptionBudget = find("deploy/base/pdb.yaml");
    let pdb_spec = pdb.spec.expect("pdb spec");
    assert_eq!(
        pdb_spec.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    assert_eq!(
        pdb_spec.selector.and_then(|s| s.match_labels),
        spec.selector.match_labels,
        "the budget covers the Deployment's pods"
    );
}

#[test]
fn the_network_policy_lets_out_dns_the_api_server_and_https_only() {
    let policy: NetworkPolicy = find("deploy/components/network-policy/networkpolicy.yaml");
    let spec = policy.spec.expect("spec");
    let ports = |rules: Vec<Vec<k8s_openapi::api::networking::v1::NetworkPolicyPort>>| {
        rules
            .into_iter()
            .flatten()
            .map(|p| {
                let port = match p.port {
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => n,
                    other => panic!("numbered ports only: {other:?}"),
                };
                (p.protocol.unwrap_or_default(), port)
            })
            .collect::<BTreeSet<_>>()
    };
    let egress = spec.egress.unwrap_or_default();
    assert!(
        egress.iter().all(|e| e.to.is_none()),
        "by port, to any address"
    );
    let out = ports(
        egress
            .into_iter()
            .map(|e| e.ports.unwrap_or_default())
            .collect(),
    );
    let want: BTreeSet<(String, i32)> = [("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6443)]
        .map(|(p, n)| (p.to_string(), n))
        .into();
    assert_eq!(out, want);
    let ingress = spec.ingress.unwrap_or_default();
    let inward = ports(
        ingress
            .into_iter()
            .map(|i| i.ports.unwrap_or_default())
            .collect(),
    );
    assert_eq!(inward, [("TCP".to_string(), 8080)].into());
    assert_eq!(
        spec.policy_types,
        Some(vec!["Ingress".to_string(), "Egress".to_string()])
    );
}

/// The alerts of the monitoring component, through promtool: `check rules`
/// on their rules, and `test rules` with tests/monitoring/rules_test.yaml
/// (each alert once firing, once silent). promtool comes from Debian's
/// `prometheus` package, which tests/run-all.sh installs.
#[test]
fn the_alerts_pass_promtool_check_and_their_unit_tests() {
    let rule: serde_yaml::Value = docs(Path::new(
        "deploy/components/monitoring/prometheusrule.yaml",
    ))[0]
        .clone();
    let groups =
        serde_yaml::Mapping::from_iter([("groups".into(), rule["spec"]["groups"].clone())]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml::to_string(&groups).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        "tests/monitoring/rules_test.yaml",
        dir.path().join("rules_test.yaml"),
    )
    .unwrap();
    let alerts: BTreeSet<String> = rule["spec"]["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|r| r["alert"].as_str().map(String::from))
        .collect();
    let tests = std::fs::read_to_string("tests/monitoring/rules_test.yaml").unwrap();
    for alert in &alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "{alert} has no promtool test"
        );
        let section = format!("## {alert}");
        let runbooks = std::fs::read_to_string("docs/operations.md").unwrap();
        assert!(
            runbooks.contains(&section),
            "{alert} has no runbook in docs/operations.md"
        );
    }
    assert_eq!(alerts.len(), 6);
    for args in [
        &["check", "rules", "rules.yaml"][..],
        &["test", "rules", "rules_test.yaml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| {
                panic!("promtool is missing ({e}): tests/run-all.sh installs Debian's prometheus package")
            });
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {args:?}: {shown}");
    }
}

const ARGO_ACTIONS: &str =
    "deploy/argocd/resource_customizations/offercancel.dev/OfferCancellation/actions";

/// Runs a Lua script of the Argo CD customization (a path under
/// [`ARGO_CHECK`]) on `obj`, as Argo CD does (gopher-lua is Lua 5.1).
fn run_lua(script: &str, obj: &serde_json::Value) -> serde_json::Value {
    use mlua::LuaSerdeExt;
    let lua = mlua::Lua::new();
    let options = mlua::serde::SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    lua.globals()
        .set("obj", lua.to_value_with(obj, options).unwrap())
        .unwrap();
    let script = std::fs::read_to_string(format!("{ARGO_CHECK}/{script}")).unwrap();
    let out: mlua::Value = lua.load(&script).eval().unwrap();
    lua.from_value(out).unwrap()
}

fn yaml_file(path: &str) -> serde_json::Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// action_test.yaml, as Argo CD's own runner reads it: the retry is
/// offered on Failed resources only, and sets a fresh retry annotation.
#[test]
fn argo_cd_retry_action_is_offered_on_failed_only_and_asks_for_a_retry() {
    let cases = yaml_file(&format!("{ARGO_ACTIONS}/action_test.yaml"));
    let discovery = cases["discoveryTests"].as_array().unwrap();
    assert!(discovery.len() >= 4);
    for case in discovery {
        let input = yaml_file(&format!(
            "{ARGO_ACTIONS}/{}",
            case["inputPath"].as_str().unwrap()
        ));
        let offered = run_lua("actions/discovery.lua", &input);
        let names: BTreeSet<String> = offered
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let want: BTreeSet<String> = case["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, want, "{}", case["inputPath"]);
        let failed = input["status"]["phase"] == "Failed";
        assert_eq!(names.contains("retry"), failed, "{}", case["inputPath"]);
    }
    for case in cases["actionTests"].as_array().unwrap() {
        assert_eq!(case["action"], "retry");
        let input = yaml_file(&format!(
            "{ARGO_ACTIONS}/{}",
            case["inputPath"].as_str().unwrap()
        ));
        let mut out = run_lua("actions/retry/action.lua", &input);
        let mut expected = yaml_file(&format!(
            "{ARGO_ACTIONS}/{}",
            case["expectedOutputPath"].as_str().unwrap()
        ));
        let key = "offercancel.dev/retry";
        let value = out["metadata"]["annotations"][key]
            .as_str()
            .unwrap()
            .to_string();
        assert!(value.parse::<jiff::Timestamp>().is_ok(), "a time: {value}");
        assert_ne!(
            Some(value.as_str()),
            input["metadata"]["annotations"][key].as_str()
        );
        // The rest is as expected; the value is the time of the click.
        out["metadata"]["annotations"][key] = "the time of the click".into();
        expected["metadata"]["annotations"][key] = "the time of the click".into();
        assert_eq!(out, expected);
    }
}

fn grants(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules {
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        for g in &groups {
            for r in &resources {
                for v in &rule.verbs {
                    assert!(g != "*" && r != "*" && v != "*", "no wildcards: {rule:?}");
                    out.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    out
}

fn table(accesses: &[Access]) -> BTreeSet<(String, String, String)> {
    accesses
        .iter()
        .map(|a| {
            (
                a.group.to_string(),
                a.resource.to_string(),
                a.verb.to_string(),
            )
        })
        .collect()
}

#[test]
fn cluster_role_grants_exactly_the_calls_the_code_makes() {
    let role: ClusterRole = find("deploy/clusterrole.yaml");
    assert_eq!(grants(&role.rules.unwrap()), table(WATCHED));
    let namespaced: Role = find("deploy/namespaced/role.yaml");
    assert_eq!(grants(&namespaced.rules.unwrap()), table(WATCHED));
    let lease: Role = find("deploy/base/lease-role.yaml");
    assert_eq!(grants(&lease.rules.unwrap()), table(LEADER_ELECTION));
    assert_eq!(
        lease.metadata.namespace.as_deref(),
        Some("offercancel-system")
    );
}

fn check_binding(role_ref: &RoleRef, subjects: &[Subject], kind: &str, name: &str) {
    assert_eq!(
        (role_ref.kind.as_str(), role_ref.name.as_str()),
        (kind, name)
    );
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, "offer-cancel-operator");
    assert_eq!(subjects[0].namespace.as_deref(), Some("offercancel-system"));
}

#[test]
fn bindings_tie_the_roles_to_the_service_account() {
    let b: ClusterRoleBinding = find("deploy/clusterrolebinding.yaml");
    check_binding(
        &b.role_ref,
        &b.subjects.unwrap(),
        "ClusterRole",
        "offer-cancel-operator",
    );
    let b: RoleBinding = find("deploy/namespaced/rolebinding.yaml");
    check_binding(
        &b.role_ref,
        &b.subjects.unwrap(),
        "Role",
        "offer-cancel-operator",
    );
    let b: RoleBinding = find("deploy/base/lease-rolebinding.yaml");
    check_binding(
        &b.role_ref,
        &b.subjects.unwrap(),
        "Role",
        "offer-cancel-operator-leader-election",
    );
}

#[test]
fn deployment_is_hardened_and_probes_the_metrics_port() {
    let d: Deployment = find("deploy/base/deployment.yaml");
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("offer-cancel-operator")
    );
    let pod_sc = pod.security_context.unwrap();
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert_eq!(pod_sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let c = &pod.containers[0];
    let args = c.args.clone().unwrap();
    assert_eq!(args, ["controller", "--leader-elect"]);
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
    let res = c.resources.clone().unwrap();
    assert!(res.requests.is_some() && res.limits.is_some());
    let port = &c.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("metrics"), 8080)
    );
    let live = c.liveness_probe.clone().unwrap().http_get.unwrap();
    let ready = c.readiness_probe.clone().unwrap().http_get.unwrap();
    assert_eq!(live.path.as_deref(), Some("/healthz"));
    assert_eq!(ready.path.as_deref(), Some("/readyz"));
    let env: Vec<String> = c.env.clone().unwrap().into_iter().map(|e| e.name).collect();
    assert!(env.contains(&"POD_NAME".to_string()) && env.contains(&"POD_NAMESPACE".to_string()));
}

#[test]
fn dockerfile_is_multi_stage_locked_and_non_root() {
    const KEYWORDS: &[&str] = &[
        "FROM",
        "RUN",
        "CMD",
        "LABEL",
        "EXPOSE",
        "ENV",
        "ADD",
        "COPY",
        "ENTRYPOINT",
        "VOLUME",
        "USER",
        "WORKDIR",
        "ARG",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "SHELL",
    ];
    let text = std::fs::read_to_string("Dockerfile").unwrap();
    let joined = text.replace("\\\n", " ");
    let instructions: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for line in &instructions {
        let word = line.split_whitespace().next().unwrap();
        assert!(
            KEYWORDS.contains(&word),
            "not a Dockerfile instruction: {line}"
        );
    }
    let froms: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "multi-stage");
    assert!(
        joined.contains("cargo build --release --locked --no-default-features"),
        "the image leaves the simulator out"
    );
    let last_stage = joined.rsplit("FROM ").next().unwrap();
    assert!(
        last_stage.contains("USER 65532"),
        "final stage runs as non-root"
    );
    assert!(last_stage.contains("COPY --from=build"));
    for copied in instructions
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        for src in copied
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .split_last()
            .unwrap()
            .1
        {
            assert!(
                Path::new(src.trim_end_matches('/')).exists(),
                "COPY of missing {src}"
            );
        }
    }
}

/// The Argo CD health check, in the layout Argo CD uses for built-in ones.
const ARGO_CHECK: &str = "deploy/argocd/resource_customizations/offercancel.dev/OfferCancellation";

fn argo_health(resource: &offer_cancel_operator::crd::OfferCancellation) -> (String, String) {
    argo_health_of(&serde_json::to_value(resource).unwrap())
}

/// Runs health.lua on an object: its status and message.
fn argo_health_of(value: &serde_json::Value) -> (String, String) {
    let hs = run_lua("health.lua", value);
    let text = |k: &str| hs[k].as_str().unwrap_or_default().to_string();
    (text("status"), text("message"))
}

#[test]
fn argo_cd_health_maps_every_phase() {
    use common::{resource, status_after};
    use offer_cancel_operator::operation::{
        CancelOutcome, Operation, OperationState, PolledOperation,
    };
    let accepted = Outcome::Answered(CancelOutcome::Accepted {
        http: 202,
        location: Some("/api/x".into()),
        retry_after: None,
    });
    let failed = Outcome::Rejected {
        reason: "Forbidden",
        message: "CPP cancel call answered HTTP 403".into(),
        cancel_status: Some(403),
    };
    let polled = Outcome::Polled(PolledOperation {
        operation: Operation {
            status: "running".into(),
            ..Operation::default()
        },
        state: OperationState::InProgress,
        location: None,
        retry_after: None,
    });
    let cases = [
        (vec![], "Progressing"),
        (
            vec![offer_cancel_operator::fixtures::intent()],
            "Progressing",
        ),
        (
            vec![
                offer_cancel_operator::fixtures::intent(),
                accepted.clone(),
                polled,
            ],
            "Progressing",
        ),
        (
            vec![
                offer_cancel_operator::fixtures::intent(),
                Outcome::Answered(CancelOutcome::Cancelled),
            ],
            "Healthy",
        ),
        (
            vec![offer_cancel_operator::fixtures::intent(), failed],
            "Degraded",
        ),
    ];
    for (outcomes, want) in cases {
        let status = (!outcomes.is_empty()).then(|| status_after("contoso-offer", outcomes));
        let expected_message = status.as_ref().and_then(|s| s.message.clone());
        let (health, message) = argo_health(&resource("contoso-offer", status));
        assert_eq!(health, want);
        if let Some(m) = expected_message {
            assert_eq!(message, m, "the status message is passed through");
        }
    }
    // A status that has not seen the latest spec is not trusted.
    let mut stale = resource(
        "contoso-offer",
        Some(status_after(
            "contoso-offer",
            vec![
                offer_cancel_operator::fixtures::intent(),
                Outcome::Answered(CancelOutcome::Cancelled),
            ],
        )),
    );
    stale.metadata.generation = Some(2);
    assert_eq!(argo_health(&stale).0, "Progressing");
    // A safe ending is Healthy only while nothing was sent: an Expired
    // after a cancel whose answer was lost is a failure.
    use offer_cancel_operator::decide::Targeting;
    let idle = vec![Outcome::Targeted(Targeting::NothingToCancel(None))];
    let idle = resource("contoso-offer", Some(status_after("contoso-offer", idle)));
    assert_eq!(argo_health(&idle).0, "Healthy");
    let lost = vec![offer_cancel_operator::fixtures::intent(), Outcome::Expired];
    let lost = resource("contoso-offer", Some(status_after("contoso-offer", lost)));
    assert_eq!(argo_health(&lost).0, "Degraded");
}

/// A preview waits for the user: Suspended, neither healthy nor failed;
/// once confirmed (a new generation) it is Progressing again.
#[test]
fn argo_cd_shows_a_preview_as_suspended_until_confirmed() {
    let previewed = offer_cancel_operator::crd::OfferCancellation::test().previewed();
    let (health, message) = argo_health(&previewed);
    assert_eq!(health, "Suspended", "{message}");
    assert!(
        message.contains("would cancel publish publish-1"),
        "{message}"
    );
    assert_eq!(argo_health(&previewed.confirmed()).0, "Progressing");
}

/// Where each reason the operator writes stands, as its transitions write
/// it (phase; Ready, Reconciling, Stalled; cancels sent), and what Argo CD
/// shows then. A reason without a row here fails: every reason has its
/// case.
fn argo_cases(reason: &str) -> Vec<(&'static str, [bool; 3], u32, &'static str)> {
    const WORKING: [bool; 3] = [false, true, false];
    const DONE: [bool; 3] = [true, false, false];
    const STALLED: [bool; 3] = [false, false, true];
    match reason {
        "CancelRequested" | "CancelResent" | "Retrying" => {
            vec![("Pending", WORKING, 1, "Progressing")]
        }
        "Resuming" => vec![
            ("Pending", WORKING, 1, "Progressing"),
            ("Cancelling", WORKING, 1, "Progressing"),
        ],
        "CancelInProgress" => vec![("Cancelling", WORKING, 1, "Progressing")],
        "TransientError" => vec![
            ("Pending", WORKING, 0, "Progressing"),
            ("Cancelling", WORKING, 1, "Progressing"),
        ],
        "CancelShared" => vec![
            ("Pending", WORKING, 0, "Progressing"),
            ("Cancelled", DONE, 0, "Healthy"),
        ],
        "Cancelled" | "NothingInProgress" => vec![("Cancelled", DONE, 1, "Healthy")],
        "PreviewReady" => vec![("Pending", WORKING, 0, "Suspended")],
        "CredentialsUnavailable" => vec![
            ("Pending", STALLED, 0, "Degraded"),
            ("Cancelling", STALLED, 1, "Degraded"),
        ],
        // Nothing sent, by design: the safe endings; the same reason after
        // a cancel was sent (too late, or its answer lost past notAfter)
        // is a failure.
        "OperationEnded" | "JobAlreadyCompleted" | "NothingToCancel" | "Expired" => vec![
            ("Failed", STALLED, 0, "Healthy"),
            ("Failed", STALLED, 1, "Degraded"),
        ],
        "OperationNotFound"
        | "OfferNotFound"
        | "JobNotFound"
        | "CredentialsRejected"
        | "InvalidSpec"
        | "Timeout"
        | "OperationFailed"
        | "LocationUnavailable"
        | "InvalidLocation"
        | "MalformedResponse"
        | "BadRequest"
        | "Unauthorized"
        | "Forbidden"
        | "NotFound"
        | "Conflict"
        | "Rejected" => {
            vec![("Failed", STALLED, 1, "Degraded")]
        }
        // An Event's reason only: no condition carries it.
        "CancelFailed" | "CancelAccepted" => vec![],
        other => panic!("{other}: no Argo CD health case; add one here"),
    }
}

#[test]
fn argo_cd_health_has_a_case_for_every_reason() {
    use offer_cancel_operator::decide::reason;
    for &why in reason::ALL {
        for (phase, [ready, reconciling, stalled], attempts, want) in argo_cases(why) {
            let condition = |kind: &str, on: bool| {
                serde_json::json!({"type": kind, "status": if on { "True" } else { "False" },
                    "reason": why, "message": format!("{why} here"), "observedGeneration": 1,
                    "lastTransitionTime": "2026-11-25T10:00:00Z"})
            };
            let object = serde_json::json!({
                "apiVersion": "offercancel.dev/v1alpha1", "kind": "OfferCancellation",
                "metadata": {"name": "x", "generation": 1},
                "spec": {"publisherId": "contoso", "offerId": "o", "credentialsSecretRef": {"name": "s"}},
                "status": {"phase": phase, "observedGeneration": 1, "message": format!("{why} here"),
                    "attempts": attempts,
                    "conditions": [condition("Ready", ready), condition("Reconciling", reconciling),
                                   condition("Stalled", stalled)]}
            });
            let (health, message) = argo_health_of(&object);
            assert_eq!(health, want, "{why} in {phase} after {attempts} cancel(s)");
            assert_eq!(message, format!("{why} here"));
        }
    }
}

/// Every case of health_test.yaml, as Argo CD's own test runner reads it,
/// so the folder can be proposed upstream as it is.
#[test]
fn argo_cd_health_test_cases_all_pass() {
    let cases: serde_json::Value = serde_yaml::from_str(
        &std::fs::read_to_string(format!("{ARGO_CHECK}/health_test.yaml")).unwrap(),
    )
    .unwrap();
    let cases = cases["tests"].as_array().expect("tests list");
    assert!(
        cases.len() >= 7,
        "every phase, the stale status and NothingInProgress"
    );
    for case in cases {
        let input = case["inputPath"].as_str().unwrap();
        let object: serde_json::Value = serde_yaml::from_str(
            &std::fs::read_to_string(format!("{ARGO_CHECK}/{input}")).unwrap(),
        )
        .unwrap();
        // The input must be an object the operator could have written.
        serde_json::from_value::<offer_cancel_operator::crd::OfferCancellation>(object.clone())
            .unwrap_or_else(|e| panic!("{input}: {e}"));
        let (status, message) = argo_health_of(&object);
        assert_eq!(status, case["healthStatus"]["status"], "{input}");
        assert_eq!(message, case["healthStatus"]["message"], "{input}");
    }
}

#[test]
fn readme_carries_the_same_argo_cd_health_check() {
    let lua = std::fs::read_to_string(format!("{ARGO_CHECK}/health.lua")).unwrap();
    let readme = std::fs::read_to_string("README.md").unwrap();
    let indented: String = lua
        .lines()
        .map(|l| {
            if l.trim().is_empty() {
                "\n".to_string()
            } else {
                format!("    {l}\n")
            }
        })
        .collect();
    assert!(
        readme.contains(&indented),
        "README's argocd-cm snippet differs from {ARGO_CHECK}/health.lua"
    );
}

#[test]
fn requests_map_to_permissions() {
    let status = "/apis/offercancel.dev/v1alpha1/namespaces/default/offercancellations/x/status";
    assert_eq!(
        required("PATCH", status, "fieldManager=a&force=true"),
        Some(access(
            "offercancel.dev",
            "offercancellations/status",
            "patch"
        ))
    );
    assert_eq!(
        required("GET", "/api/v1/namespaces/d/secrets/s", ""),
        Some(access("", "secrets", "get"))
    );
    assert_eq!(
        required("GET", "/api/v1/secrets", "watch=true&resourceVersion=1"),
        Some(access("", "secrets", "watch"))
    );
    assert_eq!(
        required(
            "GET",
            "/apis/offercancel.dev/v1alpha1/offercancellations",
            "limit=500"
        ),
        Some(access("offercancel.dev", "offercancellations", "list"))
    );
    assert_eq!(
        required("DELETE", "/api/v1/namespaces/d/secrets/s", ""),
        None,
        "not granted"
    );
    assert_eq!(
        required(
            "PATCH",
            "/apis/offercancel.dev/v1alpha1/namespaces/d/offercancellations/x",
            ""
        ),
        None
    );
}
