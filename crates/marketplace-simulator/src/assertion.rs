//! Client assertions of the Entra ID v2.0 token endpoint, checked as Entra
//! checks them: a JWT signed by one of the principal's certificates
//! (`x5t#S256` in its header), or a token of another issuer matching one
//! of its federated credentials. Pure functions: the keys and the clock
//! come in, an [`EntraError`] goes out; no I/O here.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::{Value, json};

use crate::reply::Reply;
use crate::scenario::{FederatedCredential, Principal};

/// The only `client_assertion_type` Entra accepts.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Clock skew allowed on an assertion's `exp` and `nbf`, as Entra allows.
pub const CLOCK_SKEW_SECONDS: i64 = 300;
/// Signature algorithms accepted: Entra's documented ones for certificate
/// credentials, and what Kubernetes signs ServiceAccount tokens with.
const ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::PS256];

/// base64url, padded or not: JWTs are unpadded, but a tolerant reader
/// costs nothing here.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A refusal in Entra ID's terms: the HTTP status, the OAuth `error`, the
/// `AADSTS` number and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraError {
    pub status: u16,
    pub error: &'static str,
    pub code: u32,
    pub description: String,
}

impl EntraError {
    pub fn new(
        status: u16,
        error: &'static str,
        code: u32,
        description: impl Into<String>,
    ) -> Self {
        EntraError {
            status,
            error,
            code,
            description: description.into(),
        }
    }

    /// 400 `invalid_client`, the answer to most assertions that fail a check.
    fn client(code: u32, description: impl Into<String>) -> Self {
        EntraError::new(400, "invalid_client", code, description)
    }

    /// 401 `invalid_client`, AADSTS700027: no key, an expired key or a
    /// signature that does not verify.
    fn signature(description: impl Into<String>) -> Self {
        EntraError::new(401, "invalid_client", 700_027, description)
    }

    /// 400 `invalid_request`, AADSTS50027: not a JWT Entra can read.
    fn malformed(why: &str) -> Self {
        EntraError::new(
            400,
            "invalid_request",
            50_027,
            format!("JWT token is invalid or malformed: {why}."),
        )
    }

    /// The body Entra answers with, trace and correlation ids included.
    pub fn reply(&self) -> Reply {
        let timestamp = jiff::Timestamp::now()
            .strftime("%Y-%m-%d %H:%M:%SZ")
            .to_string();
        let (trace, correlation) = (guid(), guid());
        let description = format!(
            "AADSTS{}: {}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}",
            self.code, self.description
        );
        Reply::json(
            self.status,
            json!({
                "error": self.error,
                "error_description": description,
                "error_codes": [self.code],
                "timestamp": timestamp,
                "trace_id": trace,
                "correlation_id": correlation,
                "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
            }),
        )
    }
}

impl std::fmt::Display for EntraError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AADSTS{}: {}", self.code, self.description)
    }
}

fn guid() -> String {
    let r = fastrand::u128(..);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (r >> 96) as u32,
        (r >> 80) as u16,
        (r >> 64) as u16,
        (r >> 48) as u16,
        r & 0xffff_ffff_ffff
    )
}

/// The claims Entra looks at, read leniently: a claim of the wrong type
/// counts as absent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Claims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    /// `aud`, a string or an array of them.
    pub aud: Vec<String>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
}

impl Claims {
    fn from_json(v: &Value) -> Claims {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        // Whole seconds; a fraction (allowed by RFC 7519) is cut off.
        let time = |k: &str| {
            let n = v.get(k)?;
            n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))
        };
        let aud = match v.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => vec![],
        };
        Claims {
            iss: text("iss"),
            sub: text("sub"),
            aud,
            exp: time("exp"),
            nbf: time("nbf"),
        }
    }

    fn aud_text(&self) -> String {
        self.aud.join(", ")
    }
}

/// A client assertion, read but not yet verified.
#[derive(Debug, Clone)]
pub struct Assertion<'a> {
    raw: &'a str,
    pub header: Header,
    pub claims: Claims,
}

impl<'a> Assertion<'a> {
    /// Reads the header and claims (AADSTS50027 if it cannot): three
    /// base64url parts, a header with an accepted `alg`, a JSON object of
    /// claims with an `exp`.
    pub fn parse(raw: &'a str) -> Result<Assertion<'a>, EntraError> {
        let parts: Vec<&str> = raw.split('.').collect();
        let [_, payload, _] = parts[..] else {
            return Err(EntraError::malformed("not three dot-separated parts"));
        };
        let header = jsonwebtoken::decode_header(raw)
            .map_err(|_| EntraError::malformed("unreadable header"))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(EntraError::malformed("alg must be RS256 or PS256"));
        }
        let claims: Value = BASE64URL
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .filter(Value::is_object)
            .ok_or_else(|| EntraError::malformed("the claims are not a base64url JSON object"))?;
        let claims = Claims::from_json(&claims);
        if claims.exp.is_none() {
            return Err(EntraError::malformed("no exp claim"));
        }
        Ok(Assertion {
            raw,
            header,
            claims,
        })
    }

    /// Signed with a certificate: it names one. `x5t` (SHA-1) alone counts
    /// too, so that such a client is told it named no known key rather
    /// than taken for a federated one.
    pub fn is_certificate(&self) -> bool {
        self.header.x5t_s256.is_some() || self.header.x5t.is_some()
    }

    /// Whether `key` signed it (with the header's algorithm).
    fn signed_by(&self, key: &DecodingKey) -> bool {
        let mut validation = Validation::new(self.header.alg);
        // Signature only: the times and claims are checked below, against
        // the caller's clock and in Entra's order.
        validation.algorithms = ALGORITHMS.to_vec();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(self.raw, key, &validation).is_ok()
    }
}

/// A registered certificate: what the checks need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// base64url (unpadded) SHA-256 of its DER: what `x5t#S256` names.
    pub thumbprint: String,
    /// Its RSA key, PKCS#1 RSAPublicKey DER.
    pub public_key: Vec<u8>,
    /// Its notBefore, Unix seconds.
    pub not_before: i64,
    /// Its notAfter, Unix seconds.
    pub not_after: i64,
}

impl Certificate {
    /// A PEM X.509 certificate with an RSA key. The error never quotes the
    /// PEM.
    pub fn parse(pem: &str) -> Result<Certificate, String> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|_| "not a PEM block".to_string())?;
        if pem.label != "CERTIFICATE" {
            return Err(format!("a PEM {:?}, not a CERTIFICATE", pem.label));
        }
        let cert = pem
            .parse_x509()
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let spki = cert.public_key();
        match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(_)) => {}
            _ => return Err("its key is not an RSA key".into()),
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &pem.contents);
        Ok(Certificate {
            thumbprint: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            public_key: spki.subject_public_key.data.to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

/// The `x5t#S256` of a PEM certificate, as a client puts it in its
/// assertions' header.
pub fn certificate_thumbprint(pem: &str) -> Result<String, String> {
    Certificate::parse(pem).map(|c| c.thumbprint)
}

/// An issuer's signing keys, as the pre-step found them.
#[derive(Debug, Clone)]
pub enum IssuerKeys {
    /// The scenario lists no such issuer (or none was asked for).
    Unknown,
    /// Its JWKS could not be fetched or read: why.
    Unreachable(String),
    Keys(Vec<Jwk>),
}

/// The keys of a JWKS document: those jsonwebtoken reads (others, such as
/// a key type it does not know, are skipped rather than failing the set).
pub fn parse_jwks(body: &[u8]) -> Result<Vec<Jwk>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no \"keys\" array")?;
    Ok(keys
        .iter()
        .filter_map(|k| serde_json::from_value(k.clone()).ok())
        .collect())
}

/// Verifies `assertion` as `principal`'s credential at the token endpoint
/// of `tenant`, at Unix time `now`. `keys`: the federated issuer's keys
/// (unused for a certificate assertion).
pub fn verify(
    assertion: &Assertion<'_>,
    tenant: &str,
    principal: &Principal,
    keys: &IssuerKeys,
    now: i64,
) -> Result<(), EntraError> {
    if assertion.is_certificate() {
        verify_certificate(assertion, tenant, principal, now)
    } else {
        verify_federated(assertion, &principal.federated_credentials, keys, now)
    }
}

/// A certificate assertion: the named certificate is registered and not
/// expired, its key signed, the times hold, `iss` and `sub` are the
/// client and `aud` is this tenant's token endpoint.
pub fn verify_certificate(
    assertion: &Assertion<'_>,
    tenant: &str,
    principal: &Principal,
    now: i64,
) -> Result<(), EntraError> {
    let client_id = &principal.client_id;
    let named = assertion.header.x5t_s256.as_deref().unwrap_or("");
    let named = named.trim_end_matches('=');
    let cert = principal
        .certificates
        .iter()
        .filter_map(|pem| Certificate::parse(pem).ok())
        .find(|c| !named.is_empty() && c.thumbprint == named)
        .ok_or_else(|| {
            EntraError::signature(format!(
                "Client assertion failed signature validation. The key was not found: \
                 no certificate with x5t#S256 '{named}' is registered for app '{client_id}' \
                 (the simulator matches certificates by x5t#S256 only)."
            ))
        })?;
    // Entra refuses a key credential outside its dates (with its usual
    // five minutes of skew before the start).
    if now + 300 < cert.not_before {
        return Err(EntraError::signature(format!(
            "Client assertion failed signature validation: the key used is not yet valid \
             (certificate x5t#S256 '{named}' of app '{client_id}')."
        )));
    }
    if cert.not_after < now {
        return Err(EntraError::signature(format!(
            "Client assertion failed signature validation: the key used is expired \
             (certificate x5t#S256 '{named}' of app '{client_id}')."
        )));
    }
    if !assertion.signed_by(&DecodingKey::from_rsa_der(&cert.public_key)) {
        return Err(EntraError::signature(format!(
            "Client assertion contains an invalid signature. [Reason - The key was found, \
             but the signature does not verify, Thumbprint of key used by client: '{named}']"
        )));
    }
    check_times(&assertion.claims, now)?;
    check_client(&assertion.claims, client_id)?;
    check_token_endpoint(&assertion.claims, tenant)
}

/// `iss` and `sub` must both be the client. AADSTS700021, Entra's
/// "ClientAssertionApplicationIdMismatch".
fn check_client(claims: &Claims, client_id: &str) -> Result<(), EntraError> {
    let is_client = |c: &Option<String>| c.as_deref() == Some(client_id);
    if is_client(&claims.iss) && is_client(&claims.sub) {
        return Ok(());
    }
    Err(EntraError::client(
        700_021,
        format!(
            "Client assertion application identifier doesn't match 'client_id' parameter: \
             iss '{}' and sub '{}' must both be '{client_id}'.",
            claims.iss.as_deref().unwrap_or(""),
            claims.sub.as_deref().unwrap_or("")
        ),
    ))
}

/// `aud` must be this tenant's v2.0 token endpoint, on any host (the
/// simulator does not know the name it is reached by). AADSTS700023,
/// Entra's "client assertion audience claim does not match Realm issuer".
fn check_token_endpoint(claims: &Claims, tenant: &str) -> Result<(), EntraError> {
    let path = format!("/{tenant}/oauth2/v2.0/token");
    let ok = claims
        .aud
        .iter()
        .filter_map(|a| url::Url::parse(a).ok())
        .any(|u| matches!(u.scheme(), "http" | "https") && u.path() == path);
    if ok {
        return Ok(());
    }
    Err(EntraError::client(
        700_023,
        format!(
            "Client assertion audience claim does not match Realm issuer: aud '{}' is not a \
             URL with path '{path}'.",
            claims.aud_text()
        ),
    ))
}

/// `exp` and `nbf`, with [`CLOCK_SKEW_SECONDS`] either way. AADSTS700024.
fn check_times(claims: &Claims, now: i64) -> Result<(), EntraError> {
    let expired = claims
        .exp
        .is_none_or(|exp| exp.saturating_add(CLOCK_SKEW_SECONDS) < now);
    let early = claims
        .nbf
        .is_some_and(|nbf| nbf.saturating_sub(CLOCK_SKEW_SECONDS) > now);
    if !expired && !early {
        return Ok(());
    }
    let at = |t: Option<i64>| match t {
        None => "none".to_string(),
        Some(s) => {
            jiff::Timestamp::from_second(s).map_or_else(|_| s.to_string(), |t| t.to_string())
        }
    };
    Err(EntraError::client(
        700_024,
        format!(
            "Client assertion is not within its valid time range. Current time: {}, \
             assertion valid from {}, expiry time of assertion {}.",
            at(Some(now)),
            at(claims.nbf),
            at(claims.exp)
        ),
    ))
}

/// A federated assertion: its issuer is one of the credentials', one of
/// the issuer's keys signed it, the times hold, and a credential of that
/// issuer names its audience and subject.
pub fn verify_federated(
    assertion: &Assertion<'_>,
    credentials: &[FederatedCredential],
    keys: &IssuerKeys,
    now: i64,
) -> Result<(), EntraError> {
    let claims = &assertion.claims;
    let issuer = claims.iss.as_deref().unwrap_or("");
    let of_issuer: Vec<&FederatedCredential> =
        credentials.iter().filter(|c| c.issuer == issuer).collect();
    let unknown_issuer = || {
        EntraError::client(
            700_211,
            format!(
                "No matching federated identity record found for presented assertion issuer \
                 '{issuer}'. Please note that the matching is done using a case-sensitive comparison."
            ),
        )
    };
    if of_issuer.is_empty() {
        return Err(unknown_issuer());
    }
    let keys = match keys {
        IssuerKeys::Keys(keys) => keys,
        IssuerKeys::Unknown => return Err(unknown_issuer()),
        // AADSTS50166, what Entra answers when it cannot read an external
        // issuer's discovery document or keys.
        IssuerKeys::Unreachable(why) => {
            return Err(EntraError::client(
                50_166,
                format!("Request to External OIDC endpoint failed: {why}"),
            ));
        }
    };
    check_federated_signature(assertion, keys)?;
    check_times(claims, now)?;
    match_credential(claims, &of_issuer)
}

/// Signed by the issuer's key of the header's `kid`, or without a `kid`,
/// by any of its RSA keys.
fn check_federated_signature(assertion: &Assertion<'_>, keys: &[Jwk]) -> Result<(), EntraError> {
    let kid = assertion.header.kid.as_deref();
    let candidates: Vec<DecodingKey> = keys
        .iter()
        .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
        .filter(|k| matches!(k.algorithm, jsonwebtoken::jwk::AlgorithmParameters::RSA(_)))
        .filter_map(|k| DecodingKey::from_jwk(k).ok())
        .collect();
    if candidates.is_empty() {
        return Err(EntraError::signature(format!(
            "Client assertion failed signature validation. The key was not found: the \
             issuer's keys have no RSA key with kid '{}'.",
            kid.unwrap_or("")
        )));
    }
    if candidates.iter().any(|k| assertion.signed_by(k)) {
        return Ok(());
    }
    Err(EntraError::signature(
        "Client assertion contains an invalid signature: no key of the issuer verifies it.",
    ))
}

/// A credential of the issuer with one of its audiences in `aud`
/// (AADSTS700212 if none) and the assertion's subject: AADSTS700213 if
/// none, AADSTS7002138 when one differs only in letter case (as Entra
/// answers today; its older answer was AADSTS70021).
fn match_credential(claims: &Claims, of_issuer: &[&FederatedCredential]) -> Result<(), EntraError> {
    let for_audience: Vec<&&FederatedCredential> = of_issuer
        .iter()
        .filter(|c| c.audiences.iter().any(|a| claims.aud.contains(a)))
        .collect();
    if for_audience.is_empty() {
        return Err(EntraError::client(
            700_212,
            format!(
                "No matching federated identity record found for presented assertion audience '{}'.",
                claims.aud_text()
            ),
        ));
    }
    let subject = claims.sub.as_deref().unwrap_or("");
    if for_audience.iter().any(|c| c.subject == subject) {
        return Ok(());
    }
    let only_case = for_audience
        .iter()
        .any(|c| c.subject.eq_ignore_ascii_case(subject));
    Err(EntraError::client(
        if only_case { 7_002_138 } else { 700_213 },
        format!(
            "No matching federated identity record found for presented assertion subject \
             '{subject}'{}. Please check your federated identity credential Subject, Audience \
             and Issuer against the presented assertion. Assertion Issuer: '{}'. Assertion \
             Audience: '{}'.",
            if only_case {
                " (the subject differs only in letter case)"
            } else {
                ""
            },
            claims.iss.as_deref().unwrap_or(""),
            claims.aud_text()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys::{TestKey, client_claims, now, service_account_claims};
    use std::sync::OnceLock;

    const TENANT: &str = "t";
    const CLIENT: &str = "c";
    const HOST: &str = "https://login.microsoftonline.com";
    const K8S: &str = "https://kubernetes.default.svc";
    const SA: &str = "system:serviceaccount:team-a:offercancel";

    /// Made once: openssl takes a while per key.
    fn key() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(|| TestKey::generate(1))
    }

    fn other_key() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(|| TestKey::generate(1))
    }

    fn principal() -> Principal {
        Principal {
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            client_secret: None,
            certificates: vec![key().cert_pem.clone()],
            federated_credentials: vec![FederatedCredential {
                issuer: K8S.into(),
                subject: SA.into(),
                audiences: vec![crate::scenario::DEFAULT_FEDERATED_AUDIENCE.into()],
            }],
            publishers: vec!["contoso".into()],
            read_only: false,
        }
    }

    fn check(raw: &str, keys: &IssuerKeys, at: i64) -> Result<(), EntraError> {
        let assertion = Assertion::parse(raw)?;
        verify(&assertion, TENANT, &principal(), keys, at)
    }

    fn code(result: Result<(), EntraError>) -> (u16, &'static str, u32) {
        let e = result.unwrap_err();
        (e.status, e.error, e.code)
    }

    fn cert_assertion(claims: &Value) -> String {
        key().certificate_assertion(Algorithm::PS256, claims)
    }

    fn jwks(kid: &str) -> IssuerKeys {
        IssuerKeys::Keys(
            parse_jwks(json!({ "keys": [key().jwk(kid)] }).to_string().as_bytes()).unwrap(),
        )
    }

    fn sa_token(kid: Option<&str>, claims: &Value) -> String {
        key().sign(
            Algorithm::RS256,
            |h| h.kid = kid.map(str::to_string),
            claims,
        )
    }

    #[test]
    fn a_certificate_assertion_signed_ps256_or_rs256_is_accepted() {
        let claims = client_claims(CLIENT, TENANT, HOST, now());
        for alg in [Algorithm::PS256, Algorithm::RS256] {
            let raw = key().certificate_assertion(alg, &claims);
            check(&raw, &IssuerKeys::Unknown, now()).unwrap();
        }
        // Any host: the simulator does not know the name it is reached by.
        let local = client_claims(CLIENT, TENANT, "http://127.0.0.1:8089", now());
        check(&cert_assertion(&local), &IssuerKeys::Unknown, now()).unwrap();
    }

    #[test]
    fn what_is_not_a_readable_jwt_is_50027() {
        let claims = client_claims(CLIENT, TENANT, HOST, now());
        let good = cert_assertion(&claims);
        let (head, rest) = good.split_once('.').unwrap();
        let no_exp = json!({"iss": CLIENT, "sub": CLIENT});
        for raw in [
            "not-a-jwt".to_string(),
            "a.b.c".to_string(),
            format!("{head}.!!!.sig"),
            format!("e30.{rest}"), // `{}`: no alg
            key().sign(Algorithm::RS384, |_| {}, &claims),
            cert_assertion(&no_exp),
        ] {
            let e = check(&raw, &IssuerKeys::Unknown, now()).unwrap_err();
            assert_eq!(
                (e.status, e.error, e.code),
                (400, "invalid_request", 50_027),
                "{raw}"
            );
        }
    }

    #[test]
    fn a_certificate_not_registered_is_700027_key_not_found() {
        let claims = client_claims(CLIENT, TENANT, HOST, now());
        let raw = other_key().certificate_assertion(Algorithm::RS256, &claims);
        let e = check(&raw, &IssuerKeys::Unknown, now()).unwrap_err();
        assert_eq!(
            (e.status, e.error, e.code),
            (401, "invalid_client", 700_027)
        );
        assert!(e.description.contains("not found"), "{e}");
        // Only a SHA-1 thumbprint: a certificate assertion with no known key.
        let sha1 = key().sign(Algorithm::RS256, |h| h.x5t = Some("abc".into()), &claims);
        assert_eq!(
            code(check(&sha1, &IssuerKeys::Unknown, now())),
            (401, "invalid_client", 700_027)
        );
    }

    #[test]
    fn a_signature_of_another_key_is_700027() {
        let claims = client_claims(CLIENT, TENANT, HOST, now());
        // Names the registered certificate, signed by another key.
        let thumbprint = key().thumbprint();
        let raw = other_key().sign(Algorithm::RS256, |h| h.x5t_s256 = Some(thumbprint), &claims);
        let e = check(&raw, &IssuerKeys::Unknown, now()).unwrap_err();
        assert_eq!((e.status, e.code), (401, 700_027));
        assert!(e.description.contains("invalid signature"), "{e}");
    }

    #[test]
    fn an_expired_certificate_is_700027_key_expired() {
        // The certificate is valid a day; three days on, it has expired
        // (the assertion itself is fresh then).
        let later = now() + 3 * 86_400;
        let raw = cert_assertion(&client_claims(CLIENT, TENANT, HOST, later));
        let e = check(&raw, &IssuerKeys::Unknown, later).unwrap_err();
        assert_eq!(
            (e.status, e.error, e.code),
            (401, "invalid_client", 700_027)
        );
        assert!(e.description.contains("the key used is expired"), "{e}");
    }

    #[test]
    fn a_certificate_before_its_not_before_is_700027_not_yet_valid() {
        let earlier = now() - 86_400;
        let raw = cert_assertion(&client_claims(CLIENT, TENANT, HOST, earlier));
        let e = check(&raw, &IssuerKeys::Unknown, earlier).unwrap_err();
        assert_eq!(
            (e.status, e.error, e.code),
            (401, "invalid_client", 700_027)
        );
        assert!(e.description.contains("not yet valid"), "{e}");
    }

    #[test]
    fn an_assertion_outside_its_time_range_is_700024_with_five_minutes_skew() {
        // An hour into the certificate's day, so only the assertion's
        // own times are out of range.
        let at = now() + 3600;
        let raw = cert_assertion(&client_claims(CLIENT, TENANT, HOST, at));
        // exp is at + 600; nbf at.
        check(&raw, &IssuerKeys::Unknown, at + 600 + 299).unwrap();
        check(&raw, &IssuerKeys::Unknown, at - 299).unwrap();
        for when in [at + 600 + 301, at - 301] {
            let e = check(&raw, &IssuerKeys::Unknown, when).unwrap_err();
            assert_eq!(
                (e.status, e.error, e.code),
                (400, "invalid_client", 700_024)
            );
        }
    }

    #[test]
    fn iss_and_sub_must_be_the_client_and_aud_the_tenants_endpoint() {
        let at = now();
        let mut claims = client_claims(CLIENT, TENANT, HOST, at);
        claims["sub"] = json!("someone-else");
        assert_eq!(
            code(check(&cert_assertion(&claims), &IssuerKeys::Unknown, at)),
            (400, "invalid_client", 700_021)
        );
        let mut claims = client_claims(CLIENT, TENANT, HOST, at);
        claims["iss"] = json!("someone-else");
        assert_eq!(
            code(check(&cert_assertion(&claims), &IssuerKeys::Unknown, at)).2,
            700_021
        );
        for aud in [
            json!(format!("{HOST}/other-tenant/oauth2/v2.0/token")),
            json!(format!("{HOST}/{TENANT}/oauth2/token")),
            json!("api://AzureADTokenExchange"),
            json!(null),
        ] {
            let mut claims = client_claims(CLIENT, TENANT, HOST, at);
            claims["aud"] = aud.clone();
            let result = check(&cert_assertion(&claims), &IssuerKeys::Unknown, at);
            assert_eq!(code(result), (400, "invalid_client", 700_023), "{aud}");
        }
        // An array with the endpoint in it will do.
        let mut claims = client_claims(CLIENT, TENANT, HOST, at);
        claims["aud"] = json!(["x", format!("{HOST}/{TENANT}/oauth2/v2.0/token")]);
        check(&cert_assertion(&claims), &IssuerKeys::Unknown, at).unwrap();
    }

    #[test]
    fn a_federated_assertion_of_the_credential_is_accepted_by_kid_or_without() {
        let claims = service_account_claims(K8S, SA, "api://AzureADTokenExchange", now());
        check(&sa_token(Some("k1"), &claims), &jwks("k1"), now()).unwrap();
        check(&sa_token(None, &claims), &jwks("k1"), now()).unwrap();
    }

    #[test]
    fn a_federated_subject_of_another_namespace_is_700213_naming_it() {
        let other = "system:serviceaccount:team-b:offercancel";
        let claims = service_account_claims(K8S, other, "api://AzureADTokenExchange", now());
        let e = check(&sa_token(Some("k1"), &claims), &jwks("k1"), now()).unwrap_err();
        assert_eq!(
            (e.status, e.error, e.code),
            (400, "invalid_client", 700_213)
        );
        assert!(
            e.description
                .contains(&format!("assertion subject '{other}'")),
            "{e}"
        );
        let shouted = SA.to_uppercase();
        let claims = service_account_claims(K8S, &shouted, "api://AzureADTokenExchange", now());
        let e = check(&sa_token(Some("k1"), &claims), &jwks("k1"), now()).unwrap_err();
        assert_eq!(e.code, 7_002_138, "{e}");
        assert!(
            e.description
                .contains(&format!("Assertion Issuer: '{K8S}'")),
            "{e}"
        );
    }

    #[test]
    fn a_federated_audience_not_of_the_credential_is_700212() {
        let claims = service_account_claims(K8S, SA, "https://kubernetes.default.svc", now());
        let e = check(&sa_token(Some("k1"), &claims), &jwks("k1"), now()).unwrap_err();
        assert_eq!(
            (e.status, e.error, e.code),
            (400, "invalid_client", 700_212)
        );
    }

    #[test]
    fn a_federated_issuer_unknown_or_unlisted_is_700211() {
        let claims =
            service_account_claims("https://elsewhere", SA, "api://AzureADTokenExchange", now());
        let result = check(&sa_token(Some("k1"), &claims), &jwks("k1"), now());
        assert_eq!(code(result), (400, "invalid_client", 700_211));
        // The principal names the issuer, the scenario lists no keys for it.
        let claims = service_account_claims(K8S, SA, "api://AzureADTokenExchange", now());
        let result = check(&sa_token(Some("k1"), &claims), &IssuerKeys::Unknown, now());
        assert_eq!(code(result), (400, "invalid_client", 700_211));
    }

    #[test]
    fn federated_keys_that_could_not_be_fetched_are_50166() {
        let claims = service_account_claims(K8S, SA, "api://AzureADTokenExchange", now());
        let down = IssuerKeys::Unreachable("connection refused".into());
        let e = check(&sa_token(Some("k1"), &claims), &down, now()).unwrap_err();
        assert_eq!((e.status, e.error, e.code), (400, "invalid_client", 50_166));
        assert!(e.description.contains("connection refused"), "{e}");
    }

    #[test]
    fn a_federated_assertion_with_an_unknown_kid_or_a_bad_signature_is_700027() {
        let claims = service_account_claims(K8S, SA, "api://AzureADTokenExchange", now());
        let e = check(&sa_token(Some("k2"), &claims), &jwks("k1"), now()).unwrap_err();
        assert_eq!((e.status, e.code), (401, 700_027));
        let forged = other_key().sign(Algorithm::RS256, |h| h.kid = Some("k1".into()), &claims);
        assert_eq!(
            code(check(&forged, &jwks("k1"), now())),
            (401, "invalid_client", 700_027)
        );
    }

    #[test]
    fn an_expired_federated_assertion_is_700024() {
        let claims = service_account_claims(K8S, SA, "api://AzureADTokenExchange", now() - 7200);
        let result = check(&sa_token(Some("k1"), &claims), &jwks("k1"), now());
        assert_eq!(code(result), (400, "invalid_client", 700_024));
    }

    #[test]
    fn the_error_body_is_entras() {
        let e = EntraError::new(400, "invalid_client", 700_211, "No match.");
        let reply = e.reply();
        assert_eq!(reply.status, 400);
        assert_eq!(reply.body["error"], "invalid_client");
        assert_eq!(reply.body["error_codes"], json!([700_211]));
        let description = reply.body["error_description"].as_str().unwrap();
        assert!(
            description.starts_with("AADSTS700211: No match."),
            "{description}"
        );
        for field in ["timestamp", "trace_id", "correlation_id"] {
            assert!(reply.body[field].is_string(), "{field}");
        }
    }

    #[test]
    fn a_jwks_with_keys_jsonwebtoken_cannot_read_keeps_the_others() {
        let body = json!({ "keys": [{"kty": "weird"}, key().jwk("k1")] });
        assert_eq!(parse_jwks(body.to_string().as_bytes()).unwrap().len(), 1);
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"<html>").is_err());
    }

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[ -~]{0,12}".prop_map(Value::from),
            Just(json!(["a", 1, null, {"b": []}])),
            Just(json!(K8S)),
            Just(json!(CLIENT)),
        ]
    }

    proptest::proptest! {
        /// Whatever a client sends as its assertion, the checks answer
        /// (an error or not) and never panic.
        #[test]
        fn any_assertion_is_answered_without_a_panic(
            alg in proptest::sample::select(vec!["RS256", "PS256", "HS256", "none", "ES256", ""]),
            kid in json_value(),
            x5t in json_value(),
            iss in json_value(),
            aud in json_value(),
            exp in json_value(),
            nbf in json_value(),
            signature in "[A-Za-z0-9_=+/-]{0,40}",
            raw in "[ -~]{0,60}",
        ) {
            let header = json!({"alg": alg, "kid": kid, "x5t#S256": x5t});
            let claims = json!({"iss": iss, "sub": SA, "aud": aud, "exp": exp, "nbf": nbf});
            let built = format!("{}.{}.{signature}", b64(&header), b64(&claims));
            for token in [built.as_str(), raw.as_str()] {
                for keys in [jwks("k1"), IssuerKeys::Unknown] {
                    let _ = check(token, &keys, now());
                }
            }
        }
    }

    #[test]
    fn certificates_that_are_not_rsa_pem_certificates_are_refused_without_quoting_them() {
        assert_eq!(
            Certificate::parse(&key().cert_pem).unwrap().thumbprint,
            key().thumbprint()
        );
        for bad in ["", "garbage", key().key_pem.as_str()] {
            let e = Certificate::parse(bad).unwrap_err();
            assert!(!e.contains("BEGIN") && !e.contains("MII"), "{e}");
        }
    }
}
