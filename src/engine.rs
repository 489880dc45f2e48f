//! Executes what [`next_step`] decides: the CPP calls, in order, with every
//! status change handed to a [`StatusSink`] before the next call. The
//! controller's sink writes to the API server; the one-shot CLI's prints.

use jiff::Timestamp;
use std::future::Future;

use crate::cpp::{CancelAnswer, CppClient, CppError, Credentials, OfferRef, RetryClass};
use crate::crd::{OfferCancellationSpec, OfferCancellationStatus};
use crate::decide::{
    Observed, Outcome, Requeue, Step, Transition, next_step, reason, reason_for_status, settle,
    transition,
};

/// Where status goes. `save` returns only after the status is durable, so
/// the intent is recorded before the cancel is sent.
pub trait StatusSink {
    type Error;
    fn save(
        &mut self,
        before: &OfferCancellationStatus,
        transition: &Transition,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// The resource as the engine sees it: owned, so the status can move on.
#[derive(Debug, Clone)]
pub struct Subject {
    pub spec: OfferCancellationSpec,
    pub status: OfferCancellationStatus,
    pub generation: i64,
    pub retry_request: Option<String>,
    pub credentials_version: Option<String>,
    /// Transient errors in a row so far; the caller keeps it between rounds.
    pub errors_in_row: u32,
}

impl Subject {
    pub fn observed(&self, now: Timestamp) -> Observed<'_> {
        Observed {
            spec: &self.spec,
            status: &self.status,
            generation: self.generation,
            retry_request: self.retry_request.as_deref(),
            credentials_version: self.credentials_version.as_deref(),
            errors_in_row: self.errors_in_row,
            now,
        }
    }

    fn offer(&self) -> OfferRef<'_> {
        OfferRef {
            publisher_id: &self.spec.publisher_id,
            offer_id: &self.spec.offer_id,
            api_version: &self.spec.api_version,
        }
    }
}

/// One round: decide, call CPP as decided, save each transition. A
/// transition that records the intent is followed by the one cancel POST,
/// and the POST only ever follows a durable intent.
/// `credentials` is what the Secret (or the CLI's flags) yielded.
pub async fn run_step<S: StatusSink>(
    cpp: &CppClient,
    subject: &mut Subject,
    credentials: Result<&Credentials, String>,
    sink: &mut S,
) -> Result<Requeue, S::Error> {
    let step = next_step(&subject.observed(Timestamp::now()));
    let outcome = match (step, &credentials) {
        (Step::Idle, _) => return Ok(Requeue::Never),
        (Step::Record(outcome), _) => outcome,
        (_, Err(why)) => Outcome::CredentialsUnavailable(why.clone()),
        (Step::SendCancel, Ok(creds)) => token_checked(cpp, creds).await,
        (Step::Settle, Ok(creds)) => settle_from_list(cpp, subject, creds).await,
        (Step::Poll { location }, Ok(creds)) => poll(cpp, &location, creds).await,
    };
    let t = apply(subject, sink, outcome).await?;
    match (t.post, credentials) {
        (true, Ok(creds)) => {
            let answer = post_cancel(cpp, subject, creds).await;
            Ok(apply(subject, sink, answer).await?.requeue)
        }
        _ => Ok(t.requeue),
    }
}

async fn apply<S: StatusSink>(
    subject: &mut Subject,
    sink: &mut S,
    outcome: Outcome,
) -> Result<Transition, S::Error> {
    let t = transition(&subject.observed(Timestamp::now()), outcome);
    sink.save(&subject.status, &t).await?;
    subject.status = t.status.clone();
    Ok(t)
}

/// A token first, so a credentials problem never leaves an intent behind.
async fn token_checked(cpp: &CppClient, creds: &Credentials) -> Outcome {
    match cpp.tokens().token(creds).await {
        Ok(_) => Outcome::IntentRecorded,
        Err(e) => error_outcome(&CppError::Auth(e), false),
    }
}

async fn post_cancel(cpp: &CppClient, subject: &Subject, creds: &Credentials) -> Outcome {
    let emails = subject.spec.notification_emails_joined();
    match cpp.cancel(subject.offer(), &emails, creds).await {
        Ok(CancelAnswer::Cancelled) => Outcome::Cancelled,
        Ok(CancelAnswer::Accepted {
            location,
            retry_after,
        }) => Outcome::Accepted {
            location,
            retry_after,
        },
        Err(e) => error_outcome(&e, true),
    }
}

async fn poll(cpp: &CppClient, location: &str, creds: &Credentials) -> Outcome {
    match cpp.poll(location, creds).await {
        Ok(answer) => Outcome::Polled {
            status: answer.operation.status.clone(),
            state: answer.operation.state(),
            detail: answer.operation.failure_detail(),
            location: answer.location,
            retry_after: answer.retry_after,
            progress: answer.operation.progress.clone(),
        },
        Err(e) => error_outcome(&e, false),
    }
}

/// CPP's own record settles a cancel whose answer is unknown.
async fn settle_from_list(cpp: &CppClient, subject: &Subject, creds: &Credentials) -> Outcome {
    let offer = subject.offer();
    match cpp.operations(offer, creds).await {
        Ok(operations) => {
            let since = subject.status.requested_at.as_ref().map(|t| t.0);
            let locate = |id: &str| CppClient::operation_location(offer, id);
            Outcome::Settled(settle(&operations, since, locate))
        }
        Err(e) => error_outcome(&e, false),
    }
}

/// Maps a client error to what the decision needs to know.
pub fn error_outcome(e: &CppError, during_cancel: bool) -> Outcome {
    let message = e.to_string();
    if let RetryClass::Transient { retry_after } = e.retry_class() {
        return Outcome::Transient {
            message,
            retry_after,
        };
    }
    let why = match e {
        CppError::Rejected { status, .. } => reason_for_status(*status),
        CppError::Auth(_) => reason::CREDENTIALS_REJECTED,
        CppError::Location(_) => reason::INVALID_LOCATION,
        CppError::Malformed { .. } => reason::MALFORMED_RESPONSE,
        CppError::Request { .. } | CppError::BadEndpoint => reason::REJECTED,
    };
    Outcome::Rejected {
        reason: why,
        message,
        cancel_status: e.http_status().filter(|_| during_cancel),
    }
}
