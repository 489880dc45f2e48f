//! Test builders: a resource at each point of its life, reached through
//! the decision's own transitions (so a fixture's status is one the
//! operator would have written), and a pinned clock. Compiled for tests
//! only (the integration tests turn on the `fixtures` feature).
//!
//! ```text
//! OfferCancellation::test().in_doubt().observed()
//! OfferCancellation::test().polling("/op").with_timeout(60).observed()
//! ```

pub mod certificate;

use crate::crd::{OfferCancellation, SecretRef};
use crate::decide::{Observed, Outcome, Transition, transition};
use crate::operation::CancelOutcome;
use jiff::Timestamp;

/// The pinned clock's zero.
pub const T0: &str = "2026-11-25T10:00:00Z";

/// `secs` after [`T0`].
pub fn at(secs: i64) -> Timestamp {
    let zero: Timestamp = T0.parse().unwrap_or(Timestamp::UNIX_EPOCH);
    zero + jiff::SignedDuration::from_secs(secs)
}

/// The operations list read before the first cancel: the publish
/// `publish-1` is in progress, so the intent is recorded with it.
pub fn intent() -> Outcome {
    Outcome::Targeted(crate::decide::Targeting::Send(running_publish()))
}

/// The publish every fixture's cancel is for.
pub fn running_publish() -> crate::crd::TargetOperation {
    crate::crd::TargetOperation {
        id: "publish-1".into(),
        type_: Some("publish".into()),
        created: None,
    }
}

/// The resourceVersion of the credentials Secret in every fixture.
pub const SECRET_VERSION: &str = "100";

impl OfferCancellation {
    /// `default/contoso-offer-cancel`: cancel contoso/contoso-offer with the
    /// credentials in Secret `cpp-credentials`, polling every 30 s;
    /// generation 1, resourceVersion 10, nothing done yet.
    pub fn test() -> Self {
        let spec = crate::crd::OfferCancellationSpec {
            publisher_id: Some("contoso".into()),
            offer_id: Some("contoso-offer".into()),
            product_ingestion: None,
            notification_emails: vec![],
            credentials_secret_ref: SecretRef {
                name: "cpp-credentials".into(),
            },
            api_version: "2017-10-31".into(),
            poll_interval_seconds: Some(30),
            timeout_seconds: None,
            operation_id: None,
            not_after: None,
            preview: None,
        };
        let mut oc = OfferCancellation::new("contoso-offer-cancel", spec);
        oc.metadata.namespace = Some("default".into());
        oc.metadata.generation = Some(1);
        oc.metadata.resource_version = Some("10".into());
        oc.metadata.uid = Some("uid-1".into());
        oc
    }

    /// Cancels on this offer of contoso's instead.
    pub fn offer(mut self, offer_id: &str) -> Self {
        self.spec.offer_id = Some(offer_id.into());
        self
    }

    /// Cancels configure job `job_id` (Product Ingestion) instead of an
    /// offer's operation; the poll interval is the job's default (60 s).
    pub fn job(mut self, job_id: &str) -> Self {
        self.spec.publisher_id = None;
        self.spec.offer_id = None;
        self.spec.poll_interval_seconds = None;
        self.spec.product_ingestion = Some(crate::crd::ProductIngestion {
            job_id: job_id.into(),
            api_version: crate::crd::ProductIngestion::DEFAULT_API_VERSION.into(),
        });
        self
    }

    /// Polls every `seconds`.
    pub fn poll_every(mut self, seconds: u32) -> Self {
        self.spec.poll_interval_seconds = Some(seconds);
        self
    }

    /// Gives up after `seconds` from the first request.
    pub fn with_timeout(mut self, seconds: u32) -> Self {
        self.spec.timeout_seconds = Some(seconds);
        self
    }

    /// The user edited the spec: the generation moved on.
    pub fn edited(mut self) -> Self {
        let generation = self.metadata.generation.unwrap_or(1);
        self.metadata.generation = Some(generation + 1);
        self
    }

    /// Asks for a preview only (`spec.preview: true`).
    pub fn previewing(mut self) -> Self {
        self.spec.preview = Some(true);
        self
    }

    /// A preview recorded at [`T0`] that the running publish `publish-1`
    /// is what the cancel would be for.
    pub fn previewed(self) -> Self {
        self.previewing().after([intent()])
    }

    /// The user turned the preview off (`spec.preview: false`): confirmed.
    pub fn confirmed(mut self) -> Self {
        self.spec.preview = Some(false);
        self.edited()
    }

    /// The intent was recorded at [`T0`] and the POST's answer never came.
    pub fn in_doubt(self) -> Self {
        self.after([intent()])
    }

    /// CPP accepted the cancel at [`T0`] (202) with `location` to poll.
    pub fn polling(self, location: &str) -> Self {
        self.after([
            intent(),
            Outcome::Answered(CancelOutcome::Accepted {
                http: 202,
                location: Some(location.into()),
                retry_after: None,
            }),
        ])
    }

    /// CPP cancelled at once (200).
    pub fn cancelled(self) -> Self {
        self.after([intent(), Outcome::Answered(CancelOutcome::Cancelled)])
    }

    /// CPP refused the cancel with `http` (a terminal answer).
    pub fn refused(self, http: u16) -> Self {
        self.after([
            intent(),
            Outcome::Rejected {
                reason: crate::decide::reason_for_status(http),
                message: format!("CPP cancel call answered HTTP {http}"),
                cancel_status: Some(http),
            },
        ])
    }

    /// The status after these outcomes, applied at [`T0`].
    pub fn after(mut self, outcomes: impl IntoIterator<Item = Outcome>) -> Self {
        let mut observed = self.observed();
        for outcome in outcomes {
            let t = transition(&observed, outcome);
            observed.play(&t);
        }
        self.status = Some(observed.status);
        self
    }

    /// What the decision sees of it at [`T0`], its Secret at
    /// [`SECRET_VERSION`], no errors in a row.
    pub fn observed(&self) -> Observed {
        Observed::of(self, Some(SECRET_VERSION.into()), 0, at(0))
    }
}

impl Observed {
    /// Moves on as a driver would: the status and the error streak.
    pub fn play(&mut self, t: &Transition) {
        self.status = t.status.clone();
        self.errors_in_row = t.requeue.errors_in_row();
    }

    /// Applies `outcome` now, then moves on to it.
    pub fn apply(&mut self, outcome: Outcome) -> Transition {
        let t = transition(self, outcome);
        self.play(&t);
        t
    }

    #[cfg(test)]
    pub(crate) fn step(&self) -> crate::decide::Step {
        crate::decide::next_step(self)
    }

    /// A condition's status and reason.
    pub fn condition(&self, kind: &str) -> (String, String) {
        let c = self.status.conditions.iter().find(|c| c.type_ == kind);
        c.map(|c| (c.status.clone(), c.reason.clone()))
            .unwrap_or_else(|| panic!("no {kind} condition"))
    }
}
