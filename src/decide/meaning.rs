//! What the target's API said, read for what it means: the one place where
//! an answer or a failure of either API ([`Said`]) becomes an [`Outcome`],
//! with its reason and message. Where the two APIs say one thing in two
//! ways, the resource's [`Words`](super::words::Words) choose.

use super::model::Failure;
use super::model::{FailureClass, NotAsked, Outcome, Refusal, Refused, Said, reason};
use super::observed::{Observed, recorded, wanted};
use super::target::target;
use super::words::{settle_by, words};

/// What `said` means for the resource `obs` sees.
pub fn meaning(obs: &Observed, said: Said) -> Outcome {
    match said {
        // Only a cancelled job's detail is asked for once the cancel ended.
        Said::NotAsked(why) if super::processed::pending(obs) => {
            Outcome::JobDetail(Err(super::processed::not_asked(&why)))
        }
        Said::NotAsked(why) => not_asked(why),
        Said::Target(Ok(listing)) => {
            let locate = |id: &str| listing.location(id);
            Outcome::Targeted(target(&listing.operations, wanted(obs), locate))
        }
        Said::Record(Ok(listing)) => Outcome::Settled(settle_by(obs, recorded(obs), &listing)),
        Said::Poll(Ok(polled)) => Outcome::Polled(polled),
        Said::Cancel(Ok(answer)) => Outcome::Answered(answer),
        // Whatever it says, the cancel's outcome stands: only the record
        // of what the job had already applied waits on it.
        Said::JobDetail(read) => Outcome::JobDetail(read),
        Said::Target(Err(failure)) | Said::Record(Err(failure)) | Said::Poll(Err(failure)) => {
            failed(obs, failure, false)
        }
        Said::Cancel(Err(Refused { failure, then })) => then
            .and_then(|then| (words(obs).refused_late)(obs, &failure, then))
            .unwrap_or_else(|| failed(obs, failure, true)),
    }
}

fn not_asked(why: NotAsked) -> Outcome {
    match why {
        NotAsked::NoCredentials(message) => Outcome::CredentialsUnavailable(message),
        // As Entra's refusal of them would be: the Secret's change re-arms it.
        NotAsked::UnusableCredentials(message) => Outcome::Rejected {
            reason: reason::CREDENTIALS_REJECTED,
            message,
            cancel_status: None,
        },
        NotAsked::NoTarget(message) => Outcome::InvalidSpec(message),
    }
}

/// What a failed call means; `during_cancel`: the cancel POST itself
/// failed, and the status it was answered is recorded.
fn failed(obs: &Observed, failure: Failure, during_cancel: bool) -> Outcome {
    let Failure { class, message } = failure;
    let refusal = match class {
        // Waited for like a missing Secret, also at the POST: nothing was
        // sent (there was no token), and the intent stays, to be settled
        // and sent once it is there.
        FailureClass::SourceUnavailable => return Outcome::ServiceAccountUnavailable(message),
        FailureClass::Transient { retry_after } => {
            return Outcome::Transient {
                message,
                retry_after,
            };
        }
        FailureClass::Terminal(refusal) => refusal,
    };
    let (reason, status) = match refusal {
        Refusal::Answered { status, to } => ((words(obs).refusal_reason)(status, to), Some(status)),
        Refusal::Credentials => (reason::CREDENTIALS_REJECTED, None),
        Refusal::Location => (reason::INVALID_LOCATION, None),
        Refusal::Malformed => (reason::MALFORMED_RESPONSE, None),
        Refusal::Unsent => (reason::REJECTED, None),
    };
    Outcome::Rejected {
        reason,
        message,
        cancel_status: status.filter(|_| during_cancel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::OfferCancellation;
    use crate::decide::{ListAfterNotFound, Listing, Request, Settlement};
    use crate::fixtures::intent;
    use crate::operation::Operation;

    fn offer() -> Observed {
        OfferCancellation::test().observed()
    }

    fn job() -> Observed {
        OfferCancellation::test().job("job-1").observed()
    }

    fn answered(status: u16, to: Request) -> Failure {
        Failure {
            class: FailureClass::Terminal(Refusal::Answered { status, to }),
            message: format!("HTTP {status}"),
        }
    }

    fn running(id: &str, kind: &str) -> Operation {
        Operation {
            id: Some(id.into()),
            kind: Some(kind.into()),
            status: "running".into(),
            ..Operation::default()
        }
    }

    fn listing(ops: Vec<Operation>) -> Listing {
        let locations = ops
            .iter()
            .filter_map(|op| op.id.clone())
            .map(|id| (id.clone(), format!("/at/{id}")))
            .collect();
        Listing {
            operations: ops,
            locations,
        }
    }

    fn reason_of(outcome: &Outcome) -> Option<(&'static str, Option<u16>)> {
        match outcome {
            Outcome::Rejected {
                reason,
                cancel_status,
                ..
            } => Some((reason, *cancel_status)),
            _ => None,
        }
    }

    #[test]
    fn a_404_names_what_the_target_api_does_not_know() {
        let of =
            |obs: &Observed, to| reason_of(&meaning(obs, Said::Target(Err(answered(404, to)))));
        assert_eq!(
            of(&offer(), Request::Record),
            Some((reason::OFFER_NOT_FOUND, None))
        );
        assert_eq!(of(&offer(), Request::Poll), Some((reason::NOT_FOUND, None)));
        assert_eq!(
            of(&job(), Request::Record),
            Some((reason::JOB_NOT_FOUND, None))
        );
        assert_eq!(
            of(&job(), Request::Cancel),
            Some((reason::JOB_NOT_FOUND, None))
        );
    }

    #[test]
    fn a_job_401_is_forbidden_and_a_cpp_401_unauthorized() {
        let of = |obs: &Observed| {
            let said = Said::Cancel(Err(Refused {
                failure: answered(401, Request::Cancel),
                then: None,
            }));
            reason_of(&meaning(obs, said))
        };
        assert_eq!(of(&job()), Some((reason::FORBIDDEN, Some(401))));
        assert_eq!(of(&offer()), Some((reason::UNAUTHORIZED, Some(401))));
    }

    #[test]
    fn a_late_cancel_reads_as_the_record_shows_it_after() {
        let mut obs = offer();
        let t = crate::decide::transition(&obs, intent());
        obs.status = t.status;
        let record = Ok(listing(vec![running("cancel-1", "cancel")]));
        let said = Said::Cancel(Err(Refused {
            failure: answered(404, Request::Cancel),
            then: Some(record),
        }));
        let Outcome::CancelNotFound(found) = meaning(&obs, said) else {
            panic!("not a CancelNotFound");
        };
        assert_eq!(found.message, "HTTP 404");
        assert!(matches!(
            found.list,
            ListAfterNotFound::Shows {
                settlement: Some(Settlement::Follow { ref location }),
                ..
            } if location == "/at/cancel-1"
        ));
    }

    #[test]
    fn a_late_cancel_whose_record_cannot_be_read_stands_as_refused() {
        let unread = |then| {
            Said::Cancel(Err(Refused {
                failure: answered(400, Request::Cancel),
                then: Some(Err(then)),
            }))
        };
        let outcome = meaning(&job(), unread(answered(503, Request::Record)));
        assert_eq!(reason_of(&outcome), Some((reason::BAD_REQUEST, Some(400))));
        let outcome = meaning(
            &offer(),
            Said::Cancel(Err(Refused {
                failure: answered(404, Request::Cancel),
                then: Some(Err(answered(404, Request::Record))),
            })),
        );
        assert!(matches!(
            outcome,
            Outcome::CancelNotFound(f) if f.list == ListAfterNotFound::OfferMissing
        ));
    }

    #[test]
    fn a_missing_token_source_is_waited_for_also_at_the_post() {
        let source = Failure {
            class: FailureClass::SourceUnavailable,
            message: "ServiceAccount team-a/offercancel not found".into(),
        };
        let said = Said::Cancel(Err(Refused {
            failure: source,
            then: None,
        }));
        assert!(matches!(
            meaning(&offer(), said),
            Outcome::ServiceAccountUnavailable(m) if m.contains("team-a/offercancel")
        ));
    }

    #[test]
    fn a_job_is_targeted_by_its_own_id() {
        let said = Said::Target(Ok(listing(vec![running("job-1", "configure")])));
        assert!(matches!(
            meaning(&job(), said),
            Outcome::Targeted(crate::decide::Targeting::Send(t)) if t.id == "job-1"
        ));
    }
}
