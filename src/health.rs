//! `/metrics`, `/healthz` and `/readyz` on the metrics address.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::metrics::Metrics;

/// What the endpoints report.
#[derive(Default)]
pub struct Health {
    pub metrics: Arc<Metrics>,
    /// Set once the controller's caches have synced.
    pub ready: AtomicBool,
}

impl Health {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Health {
            metrics,
            ready: AtomicBool::new(false),
        }
    }
}

pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn metrics(State(h): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
}

async fn readyz(State(h): State<Arc<Health>>) -> impl IntoResponse {
    if h.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

/// Serves until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, health: Arc<Health>) {
    if let Err(e) = axum::serve(listener, router(health)).await {
        tracing::error!(error = %e, "metrics server stopped");
    }
}
