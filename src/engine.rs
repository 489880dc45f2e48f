//! Executes what [`next_step`] decides: the CPP calls, in order, with every
//! status change handed to a [`StatusSink`] before the next call. The
//! controller's sink writes to the API server; the one-shot CLI's prints.

use jiff::Timestamp;
use std::future::Future;

use crate::cpp::{
    CancelAnswer, CppClient, CppError, Credentials, OfferRef, OperationState, RetryClass,
};
use crate::crd::{OfferCancellationSpec, OfferCancellationStatus};
use crate::decide::{
    Observed, Outcome, Requeue, Step, Transition, next_step, reason, reason_for_status, transition,
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
}

impl Subject {
    pub fn observed(&self, now: Timestamp) -> Observed<'_> {
        Observed {
            spec: &self.spec,
            status: &self.status,
            generation: self.generation,
            retry_request: self.retry_request.as_deref(),
            credentials_version: self.credentials_version.as_deref(),
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

/// One round: decide, call CPP as decided, save each transition.
/// `credentials` is what the Secret (or the CLI's flags) yielded.
pub async fn run_step<S: StatusSink>(
    cpp: &CppClient,
    subject: &mut Subject,
    credentials: Result<&Credentials, String>,
    sink: &mut S,
) -> Result<Requeue, S::Error> {
    let step = next_step(&subject.observed(Timestamp::now()));
    match (step, credentials) {
        (Step::Idle, _) => Ok(Requeue::Never),
        (Step::Record(outcome), _) => apply(subject, sink, outcome).await,
        (_, Err(why)) => apply(subject, sink, Outcome::CredentialsUnavailable(why)).await,
        (Step::SendCancel, Ok(creds)) => send_cancel(cpp, subject, creds, sink).await,
        (Step::FindCancel { send_if_absent }, Ok(creds)) => {
            find_cancel(cpp, subject, creds, send_if_absent, sink).await
        }
        (Step::Poll { location }, Ok(creds)) => poll(cpp, subject, &location, creds, sink).await,
    }
}

async fn poll<S: StatusSink>(
    cpp: &CppClient,
    subject: &mut Subject,
    location: &str,
    creds: &Credentials,
    sink: &mut S,
) -> Result<Requeue, S::Error> {
    let outcome = match cpp.poll(location, creds).await {
        Ok(answer) => Outcome::Polled {
            status: answer.operation.status.clone(),
            state: answer.operation.state(),
            detail: answer.operation.failure_detail(),
            location: answer.location,
            retry_after: answer.retry_after,
        },
        Err(e) => error_outcome(&e, false),
    };
    apply(subject, sink, outcome).await
}

async fn apply<S: StatusSink>(
    subject: &mut Subject,
    sink: &mut S,
    outcome: Outcome,
) -> Result<Requeue, S::Error> {
    let t = transition(&subject.observed(Timestamp::now()), outcome);
    sink.save(&subject.status, &t).await?;
    subject.status = t.status;
    Ok(t.requeue)
}

/// Gets a token first, so a credentials problem never leaves a recorded
/// intent behind; then records the intent; then POSTs once.
async fn send_cancel<S: StatusSink>(
    cpp: &CppClient,
    subject: &mut Subject,
    creds: &Credentials,
    sink: &mut S,
) -> Result<Requeue, S::Error> {
    if let Err(e) = cpp.tokens().token(creds).await {
        return apply(subject, sink, error_outcome(&CppError::Auth(e), false)).await;
    }
    apply(subject, sink, Outcome::IntentRecorded).await?;
    let emails = subject.spec.notification_emails_joined();
    let outcome = match cpp.cancel(subject.offer(), &emails, creds).await {
        Ok(CancelAnswer::Cancelled) => Outcome::Cancelled,
        Ok(CancelAnswer::Accepted {
            location,
            retry_after,
        }) => Outcome::Accepted {
            location,
            retry_after,
        },
        Err(e) => error_outcome(&e, true),
    };
    apply(subject, sink, outcome).await
}

/// Looks for a running cancel operation to adopt. Absent one: resend (the
/// earlier POST's fate was unknown) or, for a 202 without location, fail.
async fn find_cancel<S: StatusSink>(
    cpp: &CppClient,
    subject: &mut Subject,
    creds: &Credentials,
    send_if_absent: bool,
    sink: &mut S,
) -> Result<Requeue, S::Error> {
    let operations = match cpp.operations(subject.offer(), creds).await {
        Ok(ops) => ops,
        Err(e) => return apply(subject, sink, error_outcome(&e, false)).await,
    };
    let found = operations
        .iter()
        .find(|op| op.is_cancel() && op.state() == OperationState::InProgress);
    match (found.and_then(|op| op.id.as_deref()), send_if_absent) {
        (Some(id), _) => {
            let location = CppClient::operation_location(subject.offer(), id);
            apply(subject, sink, Outcome::Adopted { location }).await
        }
        (None, true) => send_cancel(cpp, subject, creds, sink).await,
        (None, false) => apply(subject, sink, Outcome::NoLocationFound).await,
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
