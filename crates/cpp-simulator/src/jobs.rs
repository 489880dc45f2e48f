//! The Product Ingestion API's configure jobs: cancel and status, with the
//! answers its public reference shows (see the operator's
//! `docs/product-ingestion-api.md`). Free of HTTP, like `state`.

use serde_json::{Value, json};

use crate::scenario::{Audience, Job, JobCancelMode, JobEnding};
use crate::state::{Reply, SimState};

/// Counts per job, for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStats {
    /// Cancel POSTs that reached the job, whatever the answer.
    pub cancel_posts: u64,
    pub status_gets: u64,
    /// When the first cancel POST arrived, in ms since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_cancel_post_ms: Option<u64>,
}

/// One job as the service keeps it.
#[derive(Debug, Clone)]
pub struct JobState {
    pub publisher: String,
    pub config: Job,
    /// `notStarted`, `running` or `completed`.
    status: &'static str,
    /// `pending`, `succeeded`, `failed` or `cancelled`.
    result: &'static str,
    started: jiff::Timestamp,
    ended: Option<jiff::Timestamp>,
    /// Status GETs since a cancel was accepted while it runs.
    polls_since_cancel: Option<u32>,
    pub stats: JobStats,
}

impl JobState {
    pub fn new(publisher: &str, config: Job) -> JobState {
        let mut job = JobState {
            publisher: publisher.to_string(),
            config,
            status: "running",
            result: "pending",
            started: jiff::Timestamp::now(),
            ended: None,
            polls_since_cancel: None,
            stats: JobStats::default(),
        };
        if job.config.cancel == JobCancelMode::AlreadyCompleted {
            job.end();
        }
        job
    }

    /// Job ids are GUIDs: one job whatever their case.
    pub fn key(&self) -> String {
        self.config.id.to_ascii_lowercase()
    }

    fn end(&mut self) {
        self.status = "completed";
        self.result = match self.config.ended {
            JobEnding::Succeeded => "succeeded",
            JobEnding::Failed => "failed",
        };
        self.ended = Some(jiff::Timestamp::now());
    }

    fn cancelled(&mut self) {
        self.status = "completed";
        self.result = "cancelled";
        self.ended = Some(jiff::Timestamp::now());
        self.polls_since_cancel = None;
    }

    /// The configure-status object (the reference's samples spell the id
    /// `jobID`, its schema `jobId`: the simulator writes the schema's).
    fn json(&self) -> Value {
        let errors: Vec<Value> = if self.result == "failed" {
            let error = |m: &String| json!({"code": "badRequest", "message": m, "details": []});
            self.config.errors.iter().map(error).collect()
        } else {
            vec![]
        };
        json!({
            "jobId": self.config.id,
            "jobStatus": self.status,
            "jobResult": self.result,
            "jobStart": self.started.to_string(),
            "jobEnd": self.ended.map(|t| t.to_string()),
            "errors": errors,
        })
    }

    /// Answers a cancel as the job's mode says.
    fn cancel(&mut self) -> Reply {
        if self.status == "completed" {
            return already_completed();
        }
        match self.config.cancel {
            JobCancelMode::Immediate => self.cancelled(),
            JobCancelMode::Running => {
                self.polls_since_cancel.get_or_insert(0);
            }
            JobCancelMode::TooLate | JobCancelMode::AlreadyCompleted => {
                self.end();
                return already_completed();
            }
        }
        Reply::json(200, self.json())
    }

    /// Answers a status GET; an accepted cancel takes effect after
    /// `pollsUntilDone` of them.
    fn status(&mut self) -> Reply {
        if let Some(polls) = self.polls_since_cancel.as_mut() {
            *polls += 1;
            if *polls >= self.config.polls_until_done {
                self.cancelled();
            }
        }
        Reply::json(200, self.json())
    }
}

fn already_completed() -> Reply {
    let body = json!({"error": {
        "code": "badRequest",
        "message": "Cannot cancel job, job has already completed.",
        "details": [],
    }});
    Reply::json(400, body)
}

/// The error body of the Product Ingestion API.
fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {"code": code, "message": message, "details": []}}),
    )
}

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
        match self.admit_job(authorization, version, id) {
            Ok(key) => self.jobs.get_mut(&key).map_or_else(missing, |job| {
                job.stats.status_gets += 1;
                job.status()
            }),
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

    /// A job by id, made from its publisher's template on first use.
    fn job_mut(&mut self, id: &str) -> Option<&mut JobState> {
        let key = id.to_ascii_lowercase();
        if !self.jobs.contains_key(&key) {
            let (publisher, template) = self.scenario.publishers.iter().find_map(|p| {
                let t = p
                    .job_templates
                    .iter()
                    .find(|t| key.starts_with(&t.id.to_ascii_lowercase()))?;
                Some((p.id.clone(), t.clone()))
            })?;
            let job = Job {
                id: id.to_string(),
                ..template
            };
            self.jobs
                .insert(key.clone(), JobState::new(&publisher, job));
        }
        self.jobs.get_mut(&key)
    }
}

fn missing() -> Reply {
    error(404, "notFound", "The job does not exist.")
}
