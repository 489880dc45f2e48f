//! A configure job's status, read at most once a minute however many
//! resources read or follow it: the Product Ingestion API asks for at most
//! one status request a minute per job. Reads of one job wait for each
//! other (one request at a time), and a read taken less than a minute ago
//! answers the next caller, as long as that caller's credentials have
//! themselves been given this job's status by the API recently: a
//! namespace learns nothing of a job through another's access.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use crate::http::Credentials;
use crate::operation::PolledOperation;

/// How long one read of a job's status answers every caller.
pub const SPACING: Duration = Duration::from_secs(60);

/// How long credentials count as having proved their access to a job,
/// from the last time the API gave them its status.
const PROOF_LASTS: Duration = Duration::from_secs(600);

/// Jobs' last reads, by job id (lower case).
#[derive(Default)]
pub(super) struct StatusReads {
    jobs: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<LastRead>>>>>,
    /// Keys the credentials' digests (random per process).
    hasher: std::collections::hash_map::RandomState,
}

struct LastRead {
    at: Instant,
    /// When the request went out, by the clock claims and intents use.
    taken: jiff::Timestamp,
    polled: PolledOperation,
    /// Credentials (by digest) the API gave this job's status, and when.
    proven: HashMap<u64, Instant>,
}

impl StatusReads {
    /// The job's status: the last read when it is under a minute old,
    /// `creds` have proved their access, and it was taken after `after`
    /// (what the caller must see past: a claim on the job, its own POST);
    /// else `read`'s answer, kept for the next callers when it succeeds.
    pub(super) async fn read<F, E>(
        &self,
        job_id: &str,
        creds: &Credentials,
        after: Option<jiff::Timestamp>,
        read: impl FnOnce() -> F,
    ) -> Result<PolledOperation, E>
    where
        F: std::future::Future<Output = Result<PolledOperation, E>>,
    {
        let slot = self.slot(job_id);
        let mut last = slot.lock().await;
        let who = self.digest(creds);
        let now = Instant::now();
        let late_enough = |l: &&LastRead| after.is_none_or(|after| l.taken > after);
        if let Some(cached) = last
            .as_ref()
            .filter(late_enough)
            .filter(|l| l.answers(who, now))
        {
            return Ok(cached.polled.clone());
        }
        let taken = jiff::Timestamp::now();
        let polled = read().await?;
        let mut proven = last.take().map(|l| l.proven).unwrap_or_default();
        proven.retain(|_, at| now.duration_since(*at) < PROOF_LASTS);
        proven.insert(who, now);
        *last = Some(LastRead {
            at: now,
            taken,
            polled: polled.clone(),
            proven,
        });
        Ok(polled)
    }

    /// Forgets jobs not read for longer than the proof lasts.
    pub(super) fn sweep(&self) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        jobs.retain(|_, slot| match slot.try_lock() {
            Ok(last) => last
                .as_ref()
                .is_some_and(|l| now.duration_since(l.at) < PROOF_LASTS),
            Err(_) => true,
        });
    }

    fn slot(&self, job_id: &str) -> Arc<tokio::sync::Mutex<Option<LastRead>>> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if jobs.len() > 4096 {
            drop(jobs);
            self.sweep();
            jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        }
        jobs.entry(job_id.to_ascii_lowercase()).or_default().clone()
    }

    /// Who is asking, as a keyed digest: never the secret itself.
    fn digest(&self, creds: &Credentials) -> u64 {
        self.hasher
            .hash_one(creds.identity(|s| self.hasher.hash_one(s)))
    }
}

impl LastRead {
    fn answers(&self, who: u64, now: Instant) -> bool {
        let recent = now.duration_since(self.at) < SPACING;
        let proven = self
            .proven
            .get(&who)
            .is_some_and(|at| now.duration_since(*at) < PROOF_LASTS);
        recent && proven
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::{Operation, OperationState};
    use secrecy::SecretString;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn token(t: &str) -> Credentials {
        Credentials::Token(SecretString::from(t.to_string()))
    }

    fn running() -> PolledOperation {
        PolledOperation {
            operation: Operation {
                status: "running".into(),
                ..Operation::default()
            },
            state: OperationState::InProgress,
            location: None,
            retry_after: None,
        }
    }

    async fn read(reads: &StatusReads, creds: &Credentials, fresh: bool, gets: &AtomicU32) {
        let after = fresh.then(jiff::Timestamp::now);
        let got: Result<_, ()> = reads
            .read("JOB-1", creds, after, || async {
                gets.fetch_add(1, Ordering::Relaxed);
                Ok(running())
            })
            .await;
        assert_eq!(got, Ok(running()));
    }

    #[tokio::test(start_paused = true)]
    async fn many_readers_of_one_job_make_one_request_a_minute() {
        let (reads, gets) = (StatusReads::default(), AtomicU32::new(0));
        let creds = token("a");
        for _ in 0..20 {
            read(&reads, &creds, false, &gets).await;
        }
        assert_eq!(gets.load(Ordering::Relaxed), 1);
        tokio::time::advance(SPACING).await;
        read(&reads, &creds, false, &gets).await;
        assert_eq!(gets.load(Ordering::Relaxed), 2, "a minute on: read again");
    }

    #[tokio::test(start_paused = true)]
    async fn credentials_that_never_read_the_job_make_their_own_request() {
        let (reads, gets) = (StatusReads::default(), AtomicU32::new(0));
        read(&reads, &token("a"), false, &gets).await;
        read(&reads, &token("b"), false, &gets).await;
        assert_eq!(gets.load(Ordering::Relaxed), 2, "b proves its own access");
        read(&reads, &token("a"), false, &gets).await;
        read(&reads, &token("b"), false, &gets).await;
        assert_eq!(gets.load(Ordering::Relaxed), 2, "both proved: shared");
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_is_never_answered_from_before_what_the_caller_must_see() {
        let (reads, gets) = (StatusReads::default(), AtomicU32::new(0));
        read(&reads, &token("a"), false, &gets).await;
        read(&reads, &token("a"), true, &gets).await;
        assert_eq!(gets.load(Ordering::Relaxed), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_is_not_kept() {
        let reads = StatusReads::default();
        let failed: Result<PolledOperation, &str> = reads
            .read("job-1", &token("a"), None, || async { Err("503") })
            .await;
        assert_eq!(failed, Err("503"));
        let gets = AtomicU32::new(0);
        read(&reads, &token("a"), false, &gets).await;
        assert_eq!(gets.load(Ordering::Relaxed), 1);
    }
}
