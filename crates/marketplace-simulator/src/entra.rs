//! `POST /{tenant}/oauth2/v2.0/token`: Entra ID's v2.0 client-credentials
//! grant, with a client assertion (a certificate-signed JWT or a federated
//! token) or a client secret, answered and refused as Entra answers.
//!
//! Form: `grant_type=client_credentials`, `client_id`, `scope` (one of
//! [`CPP_SCOPE`] and [`GRAPH_SCOPE`]), and either `client_assertion_type=`
//! [`JWT_BEARER`] with `client_assertion`, or `client_secret`. Refusals
//! are Entra's JSON (`error`, `error_description` starting `AADSTSnnnnn:`,
//! `error_codes`, `timestamp`, `trace_id`, `correlation_id`), counted in
//! `/_sim/stats` `assertionsRefused`; see [`crate::assertion`] for the
//! assertion checks and their codes.

use serde_json::json;
use std::collections::HashMap;

use crate::assertion::{self, Assertion, EntraError, IssuerKeys, JWT_BEARER};
use crate::reply::Reply;
use crate::scenario::{Audience, Issuer, Principal};
use crate::state::SimState;

/// The scope a v2.0 request names for a CPP token.
pub const CPP_SCOPE: &str = "https://cloudpartner.azure.com/.default";
/// The scope a v2.0 request names for a Graph (Product Ingestion) token.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

type Form = HashMap<String, String>;

impl SimState {
    /// The issuer whose keys a v2.0 request's federated assertion needs,
    /// if it needs any: fetched before [`SimState::issue_token_v2`], with
    /// the state unlocked. None for anything that will be refused before
    /// the keys matter (unknown client, certificate assertion, an issuer
    /// none of the principal's credentials names).
    pub fn issuer_to_fetch(&self, tenant: &str, form: &Form) -> Option<Issuer> {
        let index = self.principal_index(tenant, form.get("client_id")?)?;
        let principal = &self.scenario.principals[index];
        let assertion = Assertion::parse(form.get("client_assertion")?).ok()?;
        let iss = assertion.claims.iss.as_deref()?;
        if assertion.is_certificate()
            || !principal
                .federated_credentials
                .iter()
                .any(|c| c.issuer == iss)
        {
            return None;
        }
        self.scenario
            .issuers
            .iter()
            .find(|i| i.issuer == iss)
            .cloned()
    }

    /// `POST /{tenant}/oauth2/v2.0/token`. `keys`: the federated issuer's
    /// keys as fetched for this request (None: none were).
    pub fn issue_token_v2(&mut self, tenant: &str, form: &Form, keys: Option<IssuerKeys>) -> Reply {
        let now = jiff::Timestamp::now().as_second();
        let keys = keys.unwrap_or(IssuerKeys::Unknown);
        match self.admit_v2(tenant, form, &keys, now) {
            Ok((index, audience)) => {
                let (token, lifetime) = self.register_token(index, audience);
                Reply::json(
                    200,
                    json!({
                        "token_type": "Bearer",
                        "expires_in": lifetime,
                        "ext_expires_in": lifetime,
                        "access_token": token,
                    }),
                )
            }
            Err(refused) => {
                self.assertions_refused += 1;
                tracing::debug!(%refused, tenant, "v2.0 token refused");
                refused.reply()
            }
        }
    }

    /// The principal (by index) and the token's audience, or why not.
    fn admit_v2(
        &self,
        tenant: &str,
        form: &Form,
        keys: &IssuerKeys,
        now: i64,
    ) -> Result<(usize, Audience), EntraError> {
        let field = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
        if field("grant_type") != Some("client_credentials") {
            return Err(EntraError::new(
                400,
                "unsupported_grant_type",
                70_003,
                "The app requested an unsupported grant type; only client_credentials is served.",
            ));
        }
        let client_id = field("client_id").ok_or_else(|| missing("client_id"))?;
        let audience = audience_of(field("scope"))?;
        let index = self
            .principal_index(tenant, client_id)
            .ok_or_else(|| unknown_client(tenant, client_id))?;
        let principal = &self.scenario.principals[index];
        match (field("client_assertion"), field("client_secret")) {
            (Some(raw), _) => check_assertion(tenant, principal, form, raw, keys, now)?,
            (None, Some(secret)) => check_secret(principal, secret)?,
            (None, None) => {
                return Err(EntraError::new(
                    400,
                    "invalid_client",
                    7_000_218,
                    "The request body must contain the following parameter: \
                     'client_assertion' or 'client_secret'.",
                ));
            }
        }
        Ok((index, audience))
    }
}

/// AADSTS900144, Entra's "the request body must contain the following
/// parameter".
fn missing(name: &str) -> EntraError {
    EntraError::new(
        400,
        "invalid_request",
        900_144,
        format!("The request body must contain the following parameter: '{name}'."),
    )
}

/// AADSTS700016.
fn unknown_client(tenant: &str, client_id: &str) -> EntraError {
    EntraError::new(
        400,
        "unauthorized_client",
        700_016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory \
             '{tenant}'. This can happen if the application has not been installed by the \
             administrator of the tenant or consented to by any user in the tenant. You may \
             have sent your authentication request to the wrong tenant."
        ),
    )
}

/// The API a `scope` asks for: one of the two `/.default` scopes, else
/// AADSTS70011.
fn audience_of(scope: Option<&str>) -> Result<Audience, EntraError> {
    match scope.map(str::trim) {
        Some(CPP_SCOPE) => Ok(Audience::Cpp),
        Some(GRAPH_SCOPE) => Ok(Audience::Graph),
        other => Err(EntraError::new(
            400,
            "invalid_scope",
            70_011,
            format!(
                "The provided request must include a 'scope' input parameter. The provided value \
                 for the input parameter 'scope' is not valid. The scope '{}' is not valid; \
                 this service serves '{CPP_SCOPE}' and '{GRAPH_SCOPE}'.",
                other.unwrap_or("")
            ),
        )),
    }
}

/// A client assertion of the one type Entra knows, then its checks.
fn check_assertion(
    tenant: &str,
    principal: &Principal,
    form: &Form,
    raw: &str,
    keys: &IssuerKeys,
    now: i64,
) -> Result<(), EntraError> {
    if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
        return Err(EntraError::new(
            400,
            "invalid_request",
            50_027,
            format!("client_assertion_type must be '{JWT_BEARER}'."),
        ));
    }
    let assertion = Assertion::parse(raw)?;
    assertion::verify(&assertion, tenant, principal, keys, now)
}

/// As v1, for a principal with a secret; AADSTS7000215 otherwise.
fn check_secret(principal: &Principal, secret: &str) -> Result<(), EntraError> {
    if principal.client_secret.as_deref() == Some(secret) {
        return Ok(());
    }
    Err(EntraError::new(
        401,
        "invalid_client",
        7_000_215,
        format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the \
             client secret value, not the client secret ID, for a secret added to app '{}'.",
            principal.client_id
        ),
    ))
}
