//! Reading the target API's credentials out of a Kubernetes Secret: a
//! bearer token, or an Entra ID app with a client secret, a client
//! certificate, or workload identity (a token for one of the namespace's
//! own ServiceAccounts). Error texts name the Secret and its keys, never
//! a value.
//!
//! It may not ask for a token nor call an API: `http::auth` does, with what
//! this yields.

use k8s_openapi::api::core::v1::Secret;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::http::{CertificateError, ClientCertificate, Credentials, Proof};

pub(crate) const TOKEN_KEY: &str = "token";
pub(crate) const TENANT_KEY: &str = "tenantId";
pub(crate) const CLIENT_ID_KEY: &str = "clientId";
pub(crate) const CLIENT_SECRET_KEY: &str = "clientSecret";
pub(crate) const CLIENT_CERTIFICATE_KEY: &str = "clientCertificate";
pub(crate) const CLIENT_CERTIFICATE_PASSWORD_KEY: &str = "clientCertificatePassword";
pub(crate) const WORKLOAD_IDENTITY_KEY: &str = "workloadIdentity";
pub(crate) const SERVICE_ACCOUNT_KEY: &str = "serviceAccountName";
/// The ServiceAccount workload identity uses unless the Secret names one.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "offercancel";

/// Why a Secret yields no credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("Secret {name} not found in this namespace")]
    NotFound { name: String },
    #[error(
        "Secret {name} has neither key {TOKEN_KEY} nor keys {TENANT_KEY} and {CLIENT_ID_KEY} with one of {CLIENT_SECRET_KEY}, {CLIENT_CERTIFICATE_KEY} or {WORKLOAD_IDENTITY_KEY}: \"true\""
    )]
    MissingKeys { name: String },
    #[error("Secret {name}: key {key} is empty or not UTF-8 text")]
    BadValue { name: String, key: &'static str },
    #[error("Secret {name}: keys {0} and {1} name two ways to sign in; keep one", .pair.0, .pair.1)]
    TwoWays {
        name: String,
        pair: (&'static str, &'static str),
    },
    #[error("Secret {name}: key {WORKLOAD_IDENTITY_KEY} must be \"true\" or \"false\"")]
    BadSwitch { name: String },
    #[error("Secret {name}: key {SERVICE_ACCOUNT_KEY} is not a ServiceAccount name")]
    BadServiceAccount { name: String },
    #[error(
        "Secret {name}: key {SERVICE_ACCOUNT_KEY} is set, but {WORKLOAD_IDENTITY_KEY} is not \"true\""
    )]
    ServiceAccountWithoutWorkloadIdentity { name: String },
    #[error(
        "Secret {name}: key {CLIENT_CERTIFICATE_PASSWORD_KEY} is set, but {CLIENT_CERTIFICATE_KEY} is not"
    )]
    PasswordWithoutCertificate { name: String },
    #[error("Secret {name}: its credentials could not be read")]
    Unreadable { name: String },
    #[error("Secret {name}: key {CLIENT_CERTIFICATE_KEY} {why}")]
    BadCertificate { name: String, why: CertificateError },
}

impl CredentialsError {
    /// Whether the Secret's credentials are there but refused (a
    /// certificate that cannot be used): a failure, where a Secret missing
    /// or incomplete is waited for.
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            CredentialsError::BadCertificate { .. } | CredentialsError::Unreadable { .. }
        )
    }
}

/// What a round may call an API with: the credentials, why the Secret
/// yields none, or `None` when the Secret was not read because nothing
/// the decision can do needs it.
pub type Yield<'a> = Option<Result<&'a Credentials, &'a CredentialsError>>;

fn value(
    secret: &Secret,
    name: &str,
    key: &'static str,
) -> Result<Option<String>, CredentialsError> {
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) else {
        return Ok(None);
    };
    // `echo secret | kubectl create secret` leaves a newline: trim it.
    match std::str::from_utf8(&bytes.0).map(str::trim) {
        Ok(text) if !text.is_empty() => Ok(Some(text.to_string())),
        _ => Err(CredentialsError::BadValue {
            name: name.to_string(),
            key,
        }),
    }
}

/// `token`, else `tenantId` + `clientId` with exactly one of
/// `clientSecret`, `clientCertificate` or `workloadIdentity: "true"`. The
/// Secret is `namespace`'s: a ServiceAccount it names is of that namespace.
pub(crate) fn from_secret(
    secret: &Secret,
    namespace: &str,
    name: &str,
) -> Result<Credentials, CredentialsError> {
    let read = |key| value(secret, name, key);
    if let Some(token) = read(TOKEN_KEY)? {
        return token_alone(secret, name, token);
    }
    let missing = || CredentialsError::MissingKeys { name: name.into() };
    let tenant_id = read(TENANT_KEY)?.ok_or_else(missing)?;
    let client_id = read(CLIENT_ID_KEY)?.ok_or_else(missing)?;
    let scope = format!("{namespace}/{name}");
    let proof = match way_to_sign_in(secret, name)? {
        Way::Secret(s) => {
            return Ok(Credentials::ClientSecret {
                tenant_id,
                client_id,
                client_secret: SecretString::from(s),
                scope,
            });
        }
        Way::Certificate(pem) => {
            let password = read(CLIENT_CERTIFICATE_PASSWORD_KEY)?;
            let certificate = ClientCertificate::from_pem(pem.as_bytes(), password.as_deref())
                .map_err(|why| CredentialsError::BadCertificate {
                    name: name.into(),
                    why,
                })?;
            Proof::Certificate(Arc::new(certificate))
        }
        Way::WorkloadIdentity => Proof::ServiceAccount {
            namespace: namespace.into(),
            name: service_account(secret, name)?,
        },
    };
    Ok(Credentials::Assertion {
        tenant_id,
        client_id,
        proof,
        scope,
    })
}

/// A bearer token, the Secret's only way in: a token left beside another
/// way would win without a word, and a move to workload identity must not
/// keep using the old token.
fn token_alone(
    secret: &Secret,
    name: &str,
    token: String,
) -> Result<Credentials, CredentialsError> {
    let others = [
        CLIENT_SECRET_KEY,
        CLIENT_CERTIFICATE_KEY,
        WORKLOAD_IDENTITY_KEY,
        SERVICE_ACCOUNT_KEY,
        CLIENT_CERTIFICATE_PASSWORD_KEY,
    ];
    for other in others {
        let set = value(secret, name, other)?;
        if set.is_some_and(|v| other != WORKLOAD_IDENTITY_KEY || v != "false") {
            return Err(CredentialsError::TwoWays {
                name: name.into(),
                pair: (TOKEN_KEY, other),
            });
        }
    }
    Ok(Credentials::Token(SecretString::from(token)))
}

/// How an Entra ID app signs in.
enum Way {
    Secret(String),
    Certificate(String),
    WorkloadIdentity,
}

/// The one way the Secret names: two are refused, since either choice
/// could be the wrong one.
fn way_to_sign_in(secret: &Secret, name: &str) -> Result<Way, CredentialsError> {
    let workload_identity = match value(secret, name, WORKLOAD_IDENTITY_KEY)?.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(CredentialsError::BadSwitch { name: name.into() }),
    };
    let client_secret = value(secret, name, CLIENT_SECRET_KEY)?;
    let certificate = value(secret, name, CLIENT_CERTIFICATE_KEY)?;
    let two = |pair| CredentialsError::TwoWays {
        name: name.into(),
        pair,
    };
    if !workload_identity && value(secret, name, SERVICE_ACCOUNT_KEY)?.is_some() {
        return Err(CredentialsError::ServiceAccountWithoutWorkloadIdentity { name: name.into() });
    }
    if certificate.is_none() && value(secret, name, CLIENT_CERTIFICATE_PASSWORD_KEY)?.is_some() {
        return Err(CredentialsError::PasswordWithoutCertificate { name: name.into() });
    }
    match (client_secret, certificate, workload_identity) {
        (Some(_), Some(_), _) => Err(two((CLIENT_SECRET_KEY, CLIENT_CERTIFICATE_KEY))),
        (Some(_), None, true) => Err(two((CLIENT_SECRET_KEY, WORKLOAD_IDENTITY_KEY))),
        (None, Some(_), true) => Err(two((CLIENT_CERTIFICATE_KEY, WORKLOAD_IDENTITY_KEY))),
        (Some(s), None, false) => Ok(Way::Secret(s)),
        (None, Some(pem), false) => Ok(Way::Certificate(pem)),
        (None, None, true) => Ok(Way::WorkloadIdentity),
        (None, None, false) => Err(CredentialsError::MissingKeys { name: name.into() }),
    }
}

/// `serviceAccountName`, else [`DEFAULT_SERVICE_ACCOUNT`]; a DNS-1123
/// subdomain, as the API server requires.
fn service_account(secret: &Secret, name: &str) -> Result<String, CredentialsError> {
    let Some(account) = value(secret, name, SERVICE_ACCOUNT_KEY)? else {
        return Ok(DEFAULT_SERVICE_ACCOUNT.into());
    };
    let valid = account.len() <= 253
        && account.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid {
        Ok(account)
    } else {
        Err(CredentialsError::BadServiceAccount { name: name.into() })
    }
}

/// [`from_secret`] on a blocking thread: decrypting a certificate's key
/// derives it from the password (bounded, but up to a second).
async fn parsed_off_the_runtime(
    secret: Secret,
    ns: &str,
    name: &str,
) -> Result<Credentials, CredentialsError> {
    let (ns, name) = (ns.to_string(), name.to_string());
    let unreadable = CredentialsError::Unreadable { name: name.clone() };
    match tokio::task::spawn_blocking(move || from_secret(&secret, &ns, &name)).await {
        Ok(credentials) => credentials,
        Err(e) => {
            tracing::error!(error = %e, "reading a Secret's credentials failed");
            Err(unreadable)
        }
    }
}

/// What a resource's Secret yields: credentials or why not, and the
/// Secret's resourceVersion (none when it does not exist).
#[derive(Debug, Clone)]
pub struct SecretReading {
    pub version: Option<String>,
    pub credentials: Result<Credentials, CredentialsError>,
}

impl SecretReading {
    /// What a round may call an API with.
    pub fn yielded(&self) -> Yield<'_> {
        Some(self.credentials.as_ref())
    }
}

/// Reads Secret `ns/name`, from the cache unless the Secret watch reported
/// a change since it was stored. Only a failed API call is an error; a
/// missing or unusable Secret is a reading that says why.
pub(crate) async fn read(
    client: &kube::Client,
    cache: &CredentialsCache,
    ns: &str,
    name: &str,
) -> Result<SecretReading, kube::Error> {
    let (epoch, cached) = cache.get(ns, name);
    if let Some(hit) = cached {
        return Ok(hit);
    }
    let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), ns);
    let reading = match api.get_opt(name).await? {
        Some(secret) => SecretReading {
            version: secret.metadata.resource_version.clone(),
            credentials: parsed_off_the_runtime(secret, ns, name).await,
        },
        None => SecretReading {
            version: None,
            credentials: Err(CredentialsError::NotFound { name: name.into() }),
        },
    };
    cache.put(ns, name, epoch, reading.clone());
    Ok(reading)
}

/// What each Secret yielded, kept until the Secret watch reports a change,
/// so a poll does not cost a Secret GET. A missing or unusable Secret is
/// kept too (its creation or repair is a change the watch reports). Only
/// Secrets a resource asked for are kept, and a change or deletion drops
/// the entry: the cache never grows with the cluster's other Secrets.
#[derive(Default)]
pub struct CredentialsCache {
    inner: Mutex<Inner>,
}

/// How many epochs the Secrets share: a change bumps its Secret's
/// bucket's, so churn elsewhere seldom keeps a slow read (a certificate's
/// key derivation) from being kept, and the table never grows.
const EPOCH_BUCKETS: usize = 32;

#[derive(Default)]
struct Inner {
    /// Bumped by every change the Secret watch reports, of a Secret of
    /// that bucket: a read that began before a change is not stored.
    epochs: [u64; EPOCH_BUCKETS],
    values: HashMap<(String, String), SecretReading>,
}

fn bucket(ns: &str, name: &str) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hashed = BuildHasherDefault::<DefaultHasher>::default().hash_one((ns, name));
    (hashed % EPOCH_BUCKETS as u64) as usize
}

impl CredentialsCache {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value, and the epoch to hand back to [`Self::put`].
    pub fn get(&self, ns: &str, name: &str) -> (u64, Option<SecretReading>) {
        let inner = self.inner();
        let key = (ns.to_string(), name.to_string());
        (
            inner.epochs[bucket(ns, name)],
            inner.values.get(&key).cloned(),
        )
    }

    /// Stores what a read found, unless a Secret changed since `epoch` (the
    /// read may have raced with the change).
    pub fn put(&self, ns: &str, name: &str, epoch: u64, value: SecretReading) {
        let mut inner = self.inner();
        if inner.epochs[bucket(ns, name)] == epoch {
            inner
                .values
                .insert((ns.to_string(), name.to_string()), value);
        }
    }

    /// The Secret was added, changed or deleted.
    pub fn invalidate(&self, ns: &str, name: &str) {
        let mut inner = self.inner();
        inner.epochs[bucket(ns, name)] += 1;
        inner.values.remove(&(ns.to_string(), name.to_string()));
    }

    /// Keeps only the Secrets `(namespace, name)` still referenced.
    pub fn retain(&self, referenced: &std::collections::HashSet<(String, String)>) {
        self.inner().values.retain(|k, _| referenced.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(pairs: &[(&str, &[u8])]) -> Secret {
        let data: BTreeMap<String, ByteString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
            .collect();
        Secret {
            data: Some(data),
            ..Default::default()
        }
    }

    fn resolved(version: &str) -> SecretReading {
        SecretReading {
            version: Some(version.into()),
            credentials: Ok(Credentials::Token(SecretString::from("t"))),
        }
    }

    #[test]
    fn cache_keeps_values_until_invalidated() {
        let cache = CredentialsCache::default();
        let (epoch, none) = cache.get("ns", "cpp");
        assert!(none.is_none());
        cache.put("ns", "cpp", epoch, resolved("1"));
        assert_eq!(
            cache.get("ns", "cpp").1.unwrap().version.as_deref(),
            Some("1")
        );
        cache.invalidate("ns", "cpp");
        assert!(cache.get("ns", "cpp").1.is_none());
        assert!(cache.get("other", "cpp").1.is_none());
    }

    /// How many Secrets' readings the cache holds.
    fn held(cache: &CredentialsCache) -> usize {
        cache.inner().values.len()
    }

    #[test]
    fn unrelated_and_deleted_secrets_leave_nothing_behind() {
        let cache = CredentialsCache::default();
        for i in 0..10_000 {
            cache.invalidate("ns", &format!("unrelated-{i}"));
        }
        assert_eq!(held(&cache), 0);
        let (epoch, _) = cache.get("ns", "cpp");
        cache.put("ns", "cpp", epoch, resolved("1"));
        assert_eq!(held(&cache), 1);
        cache.invalidate("ns", "cpp");
        assert_eq!(held(&cache), 0);
        let (epoch, _) = cache.get("ns", "gone");
        cache.put("ns", "gone", epoch, resolved("2"));
        cache.retain(&std::collections::HashSet::new());
        assert_eq!(held(&cache), 0, "no resource refers to it any more");
    }

    #[test]
    fn a_change_to_another_secret_seldom_keeps_a_read_from_being_kept() {
        let cache = CredentialsCache::default();
        let (epoch, _) = cache.get("ns", "cpp");
        let elsewhere = (0..)
            .map(|i| format!("other-{i}"))
            .find(|n| bucket("ns", n) != bucket("ns", "cpp"))
            .unwrap();
        cache.invalidate("ns", &elsewhere);
        cache.put("ns", "cpp", epoch, resolved("1"));
        assert!(cache.get("ns", "cpp").1.is_some());
    }

    #[test]
    fn a_read_that_raced_with_a_change_is_not_cached() {
        let cache = CredentialsCache::default();
        let (epoch, _) = cache.get("ns", "cpp");
        cache.invalidate("ns", "cpp");
        cache.put("ns", "cpp", epoch, resolved("old"));
        assert!(cache.get("ns", "cpp").1.is_none());
    }

    #[test]
    fn token_wins_and_is_trimmed() {
        let s = secret(&[("token", b"abc\n"), ("tenantId", b"t")]);
        let Credentials::Token(t) = from_secret(&s, "ns", "cpp").unwrap() else {
            panic!("expected a token");
        };
        assert_eq!(secrecy::ExposeSecret::expose_secret(&t), "abc");
    }

    #[test]
    fn client_credentials_need_all_three_keys() {
        let s = secret(&[
            ("tenantId", b"t"),
            ("clientId", b"c"),
            ("clientSecret", b"s"),
        ]);
        assert!(matches!(
            from_secret(&s, "ns", "cpp"),
            Ok(Credentials::ClientSecret { .. })
        ));
        let s = secret(&[("tenantId", b"t"), ("clientId", b"c")]);
        assert_eq!(
            from_secret(&s, "ns", "cpp").unwrap_err(),
            CredentialsError::MissingKeys { name: "cpp".into() }
        );
        assert!(from_secret(&Secret::default(), "ns", "cpp").is_err());
    }

    #[test]
    fn workload_identity_names_a_service_account_of_the_secrets_own_namespace() {
        let s = secret(&[
            ("tenantId", b"t"),
            ("clientId", b"c"),
            ("workloadIdentity", b"true\n"),
        ]);
        let Ok(Credentials::Assertion { proof, scope, .. }) = from_secret(&s, "team-a", "cpp")
        else {
            panic!("workload identity");
        };
        assert_eq!(scope, "team-a/cpp");
        assert_eq!(
            proof.subject().as_deref(),
            Some("system:serviceaccount:team-a:offercancel"),
            "the default ServiceAccount"
        );
        let named = secret(&[
            ("tenantId", b"t"),
            ("clientId", b"c"),
            ("workloadIdentity", b"true"),
            ("serviceAccountName", b"publisher"),
        ]);
        let Ok(Credentials::Assertion { proof, .. }) = from_secret(&named, "team-b", "cpp") else {
            panic!("workload identity");
        };
        assert_eq!(
            proof.subject().as_deref(),
            Some("system:serviceaccount:team-b:publisher")
        );
    }

    #[test]
    fn a_secret_naming_two_ways_or_an_odd_switch_is_refused() {
        type Pairs<'a> = &'a [(&'a str, &'a [u8])];
        let cases: [(Pairs, &str); 4] = [
            (
                &[
                    ("tenantId", b"t"),
                    ("clientId", b"c"),
                    ("clientSecret", b"s"),
                    ("workloadIdentity", b"true"),
                ],
                "two ways",
            ),
            (
                &[
                    ("tenantId", b"t"),
                    ("clientId", b"c"),
                    ("clientSecret", b"s"),
                    ("clientCertificate", b"pem"),
                ],
                "two ways",
            ),
            (
                &[
                    ("tenantId", b"t"),
                    ("clientId", b"c"),
                    ("workloadIdentity", b"yes"),
                ],
                "\"true\" or \"false\"",
            ),
            (
                &[
                    ("tenantId", b"t"),
                    ("clientId", b"c"),
                    ("workloadIdentity", b"true"),
                    ("serviceAccountName", b"Not/A/Name"),
                ],
                "not a ServiceAccount name",
            ),
        ];
        for (pairs, expected) in cases {
            let err = from_secret(&secret(pairs), "ns", "cpp").unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
            assert!(!err.is_rejection(), "{err}: waited for, not a failure");
        }
        for other in [
            ("clientSecret", &b"s"[..]),
            ("clientCertificate", b"pem"),
            ("workloadIdentity", b"true"),
        ] {
            let both = secret(&[("token", b"static"), other]);
            let err = from_secret(&both, "ns", "cpp").unwrap_err();
            assert!(
                matches!(err, CredentialsError::TwoWays { .. }),
                "{other:?}: {err}"
            );
        }
        let stray = secret(&[
            ("tenantId", b"t"),
            ("clientId", b"c"),
            ("clientSecret", b"s"),
            ("serviceAccountName", b"publisher"),
        ]);
        assert!(matches!(
            from_secret(&stray, "ns", "cpp"),
            Err(CredentialsError::ServiceAccountWithoutWorkloadIdentity { .. })
        ));
        let beside_token = secret(&[("token", b"static"), ("serviceAccountName", b"sa")]);
        assert!(matches!(
            from_secret(&beside_token, "ns", "cpp"),
            Err(CredentialsError::TwoWays { .. })
        ));
        let password_alone = secret(&[
            ("tenantId", b"t"),
            ("clientId", b"c"),
            ("clientSecret", b"s"),
            ("clientCertificatePassword", b"p"),
        ]);
        assert!(matches!(
            from_secret(&password_alone, "ns", "cpp"),
            Err(CredentialsError::PasswordWithoutCertificate { .. })
        ));
        let off = secret(&[
            ("tenantId", b"t"),
            ("clientId", b"c"),
            ("workloadIdentity", b"false"),
        ]);
        assert!(matches!(
            from_secret(&off, "ns", "cpp"),
            Err(CredentialsError::MissingKeys { .. })
        ));
    }

    #[test]
    fn an_unusable_certificate_is_a_rejection_naming_the_key_not_its_content() {
        let s = secret(&[
            ("tenantId", b"t"),
            ("clientId", b"c"),
            ("clientCertificate", b"-----BEGIN CERTIFICATE-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END CERTIFICATE-----\n"),
        ]);
        let err = from_secret(&s, "ns", "cpp").unwrap_err();
        assert!(err.is_rejection());
        let text = err.to_string();
        assert!(
            text.contains("clientCertificate") && !text.contains("c2VjcmV0"),
            "{text}"
        );
    }

    #[test]
    fn bad_values_are_named_but_never_shown() {
        let s = secret(&[("token", &[0xff, 0xfe, b's', b'3', b'c'])]);
        let err = from_secret(&s, "ns", "cpp").unwrap_err().to_string();
        assert!(err.contains("token") && !err.contains("s3c"), "{err}");
    }
}
