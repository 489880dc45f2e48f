//! Reading CPP credentials out of a Kubernetes Secret. Error texts name the
//! Secret and its keys, never a value.

use k8s_openapi::api::core::v1::Secret;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::http::Credentials;

pub(crate) const TOKEN_KEY: &str = "token";
pub(crate) const TENANT_KEY: &str = "tenantId";
pub(crate) const CLIENT_ID_KEY: &str = "clientId";
pub(crate) const CLIENT_SECRET_KEY: &str = "clientSecret";

/// Why a Secret yields no credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("Secret {name} not found in this namespace")]
    NotFound { name: String },
    #[error(
        "Secret {name} has neither key {TOKEN_KEY} nor keys {TENANT_KEY}, {CLIENT_ID_KEY} and {CLIENT_SECRET_KEY}"
    )]
    MissingKeys { name: String },
    #[error("Secret {name}: key {key} is empty or not UTF-8 text")]
    BadValue { name: String, key: &'static str },
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

/// `token`, else `tenantId` + `clientId` + `clientSecret`.
pub(crate) fn from_secret(secret: &Secret, name: &str) -> Result<Credentials, CredentialsError> {
    if let Some(token) = value(secret, name, TOKEN_KEY)? {
        return Ok(Credentials::Token(SecretString::from(token)));
    }
    let tenant = value(secret, name, TENANT_KEY)?;
    let client = value(secret, name, CLIENT_ID_KEY)?;
    let client_secret = value(secret, name, CLIENT_SECRET_KEY)?;
    match (tenant, client, client_secret) {
        (Some(tenant_id), Some(client_id), Some(s)) => Ok(Credentials::ClientSecret {
            tenant_id,
            client_id,
            client_secret: SecretString::from(s),
            scope: format!(
                "{}/{name}",
                secret.metadata.namespace.as_deref().unwrap_or_default()
            ),
        }),
        _ => Err(CredentialsError::MissingKeys {
            name: name.to_string(),
        }),
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
            credentials: from_secret(&secret, name),
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

#[derive(Default)]
struct Inner {
    /// Bumped by every change the Secret watch reports, of any Secret: a
    /// read that began before a change is not stored.
    epoch: u64,
    values: HashMap<(String, String), SecretReading>,
}

impl CredentialsCache {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value, and the epoch to hand back to [`Self::put`].
    pub fn get(&self, ns: &str, name: &str) -> (u64, Option<SecretReading>) {
        let inner = self.inner();
        let key = (ns.to_string(), name.to_string());
        (inner.epoch, inner.values.get(&key).cloned())
    }

    /// Stores what a read found, unless a Secret changed since `epoch` (the
    /// read may have raced with the change).
    pub fn put(&self, ns: &str, name: &str, epoch: u64, value: SecretReading) {
        let mut inner = self.inner();
        if inner.epoch == epoch {
            inner
                .values
                .insert((ns.to_string(), name.to_string()), value);
        }
    }

    /// The Secret was added, changed or deleted.
    pub fn invalidate(&self, ns: &str, name: &str) {
        let mut inner = self.inner();
        inner.epoch += 1;
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
        let Credentials::Token(t) = from_secret(&s, "cpp").unwrap() else {
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
            from_secret(&s, "cpp"),
            Ok(Credentials::ClientSecret { .. })
        ));
        let s = secret(&[("tenantId", b"t"), ("clientId", b"c")]);
        assert_eq!(
            from_secret(&s, "cpp").unwrap_err(),
            CredentialsError::MissingKeys { name: "cpp".into() }
        );
        assert!(from_secret(&Secret::default(), "cpp").is_err());
    }

    #[test]
    fn bad_values_are_named_but_never_shown() {
        let s = secret(&[("token", &[0xff, 0xfe, b's', b'3', b'c'])]);
        let err = from_secret(&s, "cpp").unwrap_err().to_string();
        assert!(err.contains("token") && !err.contains("s3c"), "{err}");
    }
}
