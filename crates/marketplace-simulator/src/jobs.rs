//! The Product Ingestion API's routes on the simulator's state: admit a
//! request (token audience, publisher, `$version`), then ask the job.

use crate::job::{JobState, error};
use crate::reply::Reply;
use crate::scenario::{Audience, Job};
use crate::state::SimState;

impl SimState {
    /// `POST {base}/configure/{jobId}/cancel?$version=`.
    pub fn cancel_job(
        &mut self,
        authorization: Option<&str>,
        version: Option<&str>,
        id: &str,
    ) -> Reply {
        if let Some(job) = self.job_mut(id) {
            job.stats.cancel_posts += 1;
            let now = jiff::Timestamp::now().as_millisecond().max(0) as u64;
            job.stats.first_cancel_post_ms.get_or_insert(now);
        }
        match self.admit_job(authorization, version, id) {
            Ok(_) if self.read_only(authorization) => error(
                403,
                "forbidden",
                "The caller may read this job but not cancel it.",
            ),
            Ok(key) => self
                .jobs
                .get_mut(&key)
                .map_or_else(missing, JobState::cancel),
            Err(reply) => reply,
        }
    }

    /// `GET {base}/configure/{jobId}/status?$version=`.
    pub fn job_status(
        &mut self,
        authorization: Option<&str>,
        version: Option<&str>,
        id: &str,
    ) -> Reply {
        self.read_job(authorization, version, id, |job| {
            job.stats.status_gets += 1;
            job.status()
        })
    }

    /// `GET {base}/configure/{jobId}?$version=`: the job's resources.
    pub fn job_detail(
        &mut self,
        authorization: Option<&str>,
        version: Option<&str>,
        id: &str,
    ) -> Reply {
        self.read_job(authorization, version, id, |job| {
            job.stats.detail_gets += 1;
            job.detail()
        })
    }

    /// A GET of job `id`, admitted as the service admits it, answered by
    /// `read`.
    fn read_job(
        &mut self,
        authorization: Option<&str>,
        version: Option<&str>,
        id: &str,
        read: impl FnOnce(&mut JobState) -> Reply,
    ) -> Reply {
        match self.admit_job(authorization, version, id) {
            Ok(key) => self.jobs.get_mut(&key).map_or_else(missing, read),
            Err(reply) => reply,
        }
    }

    /// Starts (or starts again) a job a test describes, for `publisher`.
    pub fn start_job(&mut self, publisher: &str, job: Job) -> Result<String, String> {
        if !self.scenario.publishers.iter().any(|p| p.id == publisher) {
            return Err(format!("no publisher {publisher}"));
        }
        job.faults.validate()?;
        let state = JobState::new(publisher, job);
        let id = state.config.id.clone();
        self.jobs.insert(state.key(), state);
        Ok(id)
    }

    /// The faults of the job `id` (made from its template on first use).
    pub fn job_faults(&mut self, id: &str) -> Option<crate::scenario::Faults> {
        self.job_mut(id).map(|j| j.config.faults.clone())
    }

    /// Auth (a Graph token of a principal added to the job's publisher),
    /// `$version`, and the job's existence, as the service checks them.
    fn admit_job(
        &mut self,
        authorization: Option<&str>,
        version: Option<&str>,
        id: &str,
    ) -> Result<String, Reply> {
        let caller = self.caller_for(authorization, Audience::Graph)?;
        let versions = &self.scenario.job_api_versions;
        if !version.is_some_and(|v| versions.iter().any(|k| k == v)) {
            let message = format!(
                "Invalid $version. Allowed values are [{}]",
                versions.join(", ")
            );
            return Err(error(400, "badRequest", &message));
        }
        let Some(publisher) = self.job_mut(id).map(|j| j.publisher.clone()) else {
            return Err(missing());
        };
        if !self.may_use(caller, &publisher) {
            return Err(error(
                403,
                "forbidden",
                "The caller has no access to this job.",
            ));
        }
        Ok(id.to_ascii_lowercase())
    }

    /// A job made from its publisher's template: the publisher, and the job.
    fn job_template(&self, id: &str) -> Option<(String, Job)> {
        let key = id.to_ascii_lowercase();
        self.scenario.publishers.iter().find_map(|p| {
            let t = p
                .job_templates
                .iter()
                .find(|t| key.starts_with(&t.id.to_ascii_lowercase()))?;
            Some((
                p.id.clone(),
                Job {
                    id: id.to_string(),
                    ..t.clone()
                },
            ))
        })
    }

    /// A job by id, made from its publisher's template on first use.
    fn job_mut(&mut self, id: &str) -> Option<&mut JobState> {
        let key = id.to_ascii_lowercase();
        if !self.jobs.contains_key(&key) {
            if self.scenario.lists_missing_job(id) {
                return None;
            }
            let (publisher, job) = self.job_template(id).or_else(|| {
                let unnamed = !self.scenario.names_job(id);
                (self.scenario.make_up_unknown_targets && unnamed)
                    .then(|| (MADE_UP_PUBLISHER.to_string(), Job::made_up(id)))
            })?;
            self.jobs
                .insert(key.clone(), JobState::new(&publisher, job));
        }
        self.jobs.get_mut(&key)
    }
}

/// The publisher a made-up job belongs to: named by no scenario, so open
/// to every caller where targets are made up.
const MADE_UP_PUBLISHER: &str = "(made up)";

fn missing() -> Reply {
    error(404, "notFound", "The job does not exist.")
}
