//! A real control plane for the cluster suite, as controller-runtime's
//! envtest gives Go operators: etcd and kube-apiserver from
//! `KUBEBUILDER_ASSETS`, started in a temporary directory on free ports,
//! stopped when dropped. (A kind cluster is exercised by the `e2e` feature's
//! suite, tests/e2e_cluster.rs.)

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, CustomResourceExt};
use offer_cancel_operator::crd::{OfferCancellation, Phase};
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "envtest-admin-token";
/// The ServiceAccount deploy/ binds its roles to.
pub const OPERATOR_TOKEN: &str = "envtest-operator-token";
const OPERATOR_USER: &str = "system:serviceaccount:offercancel-system:offer-cancel-operator";

/// Where the assets are looked for when `KUBEBUILDER_ASSETS` is unset: the
/// copy beside the checkout, with etcd from PATH.
const DEFAULT_APISERVER: &str = "../shared/envtest/kube-apiserver";

const HOW_TO_GET_ASSETS: &str = "the cluster suite needs a Kubernetes control plane: set \
KUBEBUILDER_ASSETS to a folder holding kube-apiserver and etcd (`setup-envtest use -p path` \
prints one; tests/run-all.sh installs Debian's etcd-server), and openssl on PATH. For a kind \
cluster instead, see tests/e2e_cluster.rs (KUBECONFIG, --features e2e)";

/// A running control plane.
pub struct ControlPlane {
    pub url: String,
    pub dir: tempfile::TempDir,
    admin: kube::Config,
    children: Vec<Child>,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Children die with the thread that started them (the harness's main
/// thread), so a crashed or killed test run leaves no etcd behind.
fn spawn(program: &Path, args: &[String], log: &Path) -> Result<Child, String> {
    let out = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| format!("starting {}: {e}", program.display()))
}

fn assets() -> Result<(PathBuf, PathBuf), String> {
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS") {
        let dir = PathBuf::from(dir);
        let (api, etcd) = (dir.join("kube-apiserver"), dir.join("etcd"));
        if api.exists() && etcd.exists() {
            return Ok((api, etcd));
        }
        return Err(format!(
            "KUBEBUILDER_ASSETS={} holds no kube-apiserver and etcd; {HOW_TO_GET_ASSETS}",
            dir.display()
        ));
    }
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_APISERVER);
    let etcd = which("etcd");
    match (api.exists(), etcd) {
        (true, Some(etcd)) => Ok((api, etcd)),
        _ => Err(HOW_TO_GET_ASSETS.to_string()),
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// What the API server's audit log records (every request, at Metadata
/// level), for the benchmark's runs with auditing on.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: Metadata
";

impl ControlPlane {
    pub fn start() -> Result<ControlPlane, String> {
        Self::start_audited(false)
    }

    /// With `audit`, the API server writes an audit log of every request
    /// (Metadata level) to `audit.log` in its folder.
    pub fn start_audited(audit: bool) -> Result<ControlPlane, String> {
        let dir = tempfile::Builder::new()
            .prefix("oco-envtest-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let (apiserver, etcd) = assets()?;
        let (port, etcd_port, peer_port) = (free_port()?, free_port()?, free_port()?);
        let path = dir.path();
        write_pki(path)?;
        let mut children = vec![];
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        children.push(spawn(
            &etcd,
            &[
                format!("--data-dir={}", path.join("etcd-data").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                "--unsafe-no-fsync".into(),
            ],
            &path.join("etcd.log"),
        )?);
        let pki = path.join("pki");
        let args = [
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", pki.display()),
            format!("--token-auth-file={}", pki.join("tokens.csv").display()),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            format!(
                "--service-account-key-file={}",
                pki.join("sa.pub").display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                pki.join("sa.key").display()
            ),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--feature-gates=CustomResourceValidationExpressions=true".into(),
        ];
        let mut args = args.to_vec();
        if audit {
            let policy = path.join("audit-policy.yaml");
            std::fs::write(&policy, AUDIT_POLICY).map_err(|e| e.to_string())?;
            args.push(format!("--audit-policy-file={}", policy.display()));
            args.push(format!(
                "--audit-log-path={}",
                path.join("audit.log").display()
            ));
        }
        children.push(spawn(&apiserver, &args, &path.join("kube-apiserver.log"))?);
        let url = format!("https://127.0.0.1:{port}");
        let mut admin = kube::Config::new(url.parse().map_err(|e| format!("{e}"))?);
        admin.accept_invalid_certs = true;
        admin.auth_info.token = Some(ADMIN_TOKEN.to_string().into());
        Ok(ControlPlane {
            url,
            dir,
            admin,
            children,
        })
    }

    /// The process ids of etcd and kube-apiserver (the cluster benchmark
    /// reads their CPU).
    #[allow(dead_code)]
    pub fn pids(&self) -> (u32, u32) {
        let pid = |i: usize| self.children.get(i).map(Child::id).unwrap_or(0);
        (pid(0), pid(1))
    }

    /// The API server's serving certificate (self-signed, for 127.0.0.1).
    pub fn serving_certificate(&self) -> PathBuf {
        self.dir.path().join("pki").join("apiserver.crt")
    }

    /// Where the API server serves the keys it signs ServiceAccount tokens
    /// with (`/openid/v1/jwks`).
    pub fn jwks_uri(&self) -> String {
        format!("{}/openid/v1/jwks", self.url)
    }

    /// A client with cluster-admin rights.
    pub async fn admin_client(&self) -> Client {
        Client::try_from(self.admin.clone()).expect("kube client")
    }

    /// A client acting as `user` (impersonated by the admin), with only
    /// the RBAC that user is bound to.
    pub async fn client_as(&self, user: &str) -> Client {
        let mut config = self.admin.clone();
        config.auth_info.impersonate = Some(user.to_string());
        Client::try_from(config).expect("kube client")
    }

    /// A kubeconfig file for a child process: cluster-admin, or the
    /// operator's ServiceAccount (only what deploy/ grants it).
    pub fn kubeconfig(&self, as_operator: bool) -> PathBuf {
        self.kubeconfig_via(&self.url, as_operator)
    }

    /// The same, reaching the API server through `server` (a proxy).
    pub fn kubeconfig_via(&self, server: &str, as_operator: bool) -> PathBuf {
        let (user, token) = if as_operator {
            ("operator", OPERATOR_TOKEN)
        } else {
            ("admin", ADMIN_TOKEN)
        };
        let file = self
            .dir
            .path()
            .join(format!("{user}-{:x}.kubeconfig", fastrand::u32(..)));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: envtest, cluster: {{server: \"{}\", insecure-skip-tls-verify: true}}}}]\n\
             users: [{{name: {user}, user: {{token: {token}}}}}]\n\
             contexts: [{{name: envtest, context: {{cluster: envtest, user: {user}}}}}]\ncurrent-context: envtest\n",
            server
        );
        std::fs::write(&file, text).expect("write kubeconfig");
        file
    }

    /// Waits for /readyz, then installs the CRD.
    pub async fn ready(&self) -> Result<Client, String> {
        let client = self.ready_without_crd().await?;
        install_envtest_crd(&client).await?;
        Ok(client)
    }

    /// Serving, with no OfferCancellation CRD installed yet.
    pub async fn ready_without_crd(&self) -> Result<Client, String> {
        let client = self.admin_client().await;
        let started = Instant::now();
        loop {
            let req = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|e| e.to_string())?;
            match client.request_text(req).await {
                Ok(text) if text.trim() == "ok" => break,
                _ if started.elapsed() > Duration::from_secs(90) => {
                    return Err(format!(
                        "kube-apiserver not ready after 90 s; logs in {}",
                        self.dir.path().display()
                    ));
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        Ok(client)
    }
}

/// Service-account signing keys (openssl, as the control-plane script does)
/// and the static tokens: an admin, and the operator's ServiceAccount.
fn write_pki(dir: &Path) -> Result<(), String> {
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).map_err(|e| e.to_string())?;
    let key = pki.join("sa.key");
    let run = |args: &[&str]| -> Result<(), String> {
        let status = Command::new("openssl")
            .args(args)
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("running openssl (apt-get install openssl): {e}"))?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| format!("openssl {args:?} failed"))
    };
    let key_s = key.to_string_lossy().to_string();
    let pub_s = pki.join("sa.pub").to_string_lossy().to_string();
    run(&["genrsa", "-out", &key_s, "2048"])?;
    run(&["rsa", "-in", &key_s, "-pubout", "-out", &pub_s])?;
    let tokens = format!(
        "{ADMIN_TOKEN},admin,admin,system:masters\n\
         {OPERATOR_TOKEN},{OPERATOR_USER},operator,\"system:serviceaccounts,system:serviceaccounts:offercancel-system,system:authenticated\"\n"
    );
    std::fs::write(pki.join("tokens.csv"), tokens).map_err(|e| e.to_string())
}

/// Drops the CEL rules that use `oldSelf`: this v1.24 server rejects
/// transition rules (the schema test in tests/deploy.rs keeps them).
pub fn without_transition_rules(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(rules)) = map.get_mut("x-kubernetes-validations") {
                rules.retain(|r| !r["rule"].as_str().unwrap_or("").contains("oldSelf"));
                if rules.is_empty() {
                    map.remove("x-kubernetes-validations");
                }
            }
            map.values_mut().for_each(without_transition_rules);
        }
        Value::Array(items) => items.iter_mut().for_each(without_transition_rules),
        _ => {}
    }
}

/// Applies `crd` (server-side, as `manager`) and waits until the API server
/// serves it. Shared with the kind suite, which applies the whole CRD.
pub async fn install_crd(client: &Client, crd: Value, manager: &str) -> Result<(), String> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = "offercancellations.offercancel.dev";
    let apply = PatchParams::apply(manager).force();
    crds.patch(name, &apply, &Patch::Apply(&crd))
        .await
        .map_err(|e| format!("installing the CRD: {e}"))?;
    for _ in 0..120 {
        let current = crds.get(name).await.map_err(|e| e.to_string())?;
        let established = current
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err("the CRD never became Established".into())
}

/// The CRD this v1.24 server accepts: without its `oldSelf` rules.
pub async fn install_envtest_crd(client: &Client) -> Result<(), String> {
    let mut crd = serde_json::to_value(OfferCancellation::crd()).map_err(|e| e.to_string())?;
    without_transition_rules(&mut crd);
    install_crd(client, crd, "envtest").await
}

/// Waits up to `within` until `name` reaches `phase`; shared with the kind
/// suite.
pub async fn wait_phase(
    api: &Api<OfferCancellation>,
    name: &str,
    phase: Phase,
    within: Duration,
) -> OfferCancellation {
    let started = Instant::now();
    while started.elapsed() < within {
        let obj = api.get(name).await.expect("read resource");
        if obj.status.as_ref().and_then(|s| s.phase) == Some(phase) {
            return obj;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{name} never reached {phase:?}");
}
