//! Reading CPP credentials out of a Kubernetes Secret. Error texts name the
//! Secret and its keys, never a value.

use k8s_openapi::api::core::v1::Secret;
use secrecy::SecretString;

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
