//! The Partner Center Product Ingestion client: cancelling a configure job
//! and reading its status. A peer of the CPP client on the shared
//! [`crate::http`] transport; it answers in [`crate::operation`]'s words,
//! so the decision never learns which API answered. What the public
//! reference says and leaves unsaid: `docs/product-ingestion-api.md`.
//!
//! It may not interpret an answer for the decision (`decide::meaning` does)
//! nor know of Kubernetes.

mod reads;
mod wire;

use reqwest::Url;
use std::sync::Arc;

use crate::http::{
    ApiError, Credentials, Endpoint, Transport, checked_location, resolve_location, retry_after,
};
use crate::operation::{CancelOutcome, Operation, OperationState, PolledOperation};
use crate::scheduling::fair::Turn;

/// Which job a call is about.
#[derive(Debug, Clone, Copy)]
pub struct JobRef<'a> {
    pub job_id: &'a str,
    /// The `$version` query parameter.
    pub api_version: &'a str,
}

/// The Product Ingestion client; built by [`crate::apis::Apis::new`].
pub struct JobClient {
    transport: Arc<Transport>,
    endpoint: Url,
    /// Each job's last status read, shared by all who read or follow it.
    reads: reads::StatusReads,
}

impl JobClient {
    pub(crate) fn new(transport: Arc<Transport>, endpoint: Url) -> Self {
        JobClient {
            transport,
            endpoint,
            reads: reads::StatusReads::default(),
        }
    }

    /// POSTs the cancel (no body). Callers send it at most once per
    /// recorded intent. A 200 saying the job is `cancelled` is a cancel
    /// done; any other 200 is accepted, followed at the job's status URL.
    /// Anything but 200 is an error (400: refused, e.g. the job has
    /// already completed).
    pub async fn cancel(
        &self,
        job: JobRef<'_>,
        creds: &Credentials,
        turn: Turn<'_>,
    ) -> Result<CancelOutcome, ApiError> {
        let url = self.job_url(job, Some("cancel"))?;
        let answer = self
            .transport
            .send(Endpoint::JobCancel, creds, turn, |token| {
                self.transport.http().post(url.clone()).bearer_auth(token)
            })
            .await?;
        if answer.status() != 200 {
            return Err(answer.rejected().await);
        }
        let retry_after = retry_after(answer.headers());
        // The 200 is the acceptance; a body that does not say `cancelled`
        // of this job (still running, or unreadable) leaves it to the
        // job's status, polled next: the acceptance is never lost to it,
        // nor to a body that cannot be read at all.
        let body = answer.body().await.unwrap_or_default();
        let read = read(job, &body);
        if read.is_ok_and(|status| status.state == OperationState::Done) {
            return Ok(CancelOutcome::Cancelled);
        }
        Ok(CancelOutcome::Accepted {
            http: 200,
            location: checked_location(&self.endpoint, Some(self.status_location(job)?))?,
            retry_after,
        })
    }

    /// The job's status, at the location the cancel recorded: at most one
    /// request a minute per job, whoever follows it.
    pub async fn poll(
        &self,
        job: JobRef<'_>,
        location: &str,
        creds: &Credentials,
        turn: Turn<'_>,
    ) -> Result<PolledOperation, ApiError> {
        let url = resolve_location(&self.endpoint, location)?;
        self.reads
            .read(job.job_id, creds, None, || {
                self.status(job, url, creds, turn)
            })
            .await
    }

    /// The job as its status shows it, as a one-entry operations list:
    /// what the decision reads before a first cancel, and after a lost
    /// answer or a refusal. A read taken under a minute ago serves when it
    /// was taken after `after` (a claim on the job, our own POST).
    pub async fn operations(
        &self,
        job: JobRef<'_>,
        creds: &Credentials,
        turn: Turn<'_>,
        after: Option<jiff::Timestamp>,
    ) -> Result<Vec<Operation>, ApiError> {
        let url = self.job_url(job, Some("status"))?;
        let polled = self
            .reads
            .read(job.job_id, creds, after, || {
                self.status(job, url, creds, turn)
            })
            .await?;
        Ok(vec![polled.operation])
    }

    /// One status request.
    async fn status(
        &self,
        job: JobRef<'_>,
        url: Url,
        creds: &Credentials,
        turn: Turn<'_>,
    ) -> Result<PolledOperation, ApiError> {
        let answer = self
            .transport
            .get_ok(Endpoint::JobStatus, url, creds, turn)
            .await?;
        let retry_after = retry_after(answer.headers());
        let polled = answer.parsed(|body| read(job, body)).await?;
        Ok(PolledOperation {
            retry_after,
            ..polled
        })
    }

    /// The job's detail (`GET configure/{jobId}` at the job's `$version`):
    /// its resources and how it left each. Read once, after its cancel
    /// ended; not a status read, so not spaced as those are.
    pub async fn detail(
        &self,
        job: JobRef<'_>,
        creds: &Credentials,
        turn: Turn<'_>,
    ) -> Result<Vec<crate::crd::JobResource>, ApiError> {
        let url = self.job_url(job, None)?;
        let answer = self
            .transport
            .get_ok(Endpoint::JobDetail, url, creds, turn)
            .await?;
        answer.parsed(wire::parse_job_detail).await
    }

    /// Where the job's status is read, as status records it.
    pub fn status_location(&self, job: JobRef<'_>) -> Result<String, ApiError> {
        Ok(self.job_url(job, Some("status"))?.to_string())
    }

    /// `{endpoint}/configure/{jobId}[/{action}]?$version=..`, the id
    /// percent-encoded as one segment.
    fn job_url(&self, job: JobRef<'_>, action: Option<&str>) -> Result<Url, ApiError> {
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|_| ApiError::BadEndpoint)?
            .pop_if_empty()
            .extend(["configure", job.job_id])
            .extend(action);
        // The parameter's name is the literal `$version`; a form encoder
        // would send `%24version`.
        let version: String =
            url::form_urlencoded::byte_serialize(job.api_version.as_bytes()).collect();
        url.set_query(Some(&format!("$version={version}")));
        Ok(url)
    }
}

/// A job status body, as one poll of the job; a status about another job
/// is not an answer about this one.
fn read(job: JobRef<'_>, body: &[u8]) -> Result<PolledOperation, String> {
    let status = wire::parse_job_status(body)?;
    if !status.names(job.job_id) {
        return Err("the answer is about another job".into());
    }
    Ok(PolledOperation {
        state: status.state(),
        operation: status.into_operation(job.job_id),
        location: None,
        retry_after: None,
    })
}
