//! Workload identity's ServiceAccount tokens, asked of the API server
//! (TokenRequest) for the resource's own namespace and nothing else: the
//! operator never exchanges its own token, so a namespace can act only
//! with an identity whose federated credential names one of its own
//! ServiceAccounts.
//!
//! It may not exchange a token at Entra ID (`http::auth` does) nor read a
//! Secret.

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use secrecy::SecretString;

use crate::http::{ServiceAccountTokenError, ServiceAccountTokens, TOKEN_EXCHANGE_AUDIENCE};

/// The shortest lifetime the API server grants (`expirationSeconds` may
/// not be below 10 minutes): the token is used once, at once.
const EXPIRATION_SECONDS: i64 = 600;

/// Asks the API server for ServiceAccount tokens.
pub struct TokenRequests {
    client: kube::Client,
}

impl TokenRequests {
    pub fn new(client: kube::Client) -> Self {
        TokenRequests { client }
    }
}

impl ServiceAccountTokens for TokenRequests {
    fn token<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<SecretString, ServiceAccountTokenError>> {
        Box::pin(async move {
            let api: kube::Api<ServiceAccount> =
                kube::Api::namespaced(self.client.clone(), namespace);
            let request = TokenRequest {
                spec: TokenRequestSpec {
                    audiences: vec![TOKEN_EXCHANGE_AUDIENCE.to_string()],
                    expiration_seconds: Some(EXPIRATION_SECONDS),
                    bound_object_ref: None,
                },
                ..TokenRequest::default()
            };
            let answer = api
                .create_token_request(name, &PostParams::default(), &request)
                .await
                .map_err(|e| refusal(namespace, name, &e))?;
            match answer.status.map(|s| s.token) {
                Some(token) if !token.is_empty() => Ok(SecretString::from(token)),
                _ => Err(ServiceAccountTokenError::Unreachable {
                    namespace: namespace.into(),
                    name: name.into(),
                    detail: "the API server answered without a token".into(),
                }),
            }
        })
    }
}

/// What a failed TokenRequest means. The API server's message is left
/// out: the status code says what the user must fix.
fn refusal(namespace: &str, name: &str, e: &kube::Error) -> ServiceAccountTokenError {
    let (namespace, name) = (namespace.to_string(), name.to_string());
    match e {
        kube::Error::Api(status) if status.code == 404 => {
            ServiceAccountTokenError::NotFound { namespace, name }
        }
        // Any other refusal (400, 401, 422) is waited on, Stalled with its
        // code, not retried as if the API server could not be reached.
        kube::Error::Api(status) if (400..500).contains(&status.code) => {
            ServiceAccountTokenError::Refused {
                namespace,
                name,
                status: status.code,
            }
        }
        kube::Error::Api(status) => ServiceAccountTokenError::Unreachable {
            namespace,
            name,
            detail: format!("HTTP {}", status.code),
        },
        _ => ServiceAccountTokenError::Unreachable {
            namespace,
            name,
            detail: "the API server could not be reached".into(),
        },
    }
}
