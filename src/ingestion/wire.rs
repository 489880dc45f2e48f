//! What the Product Ingestion API sends back about a configure job, read
//! leniently: the reference's samples spell the id `jobID`, its schema
//! `jobId`; `cancelled` is in a sample but not in the schema's enum. Any
//! body may be malformed or hostile: nothing here panics, every text is
//! bounded.

use serde_json::Value;

use crate::crd::JobResource;
use crate::http::wire::{ErrorBody, bounded, parse_utc, scalar_text};
use crate::operation::{Operation, OperationState, says_cancelled, says_running};
use crate::text::clip;

/// What the decision's words call a configure job.
const JOB_KIND: &str = "configure job";

/// A configure-status object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobStatus {
    pub id: Option<String>,
    /// `jobStatus`: `notStarted`, `running`, `completed`.
    pub status: String,
    /// `jobResult`: `pending`, `succeeded`, `failed`, `cancelled`.
    pub result: String,
    pub started: Option<jiff::Timestamp>,
    /// The job's `errors`, in one line (empty: none).
    pub errors: String,
}

impl JobStatus {
    /// What the job's status means for a cancel of it: still going, done
    /// (it ended `cancelled`), or failed (it ended otherwise: the cancel
    /// did not take). An unknown `jobStatus` is not in progress, as the
    /// reference's enum has it; the result then says how it ended.
    pub fn state(&self) -> OperationState {
        if says_running(&self.status) {
            return OperationState::InProgress;
        }
        match says_cancelled(&self.result) {
            true => OperationState::Done,
            false => OperationState::Failed,
        }
    }

    /// Whether the answer is about `job` (one without an id is taken as).
    pub fn names(&self, job: &str) -> bool {
        self.id
            .as_deref()
            .is_none_or(|id| id.eq_ignore_ascii_case(job))
    }

    /// In the operations list's words: a running job shows its
    /// `jobStatus`, an ended one its `jobResult`.
    pub fn into_operation(self, job: &str) -> Operation {
        let status = if says_running(&self.status) {
            self.status
        } else {
            self.result
        };
        Operation {
            id: Some(job.to_string()),
            kind: Some(JOB_KIND.into()),
            status,
            detail: self.errors,
            created: self.started,
            progress: None,
        }
    }
}

/// A configure-status object, from a status GET or a cancel's answer.
pub(crate) fn parse_job_status(body: &[u8]) -> Result<JobStatus, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("job status is not JSON: {e}"))?;
    if !value.is_object() {
        return Err("job status is not an object".into());
    }
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(bounded);
    let status = text("jobStatus").ok_or("job status has no jobStatus")?;
    Ok(JobStatus {
        id: value
            .get("jobId")
            .or_else(|| value.get("jobID"))
            .and_then(scalar_text),
        status,
        result: text("jobResult").unwrap_or_default(),
        started: value
            .get("jobStart")
            .and_then(Value::as_str)
            .and_then(parse_utc),
        errors: value.get("errors").map(error_texts).unwrap_or_default(),
    })
}

/// The most resources of one job's detail read (the rest are counted
/// nowhere: a job of more is beyond any product's size).
const MAX_DETAIL_RESOURCES: usize = 10_000;

/// A configure job's detail (`GET configure/{jobId}`): its resources, each
/// with its id, kind and state as far as the answer gives them. The
/// reference says the detail lists what the job applied and shows no
/// schema for it: an object with a `resources` list is read, each entry's
/// `id` (else `durableId`, `resourceName`), the kind named in its
/// `$schema` (else `resourceType`), and its `status` (else `state`).
pub(crate) fn parse_job_detail(body: &[u8]) -> Result<Vec<JobResource>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("job detail is not JSON: {e}"))?;
    let resources = value
        .get("resources")
        .and_then(Value::as_array)
        .ok_or("job detail has no resources list")?;
    Ok(resources
        .iter()
        .take(MAX_DETAIL_RESOURCES)
        .filter(|r| r.is_object())
        .map(job_resource)
        .collect())
}

fn job_resource(r: &Value) -> JobResource {
    let first = |keys: &[&str]| keys.iter().find_map(|k| r.get(*k).and_then(scalar_text));
    JobResource {
        id: clip(
            &first(&["id", "durableId", "resourceName"]).unwrap_or_default(),
            256,
        ),
        kind: r
            .get("$schema")
            .and_then(Value::as_str)
            .and_then(schema_kind)
            .or_else(|| first(&["resourceType"]))
            .map(|k| clip(&k, 64)),
        state: clip(
            &first(&["status", "state"]).unwrap_or_else(|| "listed".into()),
            64,
        ),
    }
}

/// `https://schema.mp.microsoft.com/schema/plan/2022-03-01-preview2` →
/// `plan`.
fn schema_kind(schema: &str) -> Option<String> {
    let (_, rest) = schema.split_once("/schema/")?;
    let kind = rest.split('/').next().filter(|k| !k.is_empty())?;
    Some(kind.to_string())
}

/// The job's `errors` in one line: each as `code: message`, at most five.
fn error_texts(errors: &Value) -> String {
    let Some(items) = errors.as_array() else {
        return String::new();
    };
    let texts: Vec<String> = items
        .iter()
        .take(5)
        .filter_map(|e| match e {
            Value::String(s) => Some(bounded(s)),
            Value::Object(_) => ErrorBody::parse(e.to_string().as_bytes()).map(|b| b.to_string()),
            _ => None,
        })
        .collect();
    bounded(&texts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_of_the_id_are_read() {
        for key in ["jobId", "jobID"] {
            let body =
                format!(r#"{{"{key}": "9f1c", "jobStatus": "running", "jobResult": "pending"}}"#);
            let job = parse_job_status(body.as_bytes()).unwrap();
            assert_eq!(job.id.as_deref(), Some("9f1c"), "{key}");
            assert!(job.names("9F1C"));
            assert!(!job.names("other"));
        }
    }

    #[test]
    fn a_job_is_cancelled_only_when_it_ended_cancelled() {
        let state = |status: &str, result: &str| {
            let body = format!(r#"{{"jobStatus": "{status}", "jobResult": "{result}"}}"#);
            parse_job_status(body.as_bytes()).unwrap().state()
        };
        use OperationState::*;
        assert_eq!(state("running", "pending"), InProgress);
        assert_eq!(state("notStarted", "pending"), InProgress);
        assert_eq!(state("completed", "cancelled"), Done);
        assert_eq!(state("completed", "Canceled"), Done);
        assert_eq!(state("completed", "succeeded"), Failed, "too late");
        assert_eq!(state("completed", "failed"), Failed);
        assert_eq!(state("somethingNew", "pending"), Failed, "not in progress");
    }

    #[test]
    fn an_ended_job_shows_its_result_and_errors_as_an_operation() {
        let body = br#"{"jobId": "9f1c", "jobStatus": "completed", "jobResult": "failed",
            "jobStart": "2026-11-30T01:02:03Z",
            "errors": [{"code": "badRequest", "message": "<b>bad</b> plan", "details": []}, 7]}"#;
        let op = parse_job_status(body).unwrap().into_operation("9f1c");
        assert_eq!(op.status, "failed");
        assert_eq!(op.kind.as_deref(), Some("configure job"));
        assert!(op.detail.contains("badRequest"), "{}", op.detail);
        assert!(op.created.is_some());
        assert!(!op.is_running());
    }

    #[test]
    fn a_detail_lists_each_resource_by_id_kind_and_state() {
        let body = br#"{"$schema": "https://schema.mp.microsoft.com/schema/configure/2022-03-01-preview2",
            "resources": [
              {"$schema": "https://schema.mp.microsoft.com/schema/plan/2022-03-01-preview2", "id": "plan/1", "status": "succeeded"},
              {"resourceType": "price", "durableId": 7, "state": "notStarted"},
              {"resourceName": "listing"},
              "not an object"
            ]}"#;
        let resources = parse_job_detail(body).unwrap();
        let seen: Vec<(&str, Option<&str>, &str)> = resources
            .iter()
            .map(|r| (r.id.as_str(), r.kind.as_deref(), r.state.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("plan/1", Some("plan"), "succeeded"),
                ("7", Some("price"), "notStarted"),
                ("listing", None, "listed"),
            ]
        );
    }

    #[test]
    fn a_hostile_detail_is_an_error_or_bounded() {
        for body in [&b"[]"[..], b"null", b"{}", b"{\"resources\": 5}", b"\xff"] {
            assert!(parse_job_detail(body).is_err(), "{body:?}");
        }
        let huge = format!(
            r#"{{"resources": [{{"id": "{}", "status": "{}"}}]}}"#,
            "i".repeat(9_000),
            "s".repeat(9_000)
        );
        let read = parse_job_detail(huge.as_bytes()).unwrap();
        assert!(read[0].id.len() <= 256 && read[0].state.len() <= 64);
    }

    #[test]
    fn hostile_bodies_are_errors_not_panics() {
        for body in [
            &b"[]"[..],
            b"null",
            b"{}",
            b"{\"jobStatus\": 5}",
            b"\xff",
            b"",
        ] {
            assert!(parse_job_status(body).is_err(), "{body:?}");
        }
        let huge = format!(r#"{{"jobStatus": "{}"}}"#, "x".repeat(100_000));
        assert!(parse_job_status(huge.as_bytes()).unwrap().status.len() < 1_000);
    }
}
