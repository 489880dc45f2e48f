//! Fetching an OIDC issuer's signing keys (its JWKS), as Entra ID does
//! before it verifies a federated client assertion. Done outside the
//! state's lock: the answer waits on the network.

use std::time::Duration;

use crate::assertion::{IssuerKeys, parse_jwks};
use crate::scenario::Issuer;

/// A fetch that takes longer fails: a test waits no longer than this.
const TIMEOUT: Duration = Duration::from_secs(10);
/// A JWKS is a few keys; a larger answer is not one.
const MAX_BODY: usize = 1 << 20;

/// `issuer`'s keys, fetched now (every request: only a few trials use
/// federated credentials, and a rotated key is seen at once).
pub async fn fetch(issuer: &Issuer) -> IssuerKeys {
    match try_fetch(issuer).await {
        Ok(keys) => IssuerKeys::Keys(keys),
        Err(why) => {
            tracing::warn!(issuer = %issuer.issuer, jwks_uri = %issuer.jwks_uri, %why, "JWKS fetch failed");
            IssuerKeys::Unreachable(why)
        }
    }
}

async fn try_fetch(issuer: &Issuer) -> Result<Vec<jsonwebtoken::jwk::Jwk>, String> {
    let uri = &issuer.jwks_uri;
    // No credentials: the keys are public (a Kubernetes API server serves
    // them to anyone when service-account-issuer-discovery is granted).
    let response = client(issuer.ca_file.as_deref())?
        .get(uri)
        // The API server serves `application/jwk-set+json` and answers 406
        // to an Accept of `application/json` alone.
        .header("accept", "application/jwk-set+json, application/json")
        .send()
        .await
        .map_err(|e| format!("GET {uri}: {}", chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET {uri}: HTTP {status}"));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("GET {uri}: {}", chain(&e)))?;
    if body.len() > MAX_BODY {
        return Err(format!("GET {uri}: more than {MAX_BODY} bytes"));
    }
    parse_jwks(&body).map_err(|e| format!("GET {uri}: {e}"))
}

/// A client trusting only `ca_file`'s certificates when given (the API
/// server's own CA), the system's otherwise.
fn client(ca_file: Option<&str>) -> Result<reqwest::Client, String> {
    // reqwest is built without a crypto provider of its own; a second
    // install is refused harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A proxy from the environment would not reach a local issuer.
    let mut builder = reqwest::Client::builder().timeout(TIMEOUT).no_proxy();
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("reading caFile {path}: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("caFile {path}: {}", chain(&e)))?;
        if certs.is_empty() {
            return Err(format!("caFile {path}: no PEM certificate"));
        }
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|e| format!("building the HTTP client: {}", chain(&e)))
}

/// An error and its causes (reqwest's own text hides the TLS reason).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
