//! The two API clients, built once on one shared transport: one HTTP
//! client, one rate limit and one token cache serve both, so the limit
//! counts every request and a token is cached per audience.
//!
//! It may not decide anything, nor read a resource: it only builds the
//! clients.

use std::sync::Arc;
use std::time::Duration;

use crate::cpp::CppClient;
use crate::http::{ClientConfig, RequestObserver, ServiceAccountTokens, Transport};
use crate::ingestion::JobClient;

/// CPP's client and Product Ingestion's, side by side.
pub struct Apis {
    pub cpp: CppClient,
    pub jobs: JobClient,
    transport: Arc<Transport>,
}

impl Apis {
    /// Clients whose requests `observer` hears of. Workload identity
    /// needs [`Apis::with_service_accounts`].
    pub fn new(
        config: ClientConfig,
        observer: Arc<dyn RequestObserver>,
    ) -> Result<Self, reqwest::Error> {
        Self::build(config, observer, None)
    }

    /// As [`Apis::new`], with `service_accounts` issuing the ServiceAccount
    /// tokens workload identity exchanges.
    pub fn with_service_accounts(
        config: ClientConfig,
        observer: Arc<dyn RequestObserver>,
        service_accounts: Arc<dyn ServiceAccountTokens>,
    ) -> Result<Self, reqwest::Error> {
        Self::build(config, observer, Some(service_accounts))
    }

    fn build(
        config: ClientConfig,
        observer: Arc<dyn RequestObserver>,
        service_accounts: Option<Arc<dyn ServiceAccountTokens>>,
    ) -> Result<Self, reqwest::Error> {
        let transport = Arc::new(Transport::new(&config, observer, service_accounts)?);
        Ok(Apis {
            cpp: CppClient::new(transport.clone(), config.endpoint),
            jobs: JobClient::new(transport.clone(), config.product_ingestion_endpoint),
            transport,
        })
    }

    /// How long a cancel POST may take in all (rate limit, token, request).
    pub fn post_budget(&self) -> Duration {
        self.transport.post_budget()
    }
}
