//! What a cancelled configure job had already applied: a cancel stops
//! only the resources not yet processed, and status says which stayed
//! applied, read once from the job's detail.

use crate::Plane;
use crate::support::{self, Fixture};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A job that had processed two of its four resources when its cancel
/// stopped it: status lists those two (ids and states), the message says
/// the cancel left them applied, and the detail was read once.
pub async fn a_cancelled_job_says_what_it_had_already_applied(plane: Plane) {
    let fx = Fixture::new(&plane, "detail").await;
    let operator = fx.operator(&plane, &[]);
    let job = "jobpart-5d1c0e2a-aaaa-4bbb-8ccc-000000000001";
    fx.create_all(&[job.to_string()], 1).await;
    let started = Instant::now();
    let status = loop {
        let r = fx.api.get(job).await.expect("read resource");
        let status = serde_json::to_value(&r.status).expect("status");
        if status["processedResources"]["readAt"].is_string() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job's detail was never recorded: {status}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(status["phase"], "Cancelled", "{status}");
    let listed: Vec<(String, String)> = status["processedResources"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (text("id"), text("state"))
        })
        .collect();
    assert_eq!(
        listed,
        [
            (format!("product/{job}-0"), "succeeded".to_string()),
            (format!("plan/{job}-1"), "succeeded".to_string()),
        ],
        "{status}"
    );
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("it had already processed 2 resource(s), which the cancel left applied"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = fx.stats().await;
    let counts: &Value = support::target_stats(&stats, job);
    assert_eq!(counts["cancelPosts"], 1, "{counts}");
    assert_eq!(counts["detailGets"], 1, "read once: {counts}");
    operator.sigkill();
    fx.cleanup().await;
}
