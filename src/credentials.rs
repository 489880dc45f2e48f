//! Reading CPP credentials out of a Kubernetes Secret. Error texts name the
//! Secret and its keys, never a value.

use k8s_openapi::api::core::v1::Secret;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::cpp::Credentials;

pub const TOKEN_KEY: &str = "token";
pub const TENANT_KEY: &str = "tenantId";
pub const CLIENT_ID_KEY: &str = "clientId";
pub const CLIENT_SECRET_KEY: &str = "clientSecret";

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
pub fn from_secret(secret: &Secret, name: &str) -> Result<Credentials, CredentialsError> {
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
        }),
        _ => Err(CredentialsError::MissingKeys {
            name: name.to_string(),
        }),
    }
}

/// Credentials read from a Secret, with the Secret's resourceVersion.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub version: Option<String>,
    pub credentials: Credentials,
}

#[derive(Default)]
struct Slot {
    /// Bumped by every change the Secret watch reports.
    epoch: u64,
    value: Option<Resolved>,
}

/// Credentials per Secret, kept until the Secret watch reports a change, so
/// a poll does not cost a Secret GET. Only usable credentials are kept: a
/// missing Secret is looked up again on the next reconcile.
#[derive(Default)]
pub struct CredentialsCache {
    slots: Mutex<HashMap<(String, String), Slot>>,
}

impl CredentialsCache {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value, and the epoch to hand back to [`Self::put`].
    pub fn get(&self, ns: &str, name: &str) -> (u64, Option<Resolved>) {
        let slots = self.slots();
        match slots.get(&(ns.to_string(), name.to_string())) {
            Some(slot) => (slot.epoch, slot.value.clone()),
            None => (0, None),
        }
    }

    /// Stores what a read found, unless the Secret changed since `epoch`
    /// (the read may have raced with the change).
    pub fn put(&self, ns: &str, name: &str, epoch: u64, value: Resolved) {
        let mut slots = self.slots();
        let slot = slots.entry((ns.to_string(), name.to_string())).or_default();
        if slot.epoch == epoch {
            slot.value = Some(value);
        }
    }

    /// The Secret was added, changed or deleted.
    pub fn invalidate(&self, ns: &str, name: &str) {
        let mut slots = self.slots();
        let slot = slots.entry((ns.to_string(), name.to_string())).or_default();
        slot.epoch += 1;
        slot.value = None;
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

    fn resolved(version: &str) -> Resolved {
        Resolved {
            version: Some(version.into()),
            credentials: Credentials::Token(SecretString::from("t")),
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
