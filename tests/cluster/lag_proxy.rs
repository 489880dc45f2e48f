//! A proxy in front of the API server that delivers watch events late, as
//! a loaded API server's watch cache does: every request is forwarded, and
//! each chunk of a watch answer is held back by a fixed delay (in order, so
//! the delay does not add up). Everything else passes at once, so the
//! operator's own writes are visible to a GET before its watch shows them.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

struct Upstream {
    url: String,
    client: reqwest::Client,
    delay: Duration,
}

/// Serves on loopback; returns its `http://` URL.
pub async fn start(upstream: &str, delay: Duration) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("proxy client");
    let state = Arc::new(Upstream {
        url: upstream.trim_end_matches('/').to_string(),
        client,
        delay,
    });
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let addr = listener.local_addr().expect("proxy addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn is_watch(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

async fn forward(State(up): State<Arc<Upstream>>, req: Request) -> Response {
    let watch = is_watch(req.uri().query());
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let url = format!("{}{path}", up.url);
    let method = req.method().clone();
    let mut headers = req.headers().clone();
    headers.remove("host");
    let Ok(body) = axum::body::to_bytes(req.into_body(), 64 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let sent = up
        .client
        .request(method, url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let mut answer = match sent {
        Ok(a) => a,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != HeaderName::from_static("content-length") && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    let delay = if watch { up.delay } else { Duration::ZERO };
    let (tx, rx) = futures::channel::mpsc::unbounded::<(Instant, Bytes)>();
    tokio::spawn(async move {
        while let Ok(Some(chunk)) = answer.chunk().await {
            if tx.unbounded_send((Instant::now() + delay, chunk)).is_err() {
                return;
            }
        }
    });
    let delayed = rx.then(|(due, chunk)| async move {
        tokio::time::sleep_until(due).await;
        Ok::<Bytes, std::io::Error>(chunk)
    });
    response
        .body(Body::from_stream(delayed))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
