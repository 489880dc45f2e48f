//! The Cloud Partner Portal client: the cancel call, polling its operation,
//! and the offer's operations list. What it shares with the Product
//! Ingestion client (HTTP, rate limit, tokens, Location rules) is
//! [`crate::http`]; what it answers is [`crate::operation`]'s vocabulary.
//!
//! It may not interpret an answer for the decision (`decide::meaning` does)
//! nor know of Kubernetes.

mod wire;

use reqwest::Url;
use reqwest::header::LOCATION;
use std::sync::Arc;

use crate::http::{
    ApiError, Credentials, Endpoint, Transport, checked_location, header_text, resolve_location,
    retry_after,
};
use crate::operation::{CancelOutcome, Operation, PolledOperation};
use crate::scheduling::fair::Turn;

/// Which offer a call is about.
#[derive(Debug, Clone, Copy)]
pub struct OfferRef<'a> {
    pub publisher_id: &'a str,
    pub offer_id: &'a str,
    pub api_version: &'a str,
}

/// The CPP client; built by [`crate::apis::Apis::new`] on the shared transport.
pub struct CppClient {
    transport: Arc<Transport>,
    endpoint: Url,
}

impl CppClient {
    pub(crate) fn new(transport: Arc<Transport>, endpoint: Url) -> Self {
        CppClient {
            transport,
            endpoint,
        }
    }

    /// POSTs the cancel. Callers send it at most once per recorded intent.
    /// `turn`: its place in the rate limit's line.
    pub async fn cancel(
        &self,
        offer: OfferRef<'_>,
        notification_emails: &str,
        creds: &Credentials,
        turn: Turn<'_>,
    ) -> Result<CancelOutcome, ApiError> {
        let url = self.offer_url(offer, &["cancel"], &[])?;
        let body =
            serde_json::json!({ "metadata": { "notification-emails": notification_emails } });
        let answer = self
            .transport
            .send(Endpoint::Cancel, creds, turn, |token| {
                self.transport
                    .http()
                    .post(url.clone())
                    .bearer_auth(token)
                    .json(&body)
            })
            .await?;
        match answer.status() {
            200 => Ok(CancelOutcome::Cancelled),
            202 => {
                let retry_after = retry_after(answer.headers());
                let location = match header_text(answer.headers(), LOCATION) {
                    Some(header) => Some(header),
                    None => wire::location_from_body(&answer.body().await?),
                };
                Ok(CancelOutcome::Accepted {
                    http: 202,
                    location: checked_location(&self.endpoint, location)?,
                    retry_after,
                })
            }
            _ => Err(answer.rejected().await),
        }
    }

    /// GETs the cancel operation at a location CPP gave.
    pub async fn poll(
        &self,
        location: &str,
        creds: &Credentials,
        turn: Turn<'_>,
    ) -> Result<PolledOperation, ApiError> {
        let url = resolve_location(&self.endpoint, location)?;
        let answer = self
            .transport
            .get_ok(Endpoint::Operation, url, creds, turn)
            .await?;
        let location = checked_location(&self.endpoint, header_text(answer.headers(), LOCATION))?;
        let retry_after = retry_after(answer.headers());
        let operation = answer.parsed(wire::parse_operation).await?;
        Ok(PolledOperation {
            state: operation.state(),
            operation,
            location,
            retry_after,
        })
    }

    /// The offer's operations (`submissions/`). Unfiltered on purpose: a
    /// cancel operation that is still `notStarted` would be missing from
    /// `status=running`, and then a second POST would go out.
    pub async fn operations(
        &self,
        offer: OfferRef<'_>,
        creds: &Credentials,
        turn: Turn<'_>,
    ) -> Result<Vec<Operation>, ApiError> {
        let url = self.offer_url(offer, &["submissions", ""], &[])?;
        self.transport
            .get_ok(Endpoint::Submissions, url, creds, turn)
            .await?
            .parsed(wire::parse_operation_list)
            .await
    }

    /// The path of one operation, as a migrated offer's Location has it.
    pub fn operation_location(offer: OfferRef<'_>, operation_id: &str) -> String {
        let seg = |s: &str| {
            let mut u = Url::parse("http://x/").expect("static URL parses");
            u.path_segments_mut().expect("http URL has a path").push(s);
            u.path().trim_start_matches('/').to_string()
        };
        format!(
            "/api/publishers/{}/offers/{}/operations/{}?api-version={}",
            seg(offer.publisher_id),
            seg(offer.offer_id),
            seg(operation_id),
            seg(offer.api_version)
        )
    }

    /// `{endpoint}/api/publishers/{p}/offers/{o}/{tail...}?api-version=..`,
    /// each segment percent-encoded.
    fn offer_url(
        &self,
        offer: OfferRef<'_>,
        tail: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Url, ApiError> {
        let mut url = self.endpoint.clone();
        {
            let mut path = url.path_segments_mut().map_err(|_| ApiError::BadEndpoint)?;
            path.pop_if_empty()
                .extend([
                    "api",
                    "publishers",
                    offer.publisher_id,
                    "offers",
                    offer.offer_id,
                ])
                .extend(tail);
        }
        url.query_pairs_mut()
            .clear()
            .append_pair("api-version", offer.api_version)
            .extend_pairs(query);
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_location_escapes_segments() {
        let offer = OfferRef {
            publisher_id: "contoso",
            offer_id: "offer.one",
            api_version: "2017-10-31",
        };
        assert_eq!(
            CppClient::operation_location(offer, "a/b"),
            "/api/publishers/contoso/offers/offer.one/operations/a%2Fb?api-version=2017-10-31"
        );
    }
}
