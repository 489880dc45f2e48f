//! The simulated service's state and rules, free of HTTP: each call takes
//! parsed request parts and returns a [`Reply`].

use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::job::JobState;
pub use crate::reply::Reply;
use crate::scenario::{
    Audience, BodyShape, CancelMode, CancelResult, Faults, LocationShape, Offer, Scenario,
};

/// The resource Azure AD tokens must be asked for, for CPP.
pub const CPP_RESOURCE: &str = "https://cloudpartner.azure.com";
/// The resource of Microsoft Graph, where Product Ingestion lives.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com/";

/// Why a cancel cannot start on this offer now, if it cannot.
fn refusal(state: &OfferState) -> Option<Reply> {
    if state.cancel_op.is_some() {
        let message = "A cancel operation is already in progress.";
        return Some(Reply::error(409, "OperationInProgress", message));
    }
    if !state.in_progress() {
        let message = "No operation is in progress on this offer.";
        return Some(Reply::error(404, "NotFound", message));
    }
    None
}

/// The 202 to an asynchronous cancel, with its location where the offer's
/// scenario puts it.
fn accepted(shape: LocationShape, migrated: String, legacy: String) -> Reply {
    match shape {
        LocationShape::Migrated => Reply::json(202, Value::Null).with_header("Location", migrated),
        LocationShape::NonMigrated => Reply::json(202, Value::Null).with_header("Location", legacy),
        LocationShape::Body => Reply::json(202, json!({ "operationLocation": migrated })),
        LocationShape::Absent => Reply::json(202, Value::Null),
    }
}

/// Counts per `publisher/offer`, for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferStats {
    /// Cancel POSTs that arrived, whatever the answer (faulted ones excepted:
    /// an injected fault stands for a request that never reached the service).
    pub cancel_posts: u64,
    pub operation_gets: u64,
    pub submission_gets: u64,
    /// When the first cancel POST arrived, in milliseconds since the Unix
    /// epoch (for latency measurements).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_cancel_post_ms: Option<u64>,
}

/// An injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Throttle,
    ServerError(u16),
    Drop,
    /// The request is processed, then its connection dropped: the answer is
    /// lost although CPP acted on it.
    DropAfter,
}

#[derive(Debug, Clone)]
struct CancelOperation {
    id: String,
    legacy_id: String,
    started: Instant,
    created: jiff::Timestamp,
    polls: u32,
    notification_emails: String,
}

/// The operation a cancel stops (publish, go-live, ...).
#[derive(Debug, Clone)]
struct TargetOperation {
    id: String,
    kind: String,
    /// `running`, then `canceled` once a cancel stopped it.
    status: &'static str,
    created: jiff::Timestamp,
}

impl TargetOperation {
    fn running(&self) -> bool {
        self.status == "running"
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "submissionType": self.kind,
            "status": self.status,
            "createdDateTime": self.created.to_string(),
        })
    }
}

#[derive(Debug, Clone)]
struct OfferState {
    config: Offer,
    target: Option<TargetOperation>,
    /// Operations to cancel that came before `target` (a test started a
    /// new publish): they stay in the list as they ended.
    earlier: Vec<TargetOperation>,
    cancel_op: Option<CancelOperation>,
    /// Cancel operations that ended, with their last answer: CPP keeps
    /// them, so a late GET or the list still shows how they ended.
    finished: Vec<(CancelOperation, Value)>,
}

impl OfferState {
    fn new(config: Offer) -> OfferState {
        let target = config.in_progress.clone().map(|kind| TargetOperation {
            id: format!("{}-{kind}-1", config.id),
            kind,
            status: "running",
            created: jiff::Timestamp::now(),
        });
        OfferState {
            config,
            target,
            earlier: vec![],
            cancel_op: None,
            finished: vec![],
        }
    }

    fn in_progress(&self) -> bool {
        self.target.as_ref().is_some_and(TargetOperation::running)
    }

    /// A new publish starts (a test's doing): the one before, if still
    /// running, is taken as having succeeded, and stays in the list.
    fn start_publish(&mut self, created: jiff::Timestamp) -> String {
        let n = self.earlier.len() + usize::from(self.target.is_some()) + 1;
        if let Some(mut before) = self.target.take() {
            if before.running() {
                before.status = "succeeded";
            }
            self.earlier.push(before);
        }
        let id = format!("{}-publish-{n}", self.config.id);
        self.target = Some(TargetOperation {
            id: id.clone(),
            kind: "publish".into(),
            status: "running",
            created,
        });
        id
    }

    /// The target ended by itself: it stays in the list as `status`.
    fn end_target(&mut self, status: &'static str) {
        if let Some(t) = self.target.as_mut() {
            t.status = status;
        }
    }

    /// The target was stopped: it stays in the list as `canceled`.
    fn stop_target(&mut self) {
        if let Some(t) = self.target.as_mut() {
            t.status = "canceled";
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Caller {
    Principal(usize),
    Static(usize),
}

/// The service.
pub struct SimState {
    pub(crate) scenario: Scenario,
    offers: HashMap<(String, String), OfferState>,
    /// Configure jobs by id, with their publisher.
    pub(crate) jobs: HashMap<String, JobState>,
    /// Legacy operation ids (`p$o$n$preview`) to their offer.
    legacy: HashMap<String, (String, String)>,
    tokens: HashMap<String, (usize, Instant, Audience)>,
    stats: HashMap<String, OfferStats>,
    /// Requests refused because their token was issued for the other API.
    pub(crate) wrong_audience: u64,
    tokens_issued: u64,
    /// v2.0 token requests refused (a bad assertion, client or scope).
    pub(crate) assertions_refused: u64,
    faults_injected: u64,
    next_op: u64,
    rng: fastrand::Rng,
    /// Every request received, in order.
    pub log: crate::log::RequestLog,
}

impl SimState {
    pub fn new(scenario: Scenario) -> SimState {
        let mut state = SimState {
            rng: fastrand::Rng::with_seed(scenario.seed),
            scenario,
            offers: HashMap::new(),
            jobs: HashMap::new(),
            legacy: HashMap::new(),
            tokens: HashMap::new(),
            stats: HashMap::new(),
            wrong_audience: 0,
            tokens_issued: 0,
            assertions_refused: 0,
            faults_injected: 0,
            next_op: 0,
            log: Default::default(),
        };
        state.reset();
        state
    }

    /// Back to the scenario as loaded: offers, tokens, counters and dice.
    pub fn reset(&mut self) {
        self.offers = self
            .scenario
            .publishers
            .iter()
            .flat_map(|p| p.offers.iter().map(move |o| (p.id.clone(), o.clone())))
            .map(|(p, o)| ((p, o.id.clone()), OfferState::new(o)))
            .collect();
        self.jobs = self
            .scenario
            .publishers
            .iter()
            .flat_map(|p| p.jobs.iter().map(move |j| JobState::new(&p.id, j.clone())))
            .map(|j| (j.key(), j))
            .collect();
        self.legacy.clear();
        self.tokens.clear();
        self.stats.clear();
        self.wrong_audience = 0;
        self.tokens_issued = 0;
        self.assertions_refused = 0;
        self.faults_injected = 0;
        self.next_op = 0;
        self.log.clear();
        self.rng = fastrand::Rng::with_seed(self.scenario.seed);
    }

    /// Starts a new publish on an offer (`"publisher/offer"`, made from its
    /// template on first use); returns the new operation's id.
    /// A new publish on `offer`, created `age` ago (zero: now).
    pub fn start_publish(&mut self, offer: &str, age: Duration) -> Result<String, String> {
        let created = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::try_from(age).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        Ok(self.offer_mut(offer)?.start_publish(created))
    }

    /// An offer by `"publisher/offer"`, made on first use as a request
    /// would make it.
    fn offer_mut(&mut self, offer: &str) -> Result<&mut OfferState, String> {
        let (p, o) = offer
            .split_once('/')
            .ok_or("offer must be publisher/offer")?;
        let key = (p.to_string(), o.to_string());
        if !self.offers.contains_key(&key) {
            let made = self.made_offer(p, o).ok_or("no such offer")?;
            self.offers.insert(key.clone(), OfferState::new(made));
        }
        self.offers
            .get_mut(&key)
            .ok_or_else(|| "no such offer".into())
    }

    pub fn stats(&self) -> Value {
        let jobs: HashMap<&str, &crate::job::JobStats> = self
            .jobs
            .values()
            .map(|j| (j.config.id.as_str(), &j.stats))
            .collect();
        json!({
            "offers": self.stats,
            "jobs": jobs,
            "tokensIssued": self.tokens_issued,
            "assertionsRefused": self.assertions_refused,
            "faultsInjected": self.faults_injected,
            "wrongAudience": self.wrong_audience,
        })
    }

    /// Replaces the global faults, or one offer's (`"publisher/offer"`).
    pub fn set_faults(&mut self, offer: Option<&str>, faults: Faults) -> Result<(), String> {
        faults.validate()?;
        match offer {
            None => self.scenario.faults = faults,
            Some(key) => self.offer_mut(key)?.config.faults = faults,
        }
        Ok(())
    }

    /// Latency to add, and a fault to answer with, for a request to `offer`.
    pub fn roll_faults(
        &mut self,
        offer: Option<(&str, &str)>,
        cancel: bool,
    ) -> (Duration, Option<Fault>) {
        // An offer made from a template on first use has its faults from
        // its very first request on.
        let local =
            offer.and_then(
                |(p, o)| match self.offers.get(&(p.to_string(), o.to_string())) {
                    Some(state) => Some(state.config.faults.clone()),
                    None => self.template_for(p, o).map(|t| t.faults),
                },
            );
        self.roll_faults_with(local, cancel)
    }

    /// Latency and a fault for a request whose own faults are `local`.
    pub(crate) fn roll_faults_with(
        &mut self,
        local: Option<Faults>,
        cancel: bool,
    ) -> (Duration, Option<Fault>) {
        let local = local
            .filter(|f| cancel || !f.cancel_only)
            .unwrap_or_default();
        let global = &self.scenario.faults;
        let latency = Duration::from_millis(global.latency_ms + local.latency_ms);
        let combined = |a: f64, b: f64| 1.0 - (1.0 - a) * (1.0 - b);
        let roll = self.rng.f64();
        let throttle = combined(global.throttle_rate, local.throttle_rate);
        let error = combined(global.error_rate, local.error_rate);
        let drop = combined(global.drop_rate, local.drop_rate);
        let drop_after = combined(global.drop_after_rate, local.drop_after_rate);
        let fault = if roll < throttle {
            Some(Fault::Throttle)
        } else if roll < throttle + error {
            Some(Fault::ServerError(if self.rng.bool() { 500 } else { 503 }))
        } else if roll < throttle + error + drop {
            Some(Fault::Drop)
        } else if roll < throttle + error + drop + drop_after {
            Some(Fault::DropAfter)
        } else {
            None
        };
        if fault.is_some() {
            self.faults_injected += 1;
        }
        (latency, fault)
    }

    /// `POST /{tenant}/oauth2/token`, the Azure AD v1 client-credentials grant.
    pub fn issue_token(&mut self, tenant: &str, form: &HashMap<String, String>) -> Reply {
        let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        if field("grant_type") != "client_credentials" {
            return aad_error(400, "unsupported_grant_type");
        }
        let audience = match field("resource").trim_end_matches('/') {
            r if r == CPP_RESOURCE => Audience::Cpp,
            r if r == GRAPH_RESOURCE.trim_end_matches('/') => Audience::Graph,
            _ => return aad_error(400, "invalid_resource"),
        };
        let Some(index) = self.principal_index(tenant, field("client_id")) else {
            return aad_error(400, "unauthorized_client");
        };
        // A principal with no secret refuses every one.
        let secret = self.scenario.principals[index].client_secret.as_deref();
        if secret != Some(field("client_secret")) {
            return aad_error(401, "invalid_client");
        }
        let (token, lifetime) = self.register_token(index, audience);
        Reply::json(
            200,
            json!({
                "token_type": "Bearer",
                "expires_in": lifetime.to_string(),
                "resource": field("resource"),
                "access_token": token,
            }),
        )
    }

    /// The principal `client_id` of `tenant`, by its index.
    pub(crate) fn principal_index(&self, tenant: &str, client_id: &str) -> Option<usize> {
        self.scenario
            .principals
            .iter()
            .position(|p| p.tenant_id == tenant && p.client_id == client_id)
    }

    /// A new token of principal `index` for `audience`, counted; with its
    /// lifetime in seconds. The v1 and v2.0 endpoints share it, so every
    /// API takes their tokens alike.
    pub(crate) fn register_token(&mut self, index: usize, audience: Audience) -> (String, u64) {
        self.tokens_issued += 1;
        let token = format!("sim-{:016x}{:016x}", self.rng.u64(..), self.rng.u64(..));
        let lifetime = self.scenario.token_lifetime_seconds;
        let expires = Instant::now() + Duration::from_secs(lifetime);
        self.tokens
            .insert(token.clone(), (index, expires, audience));
        (token, lifetime)
    }

    /// Who calls, if the token is one this service knows and still valid,
    /// and for which API it was issued.
    fn caller_of(&self, authorization: Option<&str>) -> Option<(Caller, Audience)> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        if let Some(i) = self.scenario.tokens.iter().position(|t| t.token == token) {
            return Some((Caller::Static(i), self.scenario.tokens[i].audience));
        }
        let (index, expires, audience) = self.tokens.get(token)?;
        (Instant::now() < *expires).then_some((Caller::Principal(*index), *audience))
    }

    fn caller(&self, authorization: Option<&str>) -> Option<Caller> {
        self.caller_of(authorization).map(|(caller, _)| caller)
    }

    /// The caller of a request to the API for `audience`: a token issued
    /// for the other API is refused as invalid (401), and counted.
    pub(crate) fn caller_for(
        &mut self,
        authorization: Option<&str>,
        audience: Audience,
    ) -> Result<Caller, Reply> {
        let unauthorized = || {
            Reply::error(
                401,
                "Unauthorized",
                "Missing, invalid or expired bearer token.",
            )
        };
        match self.caller_of(authorization) {
            Some((caller, issued)) if issued == audience => Ok(caller),
            Some(_) => {
                self.wrong_audience += 1;
                Err(unauthorized())
            }
            None => Err(unauthorized()),
        }
    }

    pub(crate) fn may_use(&self, caller: Caller, publisher: &str) -> bool {
        let allowed = match caller {
            Caller::Principal(i) => &self.scenario.principals[i].publishers,
            Caller::Static(i) => &self.scenario.tokens[i].publishers,
        };
        allowed.iter().any(|p| p == publisher)
            || (self.scenario.make_up_unknown_targets && !self.scenario.names_publisher(publisher))
    }

    /// Whether the caller of `authorization` was granted reads only
    /// (`readOnly`): its cancel POSTs are answered 403.
    pub(crate) fn read_only(&self, authorization: Option<&str>) -> bool {
        match self.caller(authorization) {
            Some(Caller::Principal(i)) => self.scenario.principals[i].read_only,
            Some(Caller::Static(i)) => self.scenario.tokens[i].read_only,
            None => false,
        }
    }

    /// Auth, api-version and existence checks shared by the offer calls.
    fn admit(
        &mut self,
        authorization: Option<&str>,
        api_version: Option<&str>,
        publisher: &str,
        offer: &str,
    ) -> Result<(String, String), Reply> {
        let caller = self.caller_for(authorization, Audience::Cpp)?;
        let versions = &self.scenario.api_versions;
        if !api_version.is_some_and(|v| versions.iter().any(|k| k == v)) {
            let message = format!(
                "Invalid api version. Allowed values are [{}]",
                versions.join(", ")
            );
            return Err(Reply::error(400, "InvalidAPIVersion", &message));
        }
        if !self.may_use(caller, publisher) {
            return Err(Reply::error(
                403,
                "Forbidden",
                "The caller has no access to this publisher's namespace.",
            ));
        }
        let key = (publisher.to_string(), offer.to_string());
        if !self.offers.contains_key(&key) {
            let Some(made) = self.made_offer(publisher, offer) else {
                return Err(Reply::error(
                    404,
                    "NotFound",
                    "The publisher or offer does not exist.",
                ));
            };
            self.offers.insert(key.clone(), OfferState::new(made));
        }
        Ok(key)
    }

    /// An offer the scenario does not list, made on first use: never one
    /// its publisher lists as `missing`; else from a template; else, where
    /// unknown targets are made up, [`Offer::made_up`].
    fn made_offer(&self, publisher: &str, offer: &str) -> Option<Offer> {
        if self.scenario.lists_missing(publisher, offer) {
            return None;
        }
        self.template_for(publisher, offer).or_else(|| {
            let unnamed = !self.scenario.names_offer(publisher, offer);
            (self.scenario.make_up_unknown_targets && unnamed).then(|| Offer::made_up(offer))
        })
    }

    /// An offer of an `offerTemplates` entry whose id prefixes `offer`.
    fn template_for(&self, publisher: &str, offer: &str) -> Option<Offer> {
        let p = self
            .scenario
            .publishers
            .iter()
            .find(|p| p.id == publisher)?;
        let t = p
            .offer_templates
            .iter()
            .find(|t| offer.starts_with(&t.id))?;
        Some(Offer {
            id: offer.to_string(),
            ..t.clone()
        })
    }

    fn stats_for(&mut self, key: &(String, String)) -> &mut OfferStats {
        self.stats
            .entry(format!("{}/{}", key.0, key.1))
            .or_default()
    }

    /// `POST .../cancel`.
    pub fn cancel(
        &mut self,
        authorization: Option<&str>,
        api_version: Option<&str>,
        publisher: &str,
        offer: &str,
        body: &[u8],
    ) -> Reply {
        self.count_cancel_post(publisher, offer);
        let key = match self.admit(authorization, api_version, publisher, offer) {
            Ok(key) => key,
            Err(reply) => return reply,
        };
        if self.read_only(authorization) {
            return Reply::error(
                403,
                "Forbidden",
                "The caller may read this offer but not cancel its operations.",
            );
        }
        let emails = match parse_cancel_body(body) {
            Ok(emails) => emails,
            Err(message) => return Reply::error(400, "BadRequest", &message),
        };
        let id = self.next_operation_id();
        let n = self.next_op;
        let Some(state) = self.offers.get_mut(&key) else {
            return Reply::error(404, "NotFound", "The offer does not exist.");
        };
        if let Some(refused) = refusal(state) {
            return refused;
        }
        match state.config.cancel {
            CancelMode::Sync => {
                state.stop_target();
                return Reply::json(200, Value::Null);
            }
            CancelMode::TooLate => {
                state.end_target("succeeded");
                let message = "No operation is in progress on this offer.";
                return Reply::error(404, "NotFound", message);
            }
            CancelMode::Async => {}
        }
        let legacy_id = format!("{}${}${}$preview", key.0, key.1, n);
        state.cancel_op = Some(CancelOperation {
            id: id.clone(),
            legacy_id: legacy_id.clone(),
            started: Instant::now(),
            created: jiff::Timestamp::now(),
            polls: 0,
            notification_emails: emails,
        });
        let config = state.config.clone();
        self.legacy.insert(legacy_id.clone(), key.clone());
        let api = api_version.unwrap_or_default();
        let migrated = format!(
            "/api/publishers/{}/offers/{}/operations/{id}?api-version={api}",
            key.0, key.1
        );
        let legacy = format!("/api/operations/{legacy_id}?api-version={api}");
        with_retry_after(accepted(config.location, migrated, legacy), &config)
    }

    /// Counted whatever the answer: the tests ask how many POSTs arrived.
    fn count_cancel_post(&mut self, publisher: &str, offer: &str) {
        let stats = self.stats_for(&(publisher.to_string(), offer.to_string()));
        stats.cancel_posts += 1;
        stats
            .first_cancel_post_ms
            .get_or_insert_with(|| jiff::Timestamp::now().as_millisecond().max(0) as u64);
    }

    fn next_operation_id(&mut self) -> String {
        self.next_op += 1;
        let r = self.rng.u64(..);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (r >> 32) as u32,
            (r >> 16) as u16,
            self.next_op & 0xfff,
            (r >> 4) & 0xfff,
            self.next_op
        )
    }

    /// `GET .../operations/{id}` (migrated shape).
    pub fn get_operation(
        &mut self,
        authorization: Option<&str>,
        api_version: Option<&str>,
        publisher: &str,
        offer: &str,
        id: &str,
    ) -> Reply {
        let key = match self.admit(authorization, api_version, publisher, offer) {
            Ok(key) => key,
            Err(reply) => return reply,
        };
        self.poll(&key, |op| op.id == id)
    }

    /// `GET /api/operations/{p$o$n$preview}` (non-migrated shape).
    pub fn get_legacy_operation(
        &mut self,
        authorization: Option<&str>,
        api_version: Option<&str>,
        legacy_id: &str,
    ) -> Reply {
        let Some((p, o)) = self.legacy.get(legacy_id).cloned() else {
            // Still check auth first, as the service would.
            if self.caller(authorization).is_none() {
                return Reply::error(
                    401,
                    "Unauthorized",
                    "Missing, invalid or expired bearer token.",
                );
            }
            return Reply::error(404, "NotFound", "The operation does not exist.");
        };
        let key = match self.admit(authorization, api_version, &p, &o) {
            Ok(key) => key,
            Err(reply) => return reply,
        };
        self.poll(&key, |op| op.legacy_id == legacy_id)
    }

    fn poll(
        &mut self,
        key: &(String, String),
        matches: impl Fn(&CancelOperation) -> bool,
    ) -> Reply {
        self.stats_for(key).operation_gets += 1;
        let Some(state) = self.offers.get_mut(key) else {
            return Reply::error(404, "NotFound", "The offer does not exist.");
        };
        if let Some(op) = state.cancel_op.as_mut().filter(|op| matches(op)) {
            op.polls += 1;
        }
        let ended = state.finished.iter().find(|(op, _)| matches(op));
        let body = match (state.cancel_op.as_ref().filter(|op| matches(op)), ended) {
            (Some(op), _) => operation_json(&state.config, op),
            (None, Some((_, body))) => body.clone(),
            (None, None) => {
                return Reply::error(404, "NotFound", "The operation does not exist.");
            }
        };
        if let Some(op) = state.cancel_op.take_if(|_| is_final(&body)) {
            if body["status"] == "completed" {
                state.stop_target();
            }
            state.finished.push((op, body.clone()));
        }
        let body = match state.config.body {
            BodyShape::Object => body,
            BodyShape::Array => json!([body]),
        };
        with_retry_after(Reply::json(200, body), &state.config)
    }

    /// `GET .../submissions/?status=` — the offer's operations.
    pub fn submissions(
        &mut self,
        authorization: Option<&str>,
        api_version: Option<&str>,
        publisher: &str,
        offer: &str,
        status: Option<&str>,
    ) -> Reply {
        let key = match self.admit(authorization, api_version, publisher, offer) {
            Ok(key) => key,
            Err(reply) => return reply,
        };
        self.stats_for(&key).submission_gets += 1;
        let Some(state) = self.offers.get(&key) else {
            return Reply::error(404, "NotFound", "The offer does not exist.");
        };
        // As CPP lists them: the operation being cancelled with its status,
        // and every cancel operation, ended or not.
        let targets = state.earlier.iter().chain(state.target.iter());
        let mut all: Vec<Value> = targets.map(TargetOperation::json).collect();
        all.extend(state.finished.iter().map(|(_, body)| body.clone()));
        all.extend(
            state
                .cancel_op
                .iter()
                .map(|op| operation_json(&state.config, op)),
        );
        let wanted = status.map(fold);
        all.retain(|op| {
            wanted
                .as_deref()
                .is_none_or(|w| op["status"].as_str().map(fold).as_deref() == Some(w))
        });
        Reply::json(200, Value::Array(all))
    }
}

fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

fn aad_error(status: u16, code: &str) -> Reply {
    // Azure AD's descriptions carry trace ids and timestamps; so does ours.
    let description = format!("AADSTS700016: {code}. Trace ID: {:x}", fastrand::u64(..));
    Reply::json(
        status,
        json!({ "error": code, "error_description": description }),
    )
}

fn with_retry_after(reply: Reply, config: &Offer) -> Reply {
    match config.retry_after_seconds {
        Some(s) => reply.with_header("Retry-After", s.to_string()),
        None => reply,
    }
}

/// `{ "metadata": { "notification-emails": "a@b.c,d@e.f" } }`; metadata may be absent.
fn parse_cancel_body(body: &[u8]) -> Result<String, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("Malformed JSON body: {e}"))?;
    let metadata = match value.get("metadata") {
        None | Some(Value::Null) => return Ok(String::new()),
        Some(m) if m.is_object() => m,
        Some(_) => return Err("metadata must be an object".into()),
    };
    match metadata.get("notification-emails") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err("notification-emails must be a comma-separated string".into()),
    }
}

fn operation_status(config: &Offer, op: &CancelOperation) -> &'static str {
    let done = match config.seconds_until_done {
        Some(secs) => op.started.elapsed() >= Duration::from_secs(secs),
        None => op.polls >= config.polls_until_done,
    };
    match (done, config.result, op.polls) {
        (true, CancelResult::Completed, _) => "completed",
        (true, CancelResult::Failed, _) => "failed",
        (false, _, 0 | 1) => "notStarted",
        (false, _, _) => "running",
    }
}

fn operation_json(config: &Offer, op: &CancelOperation) -> Value {
    let status = operation_status(config, op);
    let failed = status == "failed";
    let messages: Vec<Value> = if failed {
        config
            .messages
            .iter()
            .map(|m| json!({ "messageHtml": m, "level": "error", "timestamp": "2026-11-25T00:00:00Z" }))
            .collect()
    } else {
        vec![]
    };
    json!({
        "id": op.id,
        "submissionType": "cancel",
        "status": status,
        "cancellationRequestState": "canCancel",
        "messages": messages,
        "steps": [{
            "id": "1",
            "stepName": "Stop the running operation",
            "status": status,
            "progressPercentage": match status { "notStarted" => 0, "running" => 50, _ => 100 },
            "estimatedTimeFrame": "a few seconds",
        }],
        "error": if failed { json!("The cancel operation failed.") } else { Value::Null },
        "notificationEmails": op.notification_emails,
        "createdDateTime": op.created.to_string(),
    })
}

fn is_final(op: &Value) -> bool {
    matches!(op["status"].as_str(), Some("completed" | "failed"))
}
