//! The call a step names, made to the target's API, and what the API
//! said ([`Said`]): a thin adapter. It picks the client for the target,
//! classifies a failure, and reads the target's record once after a
//! cancel refused with the status [`Asking::refused_late`] names. What any
//! of it means is [`crate::decide::meaning`]'s to say.

use jiff::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::apis::Apis;
use crate::cpp::{CppClient, OfferRef};
use crate::crd::Target;
use crate::credentials::Yield;
use crate::decide::{
    Asking, Call, Failure, FailureClass, Listing, NotAsked, Refusal, Refused, Request, Said,
};
use crate::http::{ApiError, Credentials, Endpoint, RetryClass};
use crate::ingestion::{JobClient, JobRef};
use crate::operation::{CancelOutcome, Operation, PolledOperation};
use crate::scheduling::fair::Turn;

/// The call `call` names, to the API of the resource's target.
pub(crate) async fn execute(
    apis: &Apis,
    call: Call,
    asking: &Asking<'_>,
    credentials: Yield<'_>,
) -> Said {
    let (api, creds) = match reach(apis, asking, credentials) {
        Ok(reached) => reached,
        Err(why) => return Said::NotAsked(why),
    };
    let turn = asking.turn;
    match call {
        Call::ReadTarget => Said::Target(api.listing(creds, turn, asking.record_after).await),
        Call::Settle => Said::Record(api.listing(creds, turn, Some(Timestamp::now())).await),
        Call::Poll { location } => Said::Poll(
            api.poll(&location, creds, turn)
                .await
                .map_err(|e| failure(&e, Request::Poll)),
        ),
        Call::ReadJobDetail => Said::JobDetail(
            api.job_detail(creds, turn)
                .await
                .map_err(|e| failure(&e, Request::Record)),
        ),
    }
}

/// The cancel POST, to the API of the resource's target. Only ever sent
/// after a transition that recorded the intent (`Transition::post`), once
/// that intent is durable; abandoned at the intent's `postDeadline`.
pub(crate) async fn send_cancel(apis: &Apis, asking: &Asking<'_>, credentials: Yield<'_>) -> Said {
    let (api, creds) = match reach(apis, asking, credentials) {
        Ok(reached) => reached,
        Err(why) => return Said::NotAsked(why),
    };
    Said::Cancel(within_post_deadline(asking, post_cancel(&api, asking, creds)).await)
}

/// The target's API and the credentials for it; or why neither can be
/// had.
fn reach<'a>(
    apis: &'a Apis,
    asking: &Asking<'a>,
    credentials: Yield<'a>,
) -> Result<(TargetApi<'a>, &'a Credentials), NotAsked> {
    let creds = credentials
        .ok_or_else(|| NotAsked::NoCredentials("the Secret was not read".into()))?
        .map_err(|e| match e.is_rejection() {
            true => NotAsked::UnusableCredentials(e.to_string()),
            false => NotAsked::NoCredentials(e.to_string()),
        })?;
    let target = asking
        .target
        .clone()
        .map_err(|e| NotAsked::NoTarget(e.to_string()))?;
    Ok((TargetApi::of(apis, target), creds))
}

/// The target's API, as the calls below use it.
enum TargetApi<'a> {
    Offer(&'a CppClient, OfferRef<'a>),
    Job(&'a JobClient, JobRef<'a>),
}

impl<'a> TargetApi<'a> {
    fn of(apis: &'a Apis, target: Target<'a>) -> Self {
        match target {
            Target::Offer {
                publisher_id,
                offer_id,
                api_version,
            } => TargetApi::Offer(
                &apis.cpp,
                OfferRef {
                    publisher_id,
                    offer_id,
                    api_version,
                },
            ),
            Target::Job {
                job_id,
                api_version,
            } => TargetApi::Job(
                &apis.jobs,
                JobRef {
                    job_id,
                    api_version,
                },
            ),
        }
    }

    /// The offer's operations list; a job's status as a one-entry list
    /// (read at most once a minute: a read taken after `after` may answer).
    async fn operations(
        &self,
        creds: &Credentials,
        turn: Turn<'_>,
        after: Option<Timestamp>,
    ) -> Result<Vec<Operation>, ApiError> {
        match self {
            TargetApi::Offer(cpp, offer) => cpp.operations(*offer, creds, turn).await,
            TargetApi::Job(jobs, job) => jobs.operations(*job, creds, turn, after).await,
        }
    }

    /// A job's detail; an offer has none (the decision never asks for
    /// one: nothing is sent).
    async fn job_detail(
        &self,
        creds: &Credentials,
        turn: Turn<'_>,
    ) -> Result<Vec<crate::crd::JobResource>, ApiError> {
        match self {
            TargetApi::Offer(..) => Err(ApiError::BadEndpoint),
            TargetApi::Job(jobs, job) => jobs.detail(*job, creds, turn).await,
        }
    }

    async fn poll(
        &self,
        location: &str,
        creds: &Credentials,
        turn: Turn<'_>,
    ) -> Result<PolledOperation, ApiError> {
        match self {
            TargetApi::Offer(cpp, _) => cpp.poll(location, creds, turn).await,
            TargetApi::Job(jobs, job) => jobs.poll(*job, location, creds, turn).await,
        }
    }

    async fn cancel(
        &self,
        asking: &Asking<'_>,
        creds: &Credentials,
    ) -> Result<CancelOutcome, ApiError> {
        let turn = asking.turn;
        match self {
            TargetApi::Offer(cpp, offer) => cpp.cancel(*offer, &asking.emails, creds, turn).await,
            TargetApi::Job(jobs, job) => jobs.cancel(*job, creds, turn).await,
        }
    }

    /// The target's record, with where each operation is polled.
    async fn listing(
        &self,
        creds: &Credentials,
        turn: Turn<'_>,
        after: Option<Timestamp>,
    ) -> Result<Listing, Failure> {
        let operations = self
            .operations(creds, turn, after)
            .await
            .map_err(|e| failure(&e, Request::Record))?;
        let locations = operations
            .iter()
            .filter_map(|op| op.id.as_deref())
            .map(|id| (id.to_string(), self.locate(id)))
            .collect::<BTreeMap<_, _>>();
        Ok(Listing {
            operations,
            locations,
        })
    }

    /// Where an operation of the list is polled.
    fn locate(&self, id: &str) -> String {
        match self {
            TargetApi::Offer(_, offer) => CppClient::operation_location(*offer, id),
            // Only a bad endpoint fails here; the empty location then
            // fails as such, in status.
            TargetApi::Job(jobs, job) => jobs.status_location(*job).unwrap_or_default(),
        }
    }
}

/// The POST, abandoned at the intent's `postDeadline`: another writer
/// takes an unanswered intent for a lost answer only after it.
async fn within_post_deadline(
    asking: &Asking<'_>,
    post: impl std::future::Future<Output = Result<CancelOutcome, Refused>>,
) -> Result<CancelOutcome, Refused> {
    let left = asking
        .post_deadline
        .map(|d| Timestamp::now().duration_until(d))
        .and_then(|left| Duration::try_from(left).ok())
        .unwrap_or(Duration::ZERO);
    let abandoned = || Refused {
        failure: Failure {
            class: FailureClass::Transient { retry_after: None },
            message: "the cancel request was abandoned at its postDeadline".into(),
        },
        then: None,
    };
    tokio::time::timeout(left, post)
        .await
        .unwrap_or_else(|_| Err(abandoned()))
}

/// The cancel; refused as too late, the target's record read once right
/// after it.
async fn post_cancel(
    api: &TargetApi<'_>,
    asking: &Asking<'_>,
    creds: &Credentials,
) -> Result<CancelOutcome, Refused> {
    let e = match api.cancel(asking, creds).await {
        Ok(answer) => return Ok(answer),
        Err(e) => e,
    };
    let then = match e.http_status() == Some(asking.refused_late) {
        true => Some(
            api.listing(creds, asking.turn, Some(Timestamp::now()))
                .await,
        ),
        false => None,
    };
    Err(Refused {
        failure: failure(&e, Request::Cancel),
        then,
    })
}

/// A client error, classified; `asked`: what the call was, for a status
/// the target's API answered.
fn failure(e: &ApiError, asked: Request) -> Failure {
    let message = e.to_string();
    let class = match (e, e.retry_class()) {
        (ApiError::Auth(auth), _) if auth.is_unavailable() => FailureClass::SourceUnavailable,
        (_, RetryClass::Transient { retry_after }) => FailureClass::Transient { retry_after },
        (_, RetryClass::Terminal) => FailureClass::Terminal(refusal(e, asked)),
    };
    Failure { class, message }
}

/// What a terminal error was.
fn refusal(e: &ApiError, asked: Request) -> Refusal {
    match e {
        ApiError::Rejected {
            endpoint, status, ..
        } => Refusal::Answered {
            status: *status,
            to: request_of(*endpoint).unwrap_or(asked),
        },
        ApiError::Auth(_) => Refusal::Credentials,
        ApiError::Location(_) => Refusal::Location,
        ApiError::Malformed { .. } => Refusal::Malformed,
        ApiError::Request { .. } | ApiError::BadEndpoint => Refusal::Unsent,
    }
}

/// Which of the target API's requests an endpoint serves.
fn request_of(endpoint: Endpoint) -> Option<Request> {
    match endpoint {
        Endpoint::Submissions | Endpoint::JobStatus | Endpoint::JobDetail => Some(Request::Record),
        Endpoint::Cancel | Endpoint::JobCancel => Some(Request::Cancel),
        Endpoint::Operation => Some(Request::Poll),
        Endpoint::Token => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{AuthError, ServiceAccountTokenError};

    fn service_account_missing() -> ApiError {
        ApiError::Auth(AuthError::ServiceAccount(
            ServiceAccountTokenError::NotFound {
                namespace: "team-a".into(),
                name: "offercancel".into(),
            },
        ))
    }

    #[test]
    fn a_missing_service_account_is_a_source_unavailable_also_at_the_post() {
        for asked in [Request::Record, Request::Cancel] {
            let f = failure(&service_account_missing(), asked);
            assert_eq!(f.class, FailureClass::SourceUnavailable, "{asked:?}");
            assert!(f.message.contains("team-a/offercancel"), "{}", f.message);
        }
    }
}
