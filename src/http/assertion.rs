//! Client assertions for Entra ID's v2.0 token endpoint, in place of a
//! client secret: a JWT signed with the app's certificate, or a token the
//! Kubernetes API server issued to a ServiceAccount (workload identity).
//!
//! A certificate assertion is signed PS256 (RSASSA-PSS, SHA-256) and names
//! its certificate by `x5t#S256`, the SHA-256 thumbprint: that is what
//! Entra's certificate-credentials page asks for today (RS256 with the
//! SHA-1 `x5t` is its older form). The signing is jsonwebtoken's, on ring,
//! the crypto library rustls already uses here.

use base64::Engine;
use futures::future::BoxFuture;
use jiff::Timestamp;
use secrecy::SecretString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The audience a ServiceAccount token is requested for: the one Entra's
/// federated credentials expect by default.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// How long a certificate assertion is valid: Entra asks for at most 10 min.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// The clock skew Entra ID allows when it checks times.
const CLOCK_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);

/// What proves the app's identity to Entra ID, instead of a client secret.
#[derive(Clone, Debug)]
pub enum Proof {
    /// A token for this ServiceAccount, of the resource's own namespace,
    /// from the API server (TokenRequest): workload identity.
    ServiceAccount { namespace: String, name: String },
    /// A federated token read from a file at each exchange (the Azure
    /// Workload Identity webhook's `AZURE_FEDERATED_TOKEN_FILE`): the CLI's.
    TokenFile(PathBuf),
    /// An assertion signed with the app's certificate.
    Certificate(Arc<ClientCertificate>),
}

impl Proof {
    /// The subject an Entra federated credential must name for this proof.
    pub fn subject(&self) -> Option<String> {
        match self {
            Proof::ServiceAccount { namespace, name } => {
                Some(format!("system:serviceaccount:{namespace}:{name}"))
            }
            Proof::TokenFile(_) | Proof::Certificate(_) => None,
        }
    }
}

/// Issues tokens for a namespace's ServiceAccount. The controller's asks
/// the API server (TokenRequest); tests may stand in for it.
pub trait ServiceAccountTokens: Send + Sync {
    /// A short-lived token for `namespace/name`, for
    /// [`TOKEN_EXCHANGE_AUDIENCE`].
    fn token<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<SecretString, ServiceAccountTokenError>>;
}

/// Why the API server gave no ServiceAccount token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceAccountTokenError {
    #[error(
        "ServiceAccount {namespace}/{name} not found: create it, or name another with the Secret's key serviceAccountName"
    )]
    NotFound { namespace: String, name: String },
    #[error(
        "the API server refused a token for ServiceAccount {namespace}/{name} (HTTP {status}){}",
        if *status == 403 { format!(": the operator needs serviceaccounts/token create in {namespace}") } else { String::new() }
    )]
    Refused {
        namespace: String,
        name: String,
        status: u16,
    },
    #[error("asking the API server for a token for ServiceAccount {namespace}/{name}: {detail}")]
    Unreachable {
        namespace: String,
        name: String,
        detail: String,
    },
    #[error("this process cannot ask the API server for ServiceAccount tokens")]
    NoApiServer,
}

impl ServiceAccountTokenError {
    /// Whether it may go away by itself (the API server was not reached).
    pub fn is_transient(&self) -> bool {
        matches!(self, ServiceAccountTokenError::Unreachable { .. })
    }
}

/// An app's certificate and its private key, read from PEM. Its `Debug`
/// shows the thumbprint and expiry, never the key.
pub struct ClientCertificate {
    /// base64url SHA-256 of the certificate's DER: `x5t#S256`.
    thumbprint: String,
    not_before: Timestamp,
    not_after: Timestamp,
    key: jsonwebtoken::EncodingKey,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("thumbprint", &self.thumbprint)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Why a PEM does not yield a usable certificate. No variant carries any
/// part of the PEM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("holds no PEM block CERTIFICATE")]
    NoCertificate,
    #[error("its PEM cannot be read")]
    BadPem,
    #[error("its certificate cannot be read as X.509")]
    BadCertificate,
    #[error("holds no private key (PEM PRIVATE KEY, RSA PRIVATE KEY or ENCRYPTED PRIVATE KEY)")]
    NoKey,
    #[error("its private key is encrypted: put its password under clientCertificatePassword")]
    NeedsPassword,
    #[error("its private key cannot be decrypted with clientCertificatePassword")]
    WrongPassword,
    #[error(
        "its private key's encryption is not supported (use PBES2: openssl pkcs8 -topk8 -v2 aes-256-cbc)"
    )]
    UnsupportedEncryption,
    #[error(
        "its private key's encryption asks for more work than allowed (PBKDF2 up to 1,000,000 iterations; scrypt up to 64 MiB)"
    )]
    ExcessiveEncryption,
    #[error(
        "its private key is not an RSA key of 2048 to 4096 bits (Entra ID signs assertions with RSA)"
    )]
    NotRsa,
    #[error("its private key could not sign the assertion")]
    Signing,
    #[error("its private key does not belong to its certificate")]
    KeyMismatch,
    #[error("its certificate expired at {0}")]
    Expired(Timestamp),
    #[error("its certificate is not valid before {0}")]
    NotYetValid(Timestamp),
}

impl ClientCertificate {
    /// Reads `pem`: the first certificate and the private key beside it,
    /// decrypted with `password` when it is encrypted.
    pub fn from_pem(pem: &[u8], password: Option<&str>) -> Result<Self, CertificateError> {
        let mut certificate = None;
        let mut key = None;
        for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
            let block = block.map_err(|_| CertificateError::BadPem)?;
            match block.label.as_str() {
                "CERTIFICATE" if certificate.is_none() => certificate = Some(block.contents),
                "PRIVATE KEY" | "RSA PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" if key.is_none() => {
                    key = Some((block.label, block.contents))
                }
                _ => {}
            }
        }
        let der = certificate.ok_or(CertificateError::NoCertificate)?;
        let (label, key_der) = key.ok_or(CertificateError::NoKey)?;
        let pkcs1 = rsa_private_key(&label, &key_der, password)?;
        Self::from_der(&der, &pkcs1)
    }

    fn from_der(der: &[u8], pkcs1: &[u8]) -> Result<Self, CertificateError> {
        use x509_parser::prelude::FromDer;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
            .map_err(|_| CertificateError::BadCertificate)?;
        let pair =
            ring::signature::RsaKeyPair::from_der(pkcs1).map_err(|_| CertificateError::NotRsa)?;
        let certified = cert.public_key().subject_public_key.data.as_ref();
        if ring::signature::KeyPair::public_key(&pair).as_ref() != certified {
            return Err(CertificateError::KeyMismatch);
        }
        let at = |t: x509_parser::time::ASN1Time| {
            Timestamp::from_second(t.timestamp()).map_err(|_| CertificateError::BadCertificate)
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        Ok(ClientCertificate {
            thumbprint: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest),
            not_before: at(cert.validity().not_before)?,
            not_after: at(cert.validity().not_after)?,
            key: jsonwebtoken::EncodingKey::from_rsa_der(pkcs1),
        })
    }

    /// `x5t#S256`: who the assertion says signed it.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Refused when it is not valid at `now`: Entra would refuse it too.
    /// A certificate issued moments ago is taken (Entra allows five
    /// minutes of clock skew), so a clock a little behind the issuer's
    /// does not fail a fresh one.
    pub fn valid_at(&self, now: Timestamp) -> Result<(), CertificateError> {
        if now >= self.not_after {
            return Err(CertificateError::Expired(self.not_after));
        }
        if now + CLOCK_SKEW < self.not_before {
            return Err(CertificateError::NotYetValid(self.not_before));
        }
        Ok(())
    }

    /// A signed assertion that `client_id` is calling `token_url`, valid
    /// for ten minutes from `now`.
    pub fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        now: Timestamp,
    ) -> Result<SecretString, CertificateError> {
        self.valid_at(now)?;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
        header.x5t_s256 = Some(self.thumbprint.clone());
        let iat = now.as_second();
        let claims = serde_json::json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            "nbf": iat,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME.as_secs() as i64,
        });
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map(SecretString::from)
            .map_err(|_| CertificateError::Signing)
    }
}

/// The PKCS#1 RSA key in a PEM private-key block of kind `label`.
fn rsa_private_key(
    label: &str,
    der: &[u8],
    password: Option<&str>,
) -> Result<Vec<u8>, CertificateError> {
    match label {
        "RSA PRIVATE KEY" => Ok(der.to_vec()),
        "PRIVATE KEY" => pkcs8_rsa_key(der),
        _ => {
            let password = password.ok_or(CertificateError::NeedsPassword)?;
            let encrypted = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der)
                .map_err(|_| CertificateError::BadPem)?;
            bounded(&encrypted.encryption_algorithm)?;
            let plain = encrypted
                .decrypt(password)
                .map_err(|_| CertificateError::WrongPassword)?;
            pkcs8_rsa_key(plain.as_bytes())
        }
    }
}

/// Most PBKDF2 iterations an encrypted key may ask for (openssl's default
/// is 2,048; OWASP asks for 600,000 with SHA-256).
const MAX_PBKDF2_ITERATIONS: u32 = 1_000_000;
/// Most memory scrypt may take for a key (128·N·r bytes): 64 MiB.
const MAX_SCRYPT_MEMORY: u128 = 64 << 20;
/// Most scrypt work (N·r·p) a key may ask for: twice openssl's default
/// (N 16384, r 8, p 16).
const MAX_SCRYPT_WORK: u128 = 1 << 22;

/// Refuses key derivation beyond the bounds above before any is done:
/// its parameters come from the Secret, and unbounded ones would hold a
/// worker for hours or abort the process on allocation.
fn bounded(scheme: &pkcs8::pkcs5::EncryptionScheme) -> Result<(), CertificateError> {
    use pkcs8::pkcs5::{EncryptionScheme, pbes2::Kdf};
    let EncryptionScheme::Pbes2(parameters) = scheme else {
        return Err(CertificateError::UnsupportedEncryption);
    };
    let within = match &parameters.kdf {
        Kdf::Pbkdf2(p) => p.iteration_count <= MAX_PBKDF2_ITERATIONS,
        Kdf::Scrypt(p) => {
            let (n, r) = (u128::from(p.cost_parameter), u128::from(p.block_size));
            let work = n * r * u128::from(p.parallelization);
            128 * n * r <= MAX_SCRYPT_MEMORY && work <= MAX_SCRYPT_WORK
        }
        // pkcs5 may learn other functions: none is allowed unbounded.
        _ => return Err(CertificateError::UnsupportedEncryption),
    };
    within
        .then_some(())
        .ok_or(CertificateError::ExcessiveEncryption)
}

/// The PKCS#1 key inside a PKCS#8 one, when it is RSA.
fn pkcs8_rsa_key(der: &[u8]) -> Result<Vec<u8>, CertificateError> {
    const RSA_ENCRYPTION: pkcs8::ObjectIdentifier =
        pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    let info = pkcs8::PrivateKeyInfoRef::try_from(der).map_err(|_| CertificateError::BadPem)?;
    if info.algorithm.oid != RSA_ENCRYPTION {
        return Err(CertificateError::NotRsa);
    }
    Ok(info.private_key.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::certificate;

    #[test]
    fn a_certificate_and_its_key_sign_a_ps256_assertion_naming_its_thumbprint() {
        let made = certificate::made(certificate::Validity::Current);
        let cert = ClientCertificate::from_pem(made.pem.as_bytes(), None).unwrap();
        let url = "https://login.example/t/oauth2/v2.0/token";
        let now = Timestamp::now();
        let jwt = cert.assertion("client-1", url, now).unwrap();
        let jwt = secrecy::ExposeSecret::expose_secret(&jwt);
        let header = jsonwebtoken::decode_header(jwt).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256);
        assert_eq!(header.x5t_s256.as_deref(), Some(made.thumbprint.as_str()));
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(made.public_pem.as_bytes()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::PS256);
        validation.set_audience(&[url]);
        validation.set_issuer(&["client-1"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], "client-1");
        let lifetime = claims["exp"].as_i64().unwrap() - claims["nbf"].as_i64().unwrap();
        assert_eq!(lifetime, 600, "Entra asks for at most ten minutes");
    }

    #[test]
    fn an_encrypted_key_needs_its_password() {
        let made = certificate::made(certificate::Validity::Current);
        let encrypted = certificate::with_encrypted_key(&made, "pa55");
        assert_eq!(
            ClientCertificate::from_pem(encrypted.as_bytes(), None).unwrap_err(),
            CertificateError::NeedsPassword
        );
        assert_eq!(
            ClientCertificate::from_pem(encrypted.as_bytes(), Some("wrong")).unwrap_err(),
            CertificateError::WrongPassword
        );
        let cert = ClientCertificate::from_pem(encrypted.as_bytes(), Some("pa55")).unwrap();
        assert_eq!(cert.thumbprint(), made.thumbprint);
    }

    /// An encrypted key as openssl writes one, with the key derivation
    /// its `-iter` (PBKDF2) or `-scrypt_N` asks for.
    fn encrypted_with(made: &certificate::Made, kdf: &[&str]) -> String {
        certificate::with_encrypted_key_using(made, "pa55", kdf)
    }

    #[test]
    fn a_hostile_key_derivation_is_refused_before_any_is_done() {
        // ExcessiveEncryption, not a key or WrongPassword: nothing was
        // derived (the parameters are read before any decryption).
        let made = certificate::made(certificate::Validity::Current);
        for kdf in [
            &["-v2", "aes-256-cbc", "-iter", "1000001"][..],
            &[
                "-v2",
                "aes-256-cbc",
                "-scrypt",
                // 16 MiB (openssl refuses much more), but 4.3 M units of work.
                "-scrypt_N",
                "16384",
                "-scrypt_r",
                "8",
                "-scrypt_p",
                "33",
            ][..],
        ] {
            let pem = encrypted_with(&made, kdf);
            assert_eq!(
                ClientCertificate::from_pem(pem.as_bytes(), Some("pa55")).unwrap_err(),
                CertificateError::ExcessiveEncryption,
                "{kdf:?}"
            );
        }
        let fine = encrypted_with(&made, &["-v2", "aes-256-cbc", "-scrypt"]);
        assert!(ClientCertificate::from_pem(fine.as_bytes(), Some("pa55")).is_ok());
    }

    #[test]
    fn a_certificate_issued_moments_ago_is_valid_for_a_clock_a_little_behind() {
        let made = certificate::made(certificate::Validity::Current);
        let cert = ClientCertificate::from_pem(made.pem.as_bytes(), None).unwrap();
        let issued = cert.not_before;
        assert!(
            cert.valid_at(issued - jiff::SignedDuration::from_mins(4))
                .is_ok()
        );
        assert!(matches!(
            cert.valid_at(issued - jiff::SignedDuration::from_mins(6)),
            Err(CertificateError::NotYetValid(_))
        ));
    }

    #[test]
    fn an_expired_certificate_signs_nothing() {
        let made = certificate::made(certificate::Validity::Expired);
        let cert = ClientCertificate::from_pem(made.pem.as_bytes(), None).unwrap();
        let refused = cert.assertion("c", "https://x/t/oauth2/v2.0/token", Timestamp::now());
        assert!(matches!(refused, Err(CertificateError::Expired(_))));
    }

    #[test]
    fn unreadable_pems_are_refused_without_showing_them() {
        let made = certificate::made(certificate::Validity::Current);
        let other = certificate::made(certificate::Validity::Current);
        let key_only = made.key_pem.clone();
        let cert_only = made.cert_pem.clone();
        let mismatched = format!("{}{}", made.cert_pem, other.key_pem);
        let cases: [(&str, CertificateError); 4] = [
            (&key_only, CertificateError::NoCertificate),
            (&cert_only, CertificateError::NoKey),
            (&mismatched, CertificateError::KeyMismatch),
            (
                "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
                CertificateError::BadPem,
            ),
        ];
        for (pem, expected) in cases {
            let refused = ClientCertificate::from_pem(pem.as_bytes(), None).unwrap_err();
            assert_eq!(refused, expected);
            assert!(!refused.to_string().contains("MII"), "{refused}");
        }
        let debug = format!(
            "{:?}",
            ClientCertificate::from_pem(made.pem.as_bytes(), None).unwrap()
        );
        assert!(
            !debug.contains("MII") && debug.contains(&made.thumbprint),
            "{debug}"
        );
    }

    #[test]
    fn a_service_account_proof_names_the_subject_entra_must_expect() {
        let proof = Proof::ServiceAccount {
            namespace: "team-a".into(),
            name: "offercancel".into(),
        };
        assert_eq!(
            proof.subject().as_deref(),
            Some("system:serviceaccount:team-a:offercancel")
        );
    }
}
