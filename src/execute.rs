//! The call a step names, made to the target's API, and what its answer
//! means to the decision: the one place where answers and errors of
//! either API become [`Outcome`]s. Both APIs answer in
//! [`crate::operation`]'s words; only the errors differ (CPP answers a
//! late cancel 404, Product Ingestion 400).

use jiff::Timestamp;
use std::time::Duration;

use crate::apis::Apis;
use crate::cpp::{CppClient, OfferRef};
use crate::crd::Target;
use crate::credentials::Yield;
use crate::decide::{
    Call, ListAfterNotFound, NotFound, Observed, Outcome, latest, reason, reason_for_status,
    settle, target,
};
use crate::http::{ApiError, Credentials, Endpoint, RetryClass};
use crate::ingestion::{JobClient, JobRef};
use crate::operation::{CancelOutcome, Operation, PolledOperation};
use crate::scheduling::fair::Turn;

/// The call `call` names, to the API of the resource's target, and what
/// its answer means.
pub(crate) async fn execute(
    apis: &Apis,
    call: Call,
    observed: &Observed,
    credentials: Yield<'_>,
) -> Outcome {
    let (api, creds) = match reach(apis, observed, credentials) {
        Ok(reached) => reached,
        Err(outcome) => return *outcome,
    };
    match call {
        Call::ReadTarget => read_target(&api, observed, creds).await,
        Call::Settle => settle_from_list(&api, observed, creds).await,
        Call::Poll { location } => poll(&api, &location, creds, observed.turn()).await,
    }
}

/// The cancel POST, to the API of the resource's target, and what its
/// answer means. Only ever sent after a transition that recorded the
/// intent (`Transition::post`), once that intent is durable; abandoned at
/// the intent's `postDeadline`.
pub(crate) async fn send_cancel(
    apis: &Apis,
    observed: &Observed,
    credentials: Yield<'_>,
) -> Outcome {
    let (api, creds) = match reach(apis, observed, credentials) {
        Ok(reached) => reached,
        Err(outcome) => return *outcome,
    };
    within_post_deadline(observed, post_cancel(&api, observed, creds)).await
}

/// The target's API and the credentials for it; or, when either is
/// missing, what that means to the decision.
fn reach<'a>(
    apis: &'a Apis,
    observed: &'a Observed,
    credentials: Yield<'a>,
) -> Result<(TargetApi<'a>, &'a Credentials), Box<Outcome>> {
    let unavailable = |why: String| Box::new(Outcome::CredentialsUnavailable(why));
    let creds = credentials
        .ok_or_else(|| unavailable("the Secret was not read".into()))?
        .map_err(|e| match e.is_rejection() {
            // A certificate that cannot be used is a failure, as Entra's
            // refusal of it would be: the Secret's change re-arms it.
            true => Box::new(Outcome::Rejected {
                reason: reason::CREDENTIALS_REJECTED,
                message: e.to_string(),
                cancel_status: None,
            }),
            false => unavailable(e.to_string()),
        })?;
    let target = observed
        .spec
        .target()
        .map_err(|e| Box::new(Outcome::InvalidSpec(e.to_string())))?;
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
        observed: &Observed,
        creds: &Credentials,
    ) -> Result<CancelOutcome, ApiError> {
        let turn = observed.turn();
        match self {
            TargetApi::Offer(cpp, offer) => {
                let emails = observed.spec.notification_emails_joined();
                cpp.cancel(*offer, &emails, creds, turn).await
            }
            TargetApi::Job(jobs, job) => jobs.cancel(*job, creds, turn).await,
        }
    }

    /// The operation the cancel is for, when the spec names one: CPP's
    /// `operationId`, or the job itself.
    fn wanted<'s>(&self, observed: &'s Observed) -> Option<&'s str>
    where
        'a: 's,
    {
        match self {
            TargetApi::Offer(..) => observed.operation_named(),
            TargetApi::Job(_, job) => Some(job.job_id),
        }
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
    observed: &Observed,
    post: impl std::future::Future<Output = Outcome>,
) -> Outcome {
    let left = observed
        .status
        .post_deadline
        .as_ref()
        .map(|d| Timestamp::now().duration_until(d.0))
        .and_then(|left| Duration::try_from(left).ok())
        .unwrap_or(Duration::ZERO);
    tokio::time::timeout(left, post)
        .await
        .unwrap_or_else(|_| Outcome::Transient {
            message: "the cancel request was abandoned at its postDeadline".into(),
            retry_after: None,
        })
}

/// What the cancel is for, read before any intent: the read also proves
/// the credentials, so a credentials problem never leaves an intent behind.
async fn read_target(api: &TargetApi<'_>, observed: &Observed, creds: &Credentials) -> Outcome {
    let after = crate::claim::read_after(observed.claim.as_ref(), &observed.claimant, observed.now);
    match api.operations(creds, observed.turn(), after).await {
        Ok(operations) => {
            let wanted = api.wanted(observed);
            Outcome::Targeted(target(&operations, wanted, |id| api.locate(id)))
        }
        Err(e) => error_outcome(&e, false),
    }
}

async fn post_cancel(api: &TargetApi<'_>, observed: &Observed, creds: &Credentials) -> Outcome {
    match api.cancel(observed, creds).await {
        Ok(answer) => Outcome::Answered(answer),
        Err(e) => match (api, e.http_status()) {
            (TargetApi::Offer(..), Some(404)) => explain_not_found(api, observed, creds, &e).await,
            (TargetApi::Job(..), Some(400)) => explain_refusal(api, observed, creds, &e).await,
            _ => error_outcome(&e, true),
        },
    }
}

/// A 404 to CPP's cancel: what the offer's operations list shows. If the
/// list cannot be read either, the 404 stands as it is.
async fn explain_not_found(
    api: &TargetApi<'_>,
    observed: &Observed,
    creds: &Credentials,
    refused: &ApiError,
) -> Outcome {
    let message = refused.to_string();
    let list = match api
        .operations(creds, observed.turn(), Some(Timestamp::now()))
        .await
    {
        Ok(operations) => shown_after_not_found(api, observed, &operations),
        Err(e) if e.http_status() == Some(404) => ListAfterNotFound::OfferMissing,
        Err(_) => ListAfterNotFound::Unread,
    };
    Outcome::CancelNotFound(Box::new(NotFound { message, list }))
}

/// What the offer's operations list shows after a 404 to the cancel: a
/// cancel since the intent, or what became of the recorded operation.
fn shown_after_not_found(
    api: &TargetApi<'_>,
    observed: &Observed,
    operations: &[Operation],
) -> ListAfterNotFound {
    let since = observed.status.requested_at.as_ref().map(|t| t.0);
    let target = observed.status.target_operation.as_ref();
    let target = target.map(|t| t.id.as_str());
    ListAfterNotFound::Shows {
        settlement: Some(settle(operations, since, target, |id| api.locate(id))),
        latest: latest(operations, |_| true).cloned(),
    }
}

/// A 400 to a job's cancel ("job has already completed", or "far enough
/// along"): the job's status, read once, says how it ended. If it cannot
/// be read, the 400 stands as it is.
async fn explain_refusal(
    api: &TargetApi<'_>,
    observed: &Observed,
    creds: &Credentials,
    refused: &ApiError,
) -> Outcome {
    let fresh = Some(Timestamp::now());
    let Ok(operations) = api.operations(creds, observed.turn(), fresh).await else {
        return error_outcome(refused, true);
    };
    let since = observed.status.requested_at.as_ref().map(|t| t.0);
    let wanted = api.wanted(observed);
    Outcome::CancelRefused {
        message: refused.to_string(),
        settlement: settle(&operations, since, wanted, |id| api.locate(id)),
    }
}

async fn poll(api: &TargetApi<'_>, location: &str, creds: &Credentials, turn: Turn<'_>) -> Outcome {
    match api.poll(location, creds, turn).await {
        Ok(answer) => Outcome::Polled(answer),
        Err(e) => error_outcome(&e, false),
    }
}

/// The API's own record, as it is now, settles a cancel whose answer is
/// unknown.
async fn settle_from_list(
    api: &TargetApi<'_>,
    observed: &Observed,
    creds: &Credentials,
) -> Outcome {
    match api
        .operations(creds, observed.turn(), Some(Timestamp::now()))
        .await
    {
        Ok(operations) => {
            let since = observed.status.requested_at.as_ref().map(|t| t.0);
            let target = observed.status.target_operation.as_ref();
            let target = target.map(|t| t.id.as_str());
            Outcome::Settled(settle(&operations, since, target, |id| api.locate(id)))
        }
        Err(e) => error_outcome(&e, false),
    }
}

/// What a client error means to the decision, and the condition reason of
/// a terminal one: the one place errors become reasons.
fn error_outcome(e: &ApiError, during_cancel: bool) -> Outcome {
    let message = e.to_string();
    // A ServiceAccount missing, or no permission to ask for its token, is
    // waited for like a missing Secret, also at the POST: nothing was sent
    // (there was no token), and the intent stays, to be settled and sent
    // once it is there, as when the Secret goes missing then.
    if let ApiError::Auth(auth) = e
        && auth.is_unavailable()
    {
        return Outcome::ServiceAccountUnavailable(message);
    }
    if let RetryClass::Transient { retry_after } = e.retry_class() {
        return Outcome::Transient {
            message,
            retry_after,
        };
    }
    Outcome::Rejected {
        reason: error_reason(e),
        message,
        cancel_status: e.http_status().filter(|_| during_cancel),
    }
}

/// The condition reason of a terminal error.
fn error_reason(e: &ApiError) -> &'static str {
    use Endpoint::{JobCancel, JobStatus, Submissions};
    match e {
        ApiError::Rejected {
            endpoint: Submissions,
            status: 404,
            ..
        } => reason::OFFER_NOT_FOUND,
        ApiError::Rejected {
            endpoint: JobCancel | JobStatus,
            status,
            ..
        } => match status {
            404 => reason::JOB_NOT_FOUND,
            401 | 403 => reason::FORBIDDEN,
            other => reason_for_status(*other),
        },
        ApiError::Rejected { status, .. } => reason_for_status(*status),
        ApiError::Auth(_) => reason::CREDENTIALS_REJECTED,
        ApiError::Location(_) => reason::INVALID_LOCATION,
        ApiError::Malformed { .. } => reason::MALFORMED_RESPONSE,
        ApiError::Request { .. } | ApiError::BadEndpoint => reason::REJECTED,
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
    fn a_missing_service_account_is_waited_for_also_at_the_post() {
        for during_cancel in [false, true] {
            assert!(
                matches!(
                    error_outcome(&service_account_missing(), during_cancel),
                    Outcome::ServiceAccountUnavailable(m) if m.contains("team-a/offercancel")
                ),
                "during_cancel {during_cancel}"
            );
        }
    }
}
