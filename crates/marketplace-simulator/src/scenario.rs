//! The simulator's scenario: who may call, which offers exist, and how each
//! offer's cancel behaves. Loaded from YAML; a built-in default covers
//! `examples/offercancellation.yaml`.

use serde::{Deserialize, Serialize};

/// The whole scenario.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// Seed of the fault dice; the same seed gives the same faults.
    #[serde(default)]
    pub seed: u64,
    /// Lifetime of issued tokens.
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_seconds: u64,
    /// api-versions the service accepts.
    #[serde(default = "default_api_versions")]
    pub api_versions: Vec<String>,
    /// `$version`s the Product Ingestion routes accept.
    #[serde(default = "default_job_api_versions")]
    pub job_api_versions: Vec<String>,
    /// Where OIDC issuers' signing keys are found, for principals'
    /// federated credentials.
    #[serde(default)]
    pub issuers: Vec<Issuer>,
    #[serde(default)]
    pub principals: Vec<Principal>,
    /// Static bearer tokens that never expire.
    #[serde(default)]
    pub tokens: Vec<StaticToken>,
    #[serde(default)]
    pub publishers: Vec<Publisher>,
    /// Faults on every request.
    #[serde(default)]
    pub faults: Faults,
    /// An offer or job the scenario does not name (nor a template, nor a
    /// publisher's `missing`) is made up on first use: an asynchronous
    /// publish in progress ([`Offer::made_up`]), a running job
    /// ([`Job::made_up`]); a publisher the scenario does not name is open
    /// to every caller. `cancel --simulate` turns it on, so a user's own
    /// manifest can be tried.
    #[serde(default)]
    pub make_up_unknown_targets: bool,
}

/// The api-version CPP's cancel call documents.
pub const DEFAULT_API_VERSION: &str = "2017-10-31";

fn default_token_lifetime() -> u64 {
    3600
}

fn default_api_versions() -> Vec<String> {
    vec![DEFAULT_API_VERSION.to_string()]
}

/// The `$version` the Product Ingestion reference documents for cancel.
pub const DEFAULT_JOB_API_VERSION: &str = "2022-03-01-preview2";

fn default_job_api_versions() -> Vec<String> {
    vec![DEFAULT_JOB_API_VERSION.to_string()]
}

/// Where the Product Ingestion routes are served, below the simulator's
/// root (as `https://graph.microsoft.com/rp/product-ingestion` is).
pub const PRODUCT_INGESTION_PATH: &str = "rp/product-ingestion";
/// A job of the default scenario whose cancel takes two status polls.
pub const DEFAULT_JOB_ID: &str = "9f1c0e2a-1b2c-4d5e-8f90-123456789abc";

/// An Azure AD service principal, its credentials, and the publishers it
/// was added to. It signs in with any of its credentials: its secret (v1
/// and v2.0 token endpoints), a certificate or a federated credential
/// (v2.0 client assertions).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Principal {
    pub tenant_id: String,
    pub client_id: String,
    /// None: the principal has no secret, and every secret is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// PEM certificates (public part only) whose keys may sign its client
    /// assertions; an assertion names one by its `x5t#S256` header.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    /// Tokens of other issuers (a Kubernetes ServiceAccount's) it accepts
    /// as client assertions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federated_credentials: Vec<FederatedCredential>,
    #[serde(default)]
    pub publishers: Vec<String>,
    /// May read its publishers' offers and jobs (the operations list, an
    /// operation, a job's status) but not cancel: every cancel POST it
    /// sends is answered 403 (and still counted in `cancelPosts`).
    #[serde(default)]
    pub read_only: bool,
}

/// A federated identity credential: a token of `issuer` for `subject`,
/// with one of `audiences` in its `aud`, signs the principal in.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
    #[serde(default = "default_federated_audiences")]
    pub audiences: Vec<String>,
}

/// The audience Entra ID documents for federated credentials.
pub const DEFAULT_FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";

fn default_federated_audiences() -> Vec<String> {
    vec![DEFAULT_FEDERATED_AUDIENCE.to_string()]
}

/// An OIDC issuer and where its signing keys are (Entra ID would find
/// them by discovery; the simulator is told).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Issuer {
    /// The `iss` of its tokens.
    pub issuer: String,
    /// Its JWKS, fetched over http(s) with no credentials.
    pub jwks_uri: String,
    /// A PEM bundle trusted (alone) for an https `jwksUri`; read at each
    /// fetch, so it may be written after the scenario is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

impl Issuer {
    fn validate(&self) -> Result<(), String> {
        let scheme = url::Url::parse(&self.jwks_uri).map(|u| u.scheme().to_string());
        match scheme.as_deref() {
            Ok("http" | "https") => Ok(()),
            _ => Err(format!(
                "issuer {}: jwksUri must be an http(s) URL",
                self.issuer
            )),
        }
    }
}

impl Principal {
    /// Every certificate is a PEM X.509 certificate with an RSA key. The
    /// error names the principal, never the PEM.
    fn validate(&self) -> Result<(), String> {
        for (i, pem) in self.certificates.iter().enumerate() {
            crate::assertion::Certificate::parse(pem)
                .map_err(|e| format!("principal {}: certificates[{i}]: {e}", self.client_id))?;
        }
        for f in &self.federated_credentials {
            if f.issuer.is_empty() || f.subject.is_empty() || f.audiences.is_empty() {
                return Err(format!(
                    "principal {}: a federated credential needs an issuer, a subject and an audience",
                    self.client_id
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticToken {
    pub token: String,
    #[serde(default)]
    pub publishers: Vec<String>,
    /// The API the token was issued for (default: CPP).
    #[serde(default)]
    pub audience: Audience,
    /// As a principal's `readOnly`: reads answered, cancels 403.
    #[serde(default)]
    pub read_only: bool,
}

/// Which API a token was issued for: each API refuses the other's.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum Audience {
    #[default]
    Cpp,
    Graph,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Publisher {
    pub id: String,
    #[serde(default)]
    pub offers: Vec<Offer>,
    /// Offers made on first use: an unknown offer whose id starts with a
    /// template's `id` exists, and behaves like that template (for runs
    /// with hundreds of offers).
    #[serde(default)]
    pub offer_templates: Vec<Offer>,
    /// Product Ingestion configure jobs of this publisher's products.
    #[serde(default)]
    pub jobs: Vec<Job>,
    /// Jobs made on first use, as offer templates are.
    #[serde(default)]
    pub job_templates: Vec<Job>,
    /// Ids of offers and jobs of this publisher that do not exist (404),
    /// even where unknown targets are made up.
    #[serde(default)]
    pub missing: Vec<String>,
}

/// How a configure job answers a cancel.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum JobCancelMode {
    /// The cancel answers 200 with the job `completed`/`cancelled`.
    #[default]
    Immediate,
    /// The cancel answers 200 with the job still `running`; it reads
    /// `cancelled` after `pollsUntilDone` status GETs.
    Running,
    /// The job has completed (`ended`) before any cancel: 400.
    AlreadyCompleted,
    /// The job runs until the cancel arrives, then completes (`ended`)
    /// at that moment: the cancel is answered 400, too late.
    TooLate,
}

/// How a job that was not cancelled ended.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum JobEnding {
    #[default]
    Succeeded,
    Failed,
}

/// One configure job and how cancelling it behaves.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Job {
    pub id: String,
    #[serde(default)]
    pub cancel: JobCancelMode,
    /// Status GETs after an accepted cancel until the job reads
    /// `cancelled` (`running` mode; at least 1).
    #[serde(default = "default_polls")]
    pub polls_until_done: u32,
    #[serde(default)]
    pub ended: JobEnding,
    /// The job's `errors` once it ended `failed`.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Faults for this job only, on top of the global ones.
    #[serde(default)]
    pub faults: Faults,
    /// How many resources the job configures (its detail lists them).
    #[serde(default = "default_job_resources")]
    pub resources: u32,
    /// How many of them it had processed when a cancel stops it: those
    /// stay applied (`succeeded` in its detail), the rest read `cancelled`.
    #[serde(default = "default_processed_before_cancel")]
    pub processed_before_cancel: u32,
}

fn default_job_resources() -> u32 {
    3
}

fn default_processed_before_cancel() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum CancelMode {
    #[default]
    Sync,
    Async,
    /// The operation ends (`succeeded`) the moment the cancel arrives,
    /// which CPP answers 404: the cancel came too late.
    TooLate,
}

/// Where a 202 says the cancel operation is.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum LocationShape {
    /// `/api/publishers/{p}/offers/{o}/operations/{guid}` in the header.
    #[default]
    Migrated,
    /// `/api/operations/{p}${o}${n}$preview` in the header.
    NonMigrated,
    /// The migrated path in the body, no header.
    Body,
    /// Neither header nor body.
    Absent,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum BodyShape {
    #[default]
    Object,
    Array,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum CancelResult {
    #[default]
    Completed,
    Failed,
}

/// One offer and how cancelling it behaves.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Offer {
    pub id: String,
    /// The operation in progress (`publish`, `goLive`, ...); none: nothing to cancel.
    #[serde(default = "default_in_progress")]
    pub in_progress: Option<String>,
    #[serde(default)]
    pub cancel: CancelMode,
    #[serde(default)]
    pub location: LocationShape,
    /// Operation GETs until the cancel operation ends (at least 1).
    #[serde(default = "default_polls")]
    pub polls_until_done: u32,
    /// Or: seconds until it ends, whatever the polls.
    #[serde(default)]
    pub seconds_until_done: Option<u64>,
    #[serde(default)]
    pub result: CancelResult,
    /// Messages of a failed cancel operation.
    #[serde(default)]
    pub messages: Vec<String>,
    #[serde(default)]
    pub body: BodyShape,
    /// Retry-After sent with the 202 and each poll.
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
    /// Faults for this offer only, on top of the global ones.
    #[serde(default)]
    pub faults: Faults,
}

impl Offer {
    /// An offer the scenario does not name, as it is made up: an
    /// asynchronous publish in progress, its cancel done after two polls.
    pub fn made_up(id: &str) -> Offer {
        Offer {
            id: id.to_string(),
            in_progress: default_in_progress(),
            cancel: CancelMode::Async,
            location: LocationShape::Migrated,
            polls_until_done: default_polls(),
            seconds_until_done: None,
            result: CancelResult::Completed,
            messages: vec![],
            body: BodyShape::Object,
            retry_after_seconds: None,
            faults: Faults::default(),
        }
    }
}

impl Job {
    /// A job the scenario does not name, as it is made up: running until
    /// the cancel, which stops it at once (a status poll would come only a
    /// minute later).
    pub fn made_up(id: &str) -> Job {
        Job {
            id: id.to_string(),
            cancel: JobCancelMode::Immediate,
            polls_until_done: 1,
            ended: JobEnding::Succeeded,
            errors: vec![],
            faults: Faults::default(),
            resources: default_job_resources(),
            processed_before_cancel: default_processed_before_cancel(),
        }
    }
}

fn default_in_progress() -> Option<String> {
    Some("publish".into())
}

fn default_polls() -> u32 {
    2
}

/// Injected failures; rates are shares of requests from 0.0 to 1.0.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Faults {
    /// Share answered 429 with Retry-After.
    #[serde(default)]
    pub throttle_rate: f64,
    /// Share answered 500 or 503.
    #[serde(default)]
    pub error_rate: f64,
    /// Share whose connection is dropped mid-answer, before the service acts.
    #[serde(default)]
    pub drop_rate: f64,
    /// Share that the service acts on, then drops the connection: the
    /// answer is lost although the request took effect.
    #[serde(default)]
    pub drop_after_rate: f64,
    /// Added to every answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// An offer's faults that apply to its cancel POSTs only (its list and
    /// operation reads answer normally).
    #[serde(default)]
    pub cancel_only: bool,
}

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("throttleRate", self.throttle_rate),
            ("errorRate", self.error_rate),
            ("dropRate", self.drop_rate),
            ("dropAfterRate", self.drop_after_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1"));
            }
        }
        if self.latency_ms > 60_000 {
            return Err("latencyMs must be at most 60000".into());
        }
        Ok(())
    }
}

/// Why a scenario was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("reading scenario {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario: {0}")]
    Parse(#[from] serde_yaml::Error),
    #[error("scenario: {0}")]
    Invalid(String),
}

/// The default principal, which `cancel --simulate` uses.
pub const DEFAULT_TENANT: &str = "contoso-tenant";
pub const DEFAULT_CLIENT_ID: &str = "offer-cancel-operator";
pub const DEFAULT_CLIENT_SECRET: &str = "simulated-client-secret";
/// A static token the default scenario accepts for publisher contoso.
pub const DEFAULT_TOKEN: &str = "simulated-static-token";

const DEFAULT_SCENARIO: &str = include_str!("default-scenario.yaml");

impl Scenario {
    /// The built-in scenario (default-scenario.yaml beside this file).
    pub fn default_scenario() -> Scenario {
        // Covered by a test, so a broken built-in fails CI, not a user.
        serde_yaml::from_str(DEFAULT_SCENARIO).unwrap_or_else(|_| Scenario::empty())
    }

    pub fn empty() -> Scenario {
        Scenario {
            seed: 0,
            token_lifetime_seconds: default_token_lifetime(),
            api_versions: default_api_versions(),
            job_api_versions: default_job_api_versions(),
            issuers: vec![],
            principals: vec![],
            tokens: vec![],
            publishers: vec![],
            faults: Faults::default(),
            make_up_unknown_targets: false,
        }
    }

    /// The built-in scenario, making up every target it does not name
    /// (`cancel --simulate`).
    pub fn any_target() -> Scenario {
        Scenario {
            make_up_unknown_targets: true,
            ..Scenario::default_scenario()
        }
    }

    /// Whether the scenario names offer `offer` of `publisher` (itself, a
    /// template of it, or as missing): what it says of it is not made up.
    pub fn names_offer(&self, publisher: &str, offer: &str) -> bool {
        self.publishers
            .iter()
            .filter(|p| p.id == publisher)
            .any(|p| {
                p.offers.iter().any(|o| o.id == offer)
                    || p.offer_templates.iter().any(|t| offer.starts_with(&t.id))
                    || p.missing.iter().any(|m| m == offer)
            })
    }

    /// Whether the scenario names job `id` (itself, a template of it, or
    /// as missing), whatever its case.
    pub fn names_job(&self, id: &str) -> bool {
        let id = id.to_ascii_lowercase();
        self.publishers.iter().any(|p| {
            p.jobs.iter().any(|j| j.id.eq_ignore_ascii_case(&id))
                || p.job_templates
                    .iter()
                    .any(|t| id.starts_with(&t.id.to_ascii_lowercase()))
                || p.missing.iter().any(|m| m.eq_ignore_ascii_case(&id))
        })
    }

    /// Whether `publisher` lists `offer` as missing.
    pub fn lists_missing(&self, publisher: &str, offer: &str) -> bool {
        self.publishers
            .iter()
            .filter(|p| p.id == publisher)
            .any(|p| p.missing.iter().any(|m| m == offer))
    }

    /// Whether a publisher lists job `id` as missing, whatever its case.
    pub fn lists_missing_job(&self, id: &str) -> bool {
        self.publishers
            .iter()
            .any(|p| p.missing.iter().any(|m| m.eq_ignore_ascii_case(id)))
    }

    /// Whether `cancel --simulate`'s principal (`client_id`) would find
    /// offer `offer` of `publisher` made up: unnamed, in a publisher it
    /// may use or one the scenario does not name.
    pub fn makes_up_offer_for(&self, client_id: &str, publisher: &str, offer: &str) -> bool {
        let may_use = self
            .principals
            .iter()
            .filter(|p| p.client_id == client_id)
            .any(|p| p.publishers.iter().any(|x| x == publisher));
        self.make_up_unknown_targets
            && !self.names_offer(publisher, offer)
            && (may_use || !self.names_publisher(publisher))
    }

    /// Whether job `id` would be made up (made-up jobs belong to no named
    /// publisher, so every caller may use them).
    pub fn makes_up_job(&self, id: &str) -> bool {
        self.make_up_unknown_targets && !self.names_job(id)
    }

    /// Whether the scenario names `publisher`.
    pub fn names_publisher(&self, publisher: &str) -> bool {
        self.publishers.iter().any(|p| p.id == publisher)
    }

    pub fn from_yaml(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = serde_yaml::from_str(text)?;
        scenario.validate().map_err(ScenarioError::Invalid)?;
        Ok(scenario)
    }

    /// Reads and checks a scenario file.
    pub fn from_file(path: &std::path::Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::from_yaml(&text)
    }

    pub fn validate(&self) -> Result<(), String> {
        self.faults.validate()?;
        self.issuers.iter().try_for_each(Issuer::validate)?;
        self.principals.iter().try_for_each(Principal::validate)?;
        for p in &self.publishers {
            for j in p.jobs.iter().chain(&p.job_templates) {
                j.faults
                    .validate()
                    .map_err(|e| format!("job {}: {e}", j.id))?;
                if j.polls_until_done == 0 {
                    return Err(format!("job {}: pollsUntilDone must be at least 1", j.id));
                }
            }
            for o in p.offers.iter().chain(&p.offer_templates) {
                o.faults
                    .validate()
                    .map_err(|e| format!("offer {}/{}: {e}", p.id, o.id))?;
                if o.polls_until_done == 0 {
                    return Err(format!(
                        "offer {}/{}: pollsUntilDone must be at least 1",
                        p.id, o.id
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scenario_parses_and_covers_the_documented_cases() {
        let s = Scenario::from_yaml(DEFAULT_SCENARIO).unwrap();
        let offers: Vec<&Offer> = s.publishers.iter().flat_map(|p| &p.offers).collect();
        assert!(offers.iter().any(|o| o.cancel == CancelMode::Sync));
        for shape in [LocationShape::Migrated, LocationShape::NonMigrated] {
            assert!(
                offers
                    .iter()
                    .any(|o| o.cancel == CancelMode::Async && o.location == shape)
            );
        }
        let contoso = s.publishers.iter().find(|p| p.id == "contoso").unwrap();
        assert!(contoso.offers.iter().any(|o| o.id == "contoso-offer"));
        assert!(contoso.jobs.iter().any(|j| j.id == DEFAULT_JOB_ID));
        for mode in [
            JobCancelMode::Immediate,
            JobCancelMode::Running,
            JobCancelMode::AlreadyCompleted,
            JobCancelMode::TooLate,
        ] {
            assert!(contoso.jobs.iter().any(|j| j.cancel == mode), "{mode:?}");
        }
        let forbidden = s
            .publishers
            .iter()
            .any(|p| !s.principals[0].publishers.contains(&p.id));
        assert!(
            forbidden,
            "one publisher the default principal may not touch"
        );
    }

    #[test]
    fn read_only_callers_are_named_so_and_no_one_else_is() {
        let s = Scenario::from_yaml(
            "principals: [{tenantId: t, clientId: c, clientSecret: s, readOnly: true}]\n\
             tokens: [{token: a, readOnly: true}, {token: b}]",
        )
        .unwrap();
        assert!(s.principals[0].read_only);
        let read_only: Vec<bool> = s.tokens.iter().map(|t| t.read_only).collect();
        assert_eq!(read_only, [true, false]);
        let default = Scenario::default_scenario();
        assert!(default.principals.iter().all(|p| !p.read_only));
        assert!(default.tokens.iter().all(|t| !t.read_only));
    }

    #[test]
    fn credentials_issuers_and_their_defaults_load_from_yaml() {
        let key = crate::test_keys::TestKey::generate(1);
        let cert = key.cert_pem.replace('\n', "\n      ");
        let s = Scenario::from_yaml(&format!(
            "issuers:\n\
             - issuer: https://kubernetes.default.svc\n\
             \x20 jwksUri: https://127.0.0.1:16443/openid/v1/jwks\n\
             \x20 caFile: /tmp/x/apiserver.crt\n\
             principals:\n\
             - tenantId: t\n\
             \x20 clientId: c\n\
             \x20 certificates:\n\
             \x20 - |\n      {cert}\n\
             \x20 federatedCredentials:\n\
             \x20 - issuer: https://kubernetes.default.svc\n\
             \x20   subject: system:serviceaccount:team-a:offercancel\n"
        ))
        .unwrap();
        assert_eq!(
            s.issuers[0].ca_file.as_deref(),
            Some("/tmp/x/apiserver.crt")
        );
        let p = &s.principals[0];
        assert_eq!(p.client_secret, None);
        assert_eq!(p.certificates.len(), 1);
        assert_eq!(
            p.federated_credentials[0].audiences,
            [DEFAULT_FEDERATED_AUDIENCE]
        );
    }

    #[test]
    fn a_bad_certificate_or_jwks_uri_is_refused_naming_its_owner() {
        let err = Scenario::from_yaml(
            "principals: [{tenantId: t, clientId: the-client, certificates: [\"-----BEGIN CERTIFICATE-----\\nc2VjcmV0\\n-----END CERTIFICATE-----\"]}]",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("the-client"), "{err}");
        assert!(!err.contains("c2VjcmV0"), "the PEM is not quoted: {err}");
        for uri in ["file:///etc/jwks", "not a url"] {
            let err = Scenario::from_yaml(&format!(
                "issuers: [{{issuer: https://i, jwksUri: \"{uri}\"}}]"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("https://i") && err.contains("jwksUri"),
                "{err}"
            );
        }
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused() {
        let err = Scenario::from_yaml("faults: {throttleRate: 1.5}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("throttleRate"), "{err}");
        assert!(Scenario::from_yaml("bogus: 1").is_err());
    }
}
