//! `/metrics`, `/healthz` and `/readyz` on the metrics address. Served by
//! hyper itself (already in the build through kube and reqwest), so the
//! operator carries no web framework.
//!
//! It may not change what it serves: the probes' state and the metrics are
//! set elsewhere.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::metrics::Metrics;

/// What the probe and metrics endpoints report.
#[derive(Default)]
pub struct Probes {
    pub metrics: Arc<Metrics>,
    /// Set once the controller's caches have synced.
    pub ready: AtomicBool,
}

impl Probes {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Probes {
            metrics,
            ready: AtomicBool::new(false),
        }
    }

    /// The answer to one request; only GET is served.
    fn answer(&self, method: &hyper::Method, path: &str) -> (StatusCode, &'static str, String) {
        const TEXT: &str = "text/plain; charset=utf-8";
        if method != hyper::Method::GET {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                "method not allowed".into(),
            );
        }
        match path {
            "/metrics" => (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.metrics.encode(),
            ),
            "/healthz" => (StatusCode::OK, TEXT, "ok".into()),
            "/readyz" if self.ready.load(Ordering::Relaxed) => {
                (StatusCode::OK, TEXT, "ready".into())
            }
            "/readyz" => (
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                "caches not synced".into(),
            ),
            _ => (StatusCode::NOT_FOUND, TEXT, "not found".into()),
        }
    }
}

fn respond(probes: &Probes, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = probes.answer(request.method(), request.uri().path());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// Serves until the process ends; one task per connection.
pub async fn serve(listener: tokio::net::TcpListener, probes: Arc<Probes>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics server: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let probes = probes.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&probes, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "metrics server: connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readyz_follows_the_flag_and_only_get_is_served() {
        let probes = Probes::default();
        let get = hyper::Method::GET;
        assert_eq!(
            probes.answer(&get, "/readyz").0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        probes.ready.store(true, Ordering::Relaxed);
        assert_eq!(probes.answer(&get, "/readyz").0, StatusCode::OK);
        assert_eq!(probes.answer(&get, "/healthz").2, "ok");
        assert_eq!(probes.answer(&get, "/nope").0, StatusCode::NOT_FOUND);
        let post = hyper::Method::POST;
        assert_eq!(
            probes.answer(&post, "/metrics").0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
