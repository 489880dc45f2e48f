//! What an API says of an operation, in the words the rest of the operator
//! uses: each client (CPP's, Product Ingestion's) reads it off the wire in
//! these words, and the decision reads them without knowing which API
//! answered. Neither the clients nor the decision own it, so neither
//! depends on the other.

use std::time::Duration;

/// An operation's state, read from its status as docs/cpp-api.md says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationState {
    Done,
    Failed,
    InProgress,
}

impl OperationState {
    /// Compares case-insensitively and ignores spaces, so `Not Started`,
    /// `notStarted` and `notstarted` are one value; unknown values are in
    /// progress.
    ///
    /// ```
    /// use offer_cancel_operator::operation::OperationState;
    /// assert_eq!(OperationState::of("Complete"), OperationState::Done);
    /// assert_eq!(OperationState::of("not started"), OperationState::InProgress);
    /// assert_eq!(OperationState::of("FAILED"), OperationState::Failed);
    /// ```
    pub fn of(status: &str) -> OperationState {
        match fold(status).as_str() {
            "completed" | "complete" | "succeeded" | "canceled" | "cancelled" => {
                OperationState::Done
            }
            "failed" => OperationState::Failed,
            _ => OperationState::InProgress,
        }
    }
}

/// Lower case without spaces, `_` or `-`: one spelling per status.
fn fold(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether a status word says running: `notStarted` or `running`, in any
/// spelling (a CPP operation's `status`, a job's `jobStatus`). Every other
/// word, known or not, does not.
pub(crate) fn says_running(status: &str) -> bool {
    matches!(fold(status).as_str(), "notstarted" | "running")
}

/// Whether a status word says ended by a cancel: `canceled` or
/// `cancelled`, in any spelling (a CPP operation's `status`, a job's
/// `jobResult`).
pub(crate) fn says_cancelled(status: &str) -> bool {
    matches!(fold(status).as_str(), "canceled" | "cancelled")
}

/// An API's answer to the cancel call when it was not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Cancelled at once (CPP's 200; a job answered `cancelled`).
    Cancelled,
    /// Accepted, still going: where to poll, and when. `http` is the
    /// answer's status (CPP's 202; a job's 200 while it still runs).
    Accepted {
        http: u16,
        location: Option<String>,
        retry_after: Option<Duration>,
    },
}

/// One poll of what the cancel is following: CPP's cancel operation, or
/// the job itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolledOperation {
    pub operation: Operation,
    /// What the poll means for the cancel, as the API that answered reads
    /// its own words (a CPP cancel operation that `succeeded` is done; a
    /// job that `succeeded` was not cancelled).
    pub state: OperationState,
    /// A new `Location` header, which replaces the URL to poll.
    pub location: Option<String>,
    pub retry_after: Option<Duration>,
}

/// One operation, as `GET operation` or the submissions list returns it,
/// or a configure job as its status returns it.
/// Every text is bounded by the client that read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Operation {
    pub id: Option<String>,
    /// `submissionType` as CPP wrote it (`publish`, `goLive`, `cancel`,
    /// ...); `configure job` for a Product Ingestion job.
    pub kind: Option<String>,
    /// The status word as the API wrote it (a finished job's: its `jobResult`).
    pub status: String,
    /// The operation's error and messages in one line (empty: none).
    pub detail: String,
    /// `createdDateTime`, when CPP sent one that reads as a time.
    pub created: Option<jiff::Timestamp>,
    /// The step under way, in words, when CPP lists steps.
    pub progress: Option<String>,
}

impl Operation {
    /// A cancel operation (`submissionType` is `cancel`).
    pub fn is_cancel(&self) -> bool {
        self.kind
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case("cancel"))
    }

    pub fn state(&self) -> OperationState {
        OperationState::of(&self.status)
    }

    /// Running as the operations list means it: `notStarted` or
    /// `running` in any spelling. Every other status, known or not, is not.
    pub(crate) fn is_running(&self) -> bool {
        says_running(&self.status)
    }

    /// Ended by a cancel: `canceled` or `cancelled`, in any spelling.
    pub(crate) fn was_cancelled(&self) -> bool {
        says_cancelled(&self.status)
    }

    /// The detail, or words saying there is none.
    pub(crate) fn failure_detail(&self) -> String {
        if self.detail.is_empty() {
            return "no error details".into();
        }
        self.detail.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_status_spelling_is_read() {
        use OperationState::*;
        for (raw, want) in [
            ("completed", Done),
            ("Complete", Done),
            ("SUCCEEDED", Done),
            ("canceled", Done),
            ("Cancelled", Done),
            ("failed", Failed),
            ("Failed", Failed),
            ("notStarted", InProgress),
            ("not started", InProgress),
            ("running", InProgress),
            ("somethingNew", InProgress),
            ("", InProgress),
        ] {
            assert_eq!(OperationState::of(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn only_not_started_and_running_are_running_in_the_list() {
        let op = |status: &str| Operation {
            status: status.into(),
            ..Operation::default()
        };
        for busy in ["notStarted", "not started", "Running", "NOT_STARTED"] {
            assert!(op(busy).is_running(), "{busy}");
        }
        for idle in ["completed", "canceled", "failed", "somethingNew", ""] {
            assert!(!op(idle).is_running(), "{idle}");
        }
    }
}
