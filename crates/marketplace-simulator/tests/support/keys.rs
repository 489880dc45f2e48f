//! Test keys: an RSA key and its self-signed certificate made by the
//! `openssl` command, and assertions signed with them. Shared by the
//! crate's unit tests (`#[path]` from lib.rs) and its HTTP tests.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A private key (PKCS#8 PEM) and its certificate (PEM).
#[derive(Debug, Clone)]
pub struct TestKey {
    pub key_pem: String,
    pub cert_pem: String,
}

impl TestKey {
    /// A 2048-bit key and a certificate valid for `days` from now.
    pub fn generate(days: u32) -> TestKey {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "marketplace-simulator-keys-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (key, cert) = (dir.join("k.pem"), dir.join("c.pem"));
        let status = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args([
                "-days",
                &days.to_string(),
                "-subj",
                "/CN=marketplace-simulator-test",
            ])
            .output()
            .expect("openssl must be installed to run these tests");
        assert!(status.status.success(), "openssl: {status:?}");
        let pair = TestKey {
            key_pem: std::fs::read_to_string(&key).unwrap(),
            cert_pem: std::fs::read_to_string(&cert).unwrap(),
        };
        let _ = std::fs::remove_dir_all(&dir);
        pair
    }

    /// `x5t#S256`: base64url SHA-256 of the certificate's DER.
    pub fn thumbprint(&self) -> String {
        let (_, pem) = x509_parser::pem::parse_x509_pem(self.cert_pem.as_bytes()).unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, &pem.contents);
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    }

    /// The public key as a JWK, as an issuer's JWKS lists it.
    pub fn jwk(&self, kid: &str) -> Value {
        let (_, pem) = x509_parser::pem::parse_x509_pem(self.cert_pem.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = cert.public_key().parsed() else {
            panic!("not an RSA key");
        };
        let trimmed = |b: &[u8]| {
            let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
            URL_SAFE_NO_PAD.encode(&b[first..])
        };
        json!({
            "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": trimmed(rsa.modulus), "e": trimmed(rsa.exponent),
        })
    }

    /// `claims` signed with `alg`, the header as `header` leaves it.
    pub fn sign(&self, alg: Algorithm, header: impl FnOnce(&mut Header), claims: &Value) -> String {
        let mut h = Header::new(alg);
        header(&mut h);
        let key = EncodingKey::from_rsa_pem(self.key_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&h, claims, &key).unwrap()
    }

    /// A certificate assertion: `x5t#S256` of this certificate.
    pub fn certificate_assertion(&self, alg: Algorithm, claims: &Value) -> String {
        let thumbprint = self.thumbprint();
        self.sign(alg, |h| h.x5t_s256 = Some(thumbprint), claims)
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a certificate assertion of `client_id` for `tenant`'s
/// token endpoint at `host`, valid ten minutes from `at`.
pub fn client_claims(client_id: &str, tenant: &str, host: &str, at: i64) -> Value {
    json!({
        "iss": client_id, "sub": client_id,
        "aud": format!("{host}/{tenant}/oauth2/v2.0/token"),
        "jti": format!("{at}-{}", fastrand::u64(..)),
        "nbf": at, "iat": at, "exp": at + 600,
    })
}

/// The claims of a Kubernetes ServiceAccount token.
pub fn service_account_claims(issuer: &str, subject: &str, audience: &str, at: i64) -> Value {
    json!({
        "iss": issuer, "sub": subject, "aud": [audience],
        "nbf": at, "iat": at, "exp": at + 3600,
    })
}
