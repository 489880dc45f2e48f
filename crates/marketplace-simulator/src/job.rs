//! One Product Ingestion configure job: its state, and its answers to
//! cancel and status as the API's public reference shows them (see the
//! operator's `docs/product-ingestion-api.md`). Free of HTTP, like `state`.

use serde_json::{Value, json};

use crate::reply::Reply;
use crate::scenario::{Job, JobCancelMode, JobEnding};

/// Counts per job, for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStats {
    /// Cancel POSTs that reached the job, whatever the answer.
    pub cancel_posts: u64,
    pub status_gets: u64,
    /// Detail GETs (`GET configure/{jobId}`).
    pub detail_gets: u64,
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
    /// Resources processed so far (all of them once it ended otherwise
    /// than cancelled).
    processed: u32,
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
            processed: 0,
            stats: JobStats::default(),
        };
        job.processed = job.config.processed_before_cancel.min(job.config.resources);
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
        self.processed = self.config.resources;
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

    /// The job's detail: each resource, with how the job left it
    /// (`succeeded` once processed; `cancelled` once the cancel stopped it
    /// before; `notStarted` while the job runs).
    pub(crate) fn detail(&self) -> Reply {
        const KINDS: [&str; 4] = ["product", "plan", "price-and-availability-plan", "listing"];
        let resources: Vec<Value> = (0..self.config.resources)
            .map(|i| {
                let kind = KINDS[i as usize % KINDS.len()];
                let state = match (i < self.processed, self.result) {
                    (true, "failed") => "failed",
                    (true, _) => "succeeded",
                    (false, "cancelled") => "cancelled",
                    (false, _) => "notStarted",
                };
                json!({
                    "$schema": format!("https://schema.mp.microsoft.com/schema/{kind}/2022-03-01-preview2"),
                    "id": format!("{kind}/{}-{i}", self.config.id),
                    "status": state,
                })
            })
            .collect();
        Reply::json(
            200,
            json!({
                "$schema": "https://schema.mp.microsoft.com/schema/configure/2022-03-01-preview2",
                "jobId": self.config.id,
                "resources": resources,
            }),
        )
    }

    /// Answers a cancel as the job's mode says.
    pub(crate) fn cancel(&mut self) -> Reply {
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
    pub(crate) fn status(&mut self) -> Reply {
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
pub(crate) fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {"code": code, "message": message, "details": []}}),
    )
}
