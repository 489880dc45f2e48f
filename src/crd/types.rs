//! The resource's types: spec, status, target, phase, and the limits and
//! rules the generated schema carries (`#[schemars]`, `#[x_kube]`). What a
//! spec targets ([`OfferCancellationSpec::target`]) and its defaults are
//! read here; the checks that repeat the schema for specs no API server
//! has seen are `validation.rs`'s.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Annotation whose every new value asks for one new attempt of a Failed resource.
pub(crate) const RETRY_ANNOTATION: &str = "offercancel.dev/retry";
/// The CPP api-version used when the spec names none.
pub(crate) const DEFAULT_API_VERSION: &str = "2017-10-31";
/// The Product Ingestion `$version` used when the spec names none: the only
/// one its reference documents for cancel.
pub(super) const DEFAULT_JOB_API_VERSION: &str = "2022-03-01-preview2";
/// Seconds between polls when the spec names none: CPP's cancel operations
/// finish in seconds; Product Ingestion asks for at most one status
/// request a minute.
pub(super) const DEFAULT_POLL_INTERVAL_SECONDS: u32 = 30;
pub(crate) const DEFAULT_JOB_POLL_INTERVAL_SECONDS: u32 = 60;
/// Pattern of a configure job's id: GUID-like (letters, digits, `-`), so
/// it is always one plain path segment.
pub(super) const JOB_ID_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9-]*$";
pub(super) const MAX_JOB_ID_LEN: usize = 64;
/// Exactly one target: the schema's rule (no `oldSelf`, so it holds on
/// create too) and `OfferCancellationSpec::target` say the same.
pub(super) const ONE_TARGET_RULE: &str = "has(self.productIngestion) ? !has(self.publisherId) && !has(self.offerId) && !has(self.operationId) : has(self.publisherId) && has(self.offerId)";
/// The Product Ingestion API asks for at most one status request a
/// minute per job: the schema refuses a faster poll of a job.
pub(super) const JOB_POLL_RULE: &str = "!has(self.productIngestion) || !has(self.pollIntervalSeconds) || self.pollIntervalSeconds >= 60";
/// A preview is confirmed by turning it off; turning it on later would
/// not stop a cancel already sent, so the schema refuses it.
pub(super) const PREVIEW_ONLY_TURNS_OFF_RULE: &str =
    "!has(self.preview) || !self.preview || (has(oldSelf.preview) && oldSelf.preview)";
/// Lower bound of `pollIntervalSeconds`; also enforced by the schema.
pub(super) const MIN_POLL_INTERVAL_SECONDS: u32 = 5;

/// Pattern of an operation id (CPP's ids are GUIDs; any plain token is let in).
pub(super) const OPERATION_ID_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9._$-]*$";
/// Pattern of publisherId and offerId, as the schema has it.
pub(super) const ID_PATTERN: &str = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$";
/// Pattern of one notification address, as the schema has it.
pub(super) const EMAIL_PATTERN: &str = r#"^[^@\s,;<>"]+@[^@\s,;<>"]+\.[^@\s,;<>"]+$"#;
/// Pattern of a Secret name (a DNS-1123 subdomain), as the schema has it.
pub(super) const SECRET_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Longest `timeoutSeconds`: a year.
pub(super) const MAX_TIMEOUT_SECONDS: u32 = 31_536_000;
/// Longest operation location the operator stores or follows.
pub(crate) const MAX_LOCATION_LEN: usize = 2048;
/// Longest status message (and condition message) the operator writes.
pub(crate) const MAX_MESSAGE_LEN: usize = 1024;
/// Longest retry-annotation value kept as is; longer ones are kept as a digest.
pub(super) const MAX_RETRY_REQUEST_LEN: usize = 128;
/// How many answered values of the retry annotation status keeps besides
/// the current one: enough for any revert GitOps makes.
pub const MAX_EARLIER_RETRY_REQUESTS: usize = 8;
pub(super) const MAX_ID_LEN: usize = 128;
pub(super) const MAX_EMAIL_LEN: usize = 254;
pub(super) const MAX_EMAILS: usize = 20;

/// Cancels the operation in progress (publish, go-live, ...) on one Cloud
/// Partner Portal offer, or one Partner Center Product Ingestion configure job.
// clippy reads the repeated `printcolumn(type_ = ...)` keys as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    doc = "Asks the operator to cancel the operation in progress on one Cloud Partner Portal offer, or one Product Ingestion configure job.",
    group = "offercancel.dev",
    version = "v1alpha1",
    kind = "OfferCancellation",
    plural = "offercancellations",
    shortname = "ocancel",
    namespaced,
    status = "OfferCancellationStatus",
    category = "offercancel",
    printcolumn(name = "Target", type_ = "string", json_path = ".status.target"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Operation",
        type_ = "string",
        json_path = ".status.operationStatus",
        priority = 1
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        priority = 1
    ),
    printcolumn(
        name = "Timeout",
        type_ = "integer",
        json_path = ".spec.timeoutSeconds",
        priority = 1
    ),
    printcolumn(
        name = "OperationId",
        type_ = "string",
        json_path = ".spec.operationId",
        priority = 1
    ),
    printcolumn(
        name = "Cancels",
        type_ = "string",
        json_path = ".status.targetOperation.id"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(ONE_TARGET_RULE).message("name exactly one target: publisherId and offerId (a CPP offer), or productIngestion (a configure job; operationId does not apply)"))]
#[x_kube(validation = Rule::new(JOB_POLL_RULE).message("a configure job is polled at most once a minute: pollIntervalSeconds must be at least 60 with productIngestion"))]
#[x_kube(validation = Rule::new(PREVIEW_ONLY_TURNS_OFF_RULE).message("spec.preview can only be turned off (that confirms the cancel the preview recorded): create a new OfferCancellation to preview again"))]
#[x_kube(validation = Rule::new("has(self.productIngestion) == has(oldSelf.productIngestion)").message("the target cannot change between an offer and a job: create a new OfferCancellation instead"))]
pub struct OfferCancellationSpec {
    /// Publisher identifier in the Cloud Partner Portal, e.g. `contoso`.
    /// With `offerId`, the alternative to `productIngestion`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_ID_LEN), pattern(ID_PATTERN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("publisherId is immutable: create a new OfferCancellation instead"))]
    pub publisher_id: Option<String>,

    /// Offer identifier in the Cloud Partner Portal. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_ID_LEN), pattern(ID_PATTERN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("offerId is immutable: create a new OfferCancellation instead"))]
    pub offer_id: Option<String>,

    /// A Partner Center Product Ingestion configure job to cancel: the
    /// alternative to `publisherId`/`offerId`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("productIngestion is immutable: create a new OfferCancellation instead"))]
    pub product_ingestion: Option<ProductIngestion>,

    /// Addresses CPP notifies about the progress of the cancel operation
    /// (sent comma-joined as `metadata.notification-emails`). CPP only: a
    /// job's cancel carries no body.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = MAX_EMAILS),
        inner(length(min = 3, max = MAX_EMAIL_LEN), pattern(EMAIL_PATTERN))
    )]
    pub notification_emails: Vec<String>,

    /// Secret in this namespace with either `token` (a bearer token for the
    /// target's API) or `tenantId`, `clientId` and `clientSecret` (Entra ID
    /// client credentials; the token is requested for the target's API).
    pub credentials_secret_ref: SecretRef,

    /// CPP api-version to call.
    #[serde(default = "default_api_version")]
    #[schemars(length(min = 1, max = 32), pattern(r"^[0-9A-Za-z.-]+$"))]
    pub api_version: String,

    /// Seconds between two polls of an asynchronous cancel (at least 5).
    /// Unset: 30 for a CPP offer, 60 for a job (the Product Ingestion API
    /// asks for at most one status request a minute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_POLL_INTERVAL_SECONDS, max = 86400))]
    pub poll_interval_seconds: Option<u32>,

    /// Stop polling after this many seconds from the cancel request: the
    /// resource then fails with reason Timeout. Unset: poll until done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_SECONDS))]
    pub timeout_seconds: Option<u32>,

    /// The id of the operation to cancel, as the offer's operations list
    /// shows it (a publish or go-live submission). The cancel is sent only
    /// while that operation is in progress: a manifest applied again later
    /// never cancels another operation. CPP only (a job's id already names
    /// its operation). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_ID_LEN), pattern(OPERATION_ID_PATTERN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("operationId is immutable: create a new OfferCancellation instead"))]
    pub operation_id: Option<String>,

    /// After this instant (RFC 3339) no cancel is sent for this resource;
    /// a cancel accepted before it is still followed to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,

    /// Preview only: read what the cancel would be for (the operation in
    /// progress, or the job), record it in `status.targetOperation` with
    /// reason PreviewReady, and send nothing. Turning it off (false, or
    /// removing it) confirms: the cancel is then sent for the operation
    /// the preview recorded and no other, as if `operationId` named it.
    /// Cannot be turned on again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<bool>,
}

/// Reference to a Secret in the resource's own namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretRef {
    /// Name of the Secret (a DNS-1123 subdomain).
    #[schemars(length(min = 1, max = 253), pattern(SECRET_NAME_PATTERN))]
    pub name: String,
}

fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_string()
}

/// A Product Ingestion configure job.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductIngestion {
    /// The configure job's id, as `POST /configure` answered it.
    #[schemars(length(min = 1, max = MAX_JOB_ID_LEN), pattern(JOB_ID_PATTERN))]
    pub job_id: String,
    /// The `$version` to call.
    #[serde(default = "default_job_api_version")]
    #[schemars(length(min = 1, max = 32), pattern(r"^[0-9A-Za-z.-]+$"))]
    pub api_version: String,
}

fn default_job_api_version() -> String {
    DEFAULT_JOB_API_VERSION.to_string()
}

impl ProductIngestion {
    /// The `$version` used when the spec names none.
    pub const DEFAULT_API_VERSION: &str = DEFAULT_JOB_API_VERSION;
}

/// What a resource cancels, read from its spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The operation in progress on a CPP offer.
    Offer {
        publisher_id: &'a str,
        offer_id: &'a str,
        api_version: &'a str,
    },
    /// A Product Ingestion configure job.
    Job {
        job_id: &'a str,
        api_version: &'a str,
    },
}

impl Target<'_> {
    /// One key per target, for "one cancel per target", compared without
    /// case: job ids are GUIDs, and Partner Center makes publisher and
    /// offer ids lower case only, so `Contoso/Offer` can only be
    /// `contoso/offer` (two spellings wait for each other; they never
    /// make two cancels).
    pub fn key(&self) -> String {
        match self {
            Target::Offer {
                publisher_id,
                offer_id,
                ..
            } => format!(
                "offer/{}/{}",
                publisher_id.to_ascii_lowercase(),
                offer_id.to_ascii_lowercase()
            ),
            Target::Job { job_id, .. } => format!("job/{}", job_id.to_ascii_lowercase()),
        }
    }
}

impl std::fmt::Display for Target<'_> {
    /// As the printer column shows it: `contoso/contoso-offer`, `job 9f1c…`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Offer {
                publisher_id,
                offer_id,
                ..
            } => write!(f, "{publisher_id}/{offer_id}"),
            Target::Job { job_id, .. } => write!(f, "job {job_id}"),
        }
    }
}

/// Where a cancellation stands.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Not yet sent, or sent without a decisive answer yet.
    Pending,
    /// CPP accepted the cancel (202) and the operator polls it.
    Cancelling,
    /// The operation was cancelled.
    Cancelled,
    /// The cancel failed; see the message and the Stalled condition.
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Cancelling => "Cancelling",
            Phase::Cancelled => "Cancelled",
            Phase::Failed => "Failed",
        }
    }
}

/// Observed state, written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferCancellationStatus {
    /// Pending, Cancelling, Cancelled or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// What this resource cancels, in words (`contoso/contoso-offer` or
    /// `job 9f1c…`), for the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 300))]
    pub target: Option<String>,
    /// Ready (True only when Cancelled), Reconciling (True while work is in
    /// flight, or a preview waits for its confirmation) and Stalled (True
    /// on a failure that needs a change to clear).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// HTTP status of CPP's decisive answer to the cancel call (200, 202 or a 4xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub http_status: Option<u16>,
    /// The cancel operation's location, exactly as CPP returned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_LOCATION_LEN))]
    pub operation_location: Option<String>,
    /// The cancel operation's status as CPP last reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MESSAGE_LEN))]
    pub operation_status: Option<String>,
    /// The last outcome in words, with CPP's error code and message when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MESSAGE_LEN))]
    pub message: Option<String>,
    /// When the operator recorded its intent to send the cancel request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<Time>,
    /// The operation this resource cancels, as the offer's operations list
    /// showed it in progress right before the first cancel request (or as
    /// a preview found it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_operation: Option<TargetOperation>,
    /// True when the cancel was already requested for this offer (by
    /// another request) and this resource followed it instead of sending
    /// its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared_cancel: bool,
    /// When the current attempt began (the first request, or the latest
    /// retry): `timeoutSeconds` counts from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// The cancel POST that follows the recorded intent is answered or
    /// abandoned by then. Until then (and a margin for clock skew) another
    /// writer that finds the intent without an answer waits for it instead
    /// of taking it for a lost answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_deadline: Option<Time>,
    /// When the resource reached Cancelled or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// When a preview (`spec.preview`) read what the cancel would be for;
    /// `targetOperation` then names it (none: nothing would be sent). A
    /// confirmed preview cancels that operation and no other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previewed_at: Option<Time>,
    /// A configure job only: what the job had already processed when its
    /// cancel ended (a cancel stops only resources not yet processed; the
    /// others stay applied), read once from the job's detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_resources: Option<ProcessedResources>,
    /// How many times the cancel request was sent or about to be sent.
    #[serde(default)]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub attempts: u32,
    /// The value of the offercancel.dev/retry annotation the current attempt
    /// answers (a digest when the value is long).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_RETRY_REQUEST_LEN))]
    pub retry_request: Option<String>,
    /// Values of the offercancel.dev/retry annotation that earlier attempts
    /// answered (the latest last; the current one is `retryRequest`): a
    /// value put back asks for nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_EARLIER_RETRY_REQUESTS), inner(length(max = MAX_RETRY_REQUEST_LEN)))]
    pub earlier_retry_requests: Vec<String>,
    /// resourceVersion of the credentials Secret the current attempt used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub credentials_version: Option<String>,
}

/// Most resources `status.processedResources` lists; it counts the rest.
pub const MAX_PROCESSED_RESOURCES: usize = 20;

/// What a cancelled configure job had already processed, which its cancel
/// left applied.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessedResources {
    /// When the job's detail was read; unset: it is still to be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<Time>,
    /// The resources the job had processed, and how (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_PROCESSED_RESOURCES))]
    pub resources: Vec<JobResource>,
    /// How many more it had processed than are listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub more: u32,
    /// Why the detail could not be read (it is not read again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MESSAGE_LEN))]
    pub error: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One resource of a configure job, as the job's detail shows it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobResource {
    /// Its id (`id`, else `durableId` or `resourceName`).
    #[schemars(length(max = 256))]
    pub id: String,
    /// What it is (`product`, `plan`, `price-and-availability-offer`, ...),
    /// from its `$schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub kind: Option<String>,
    /// How the job left it (its `status`, else `state`), as the API says
    /// it; `listed` when the detail gives none.
    #[schemars(length(max = 64))]
    pub state: String,
}

/// An operation on the offer, as its operations list showed it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetOperation {
    /// Its `id`.
    #[schemars(length(max = MAX_ID_LEN))]
    pub id: String,
    /// Its `submissionType` (publish, goLive, ...).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_ID_LEN))]
    pub type_: Option<String>,
    /// Its `createdDateTime`, when CPP gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Time>,
}

/// Why a spec cannot be acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("spec.{field} is invalid: {why}")]
    Invalid { field: &'static str, why: String },
}

pub(super) fn invalid(field: &'static str, why: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field,
        why: why.into(),
    }
}

impl OfferCancellationSpec {
    /// What this resource cancels. `Err` unless it names exactly one
    /// target, as the schema's rule says.
    pub fn target(&self) -> Result<Target<'_>, SpecError> {
        let offer = (self.publisher_id.as_deref(), self.offer_id.as_deref());
        match (offer, &self.product_ingestion) {
            ((Some(publisher_id), Some(offer_id)), None) => Ok(Target::Offer {
                publisher_id,
                offer_id,
                api_version: &self.api_version,
            }),
            ((None, None), Some(_)) if self.operation_id.is_some() => Err(invalid(
                "operationId",
                "applies to a CPP offer only: a job's id already names its operation",
            )),
            ((None, None), Some(job)) => Ok(Target::Job {
                job_id: &job.job_id,
                api_version: &job.api_version,
            }),
            _ => Err(invalid(
                "publisherId",
                "name exactly one target: publisherId and offerId, or productIngestion",
            )),
        }
    }

    /// Seconds between polls: as the spec says, else the target's default.
    pub fn poll_interval_seconds(&self) -> u32 {
        let default = match self.product_ingestion {
            Some(_) => DEFAULT_JOB_POLL_INTERVAL_SECONDS,
            None => DEFAULT_POLL_INTERVAL_SECONDS,
        };
        let interval = self.poll_interval_seconds.unwrap_or(default);
        // The schema refuses less for a job; one stored before that rule
        // still asks at most once a minute, as the API wants.
        match self.product_ingestion {
            Some(_) => interval.max(DEFAULT_JOB_POLL_INTERVAL_SECONDS),
            None => interval,
        }
    }

    /// Whether this spec asks only for a preview (`spec.preview: true`).
    pub fn is_preview(&self) -> bool {
        self.preview == Some(true)
    }

    /// The comma-joined list CPP expects in `metadata.notification-emails`.
    pub(crate) fn notification_emails_joined(&self) -> String {
        self.notification_emails.join(",")
    }
}

/// The retry annotation's value as status keeps it: as is when short, else
/// a stable digest (FNV-1a), so any value fits the schema and still
/// compares equal to itself.
pub(crate) fn retry_request_token(value: &str) -> String {
    if value.len() <= MAX_RETRY_REQUEST_LEN {
        return value.to_string();
    }
    let digest = value.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("fnv1a:{digest:016x}:{}", value.len())
}
