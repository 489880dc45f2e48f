//! What CPP sends back, read leniently: the documents disagree with
//! themselves (object or array, `completed` or `complete`), and any body may be
//! malformed or hostile, so nothing here panics and every text is bounded.

use serde::Deserialize;
use serde_json::Value;

use crate::http::wire::{ErrorBody, bounded, parse_utc, plain_text, scalar_text};
use crate::operation::{Operation, OperationState};

/// The first step not yet complete, as `name 40% (about 5 minutes)`:
/// `stepName`, `progressPercentage` and `estimatedTimeFrame` as CPP gives
/// them (each optional; odd types are skipped).
fn step_progress(steps: &Value) -> Option<String> {
    let current = steps.as_array()?.iter().find(|step| {
        let status = step.get("status").and_then(Value::as_str).unwrap_or("");
        OperationState::of(status) == OperationState::InProgress
    })?;
    let name = current.get("stepName").and_then(scalar_text);
    let percent = current
        .get("progressPercentage")
        .and_then(Value::as_f64)
        .filter(|p| (0.0..=100.0).contains(p));
    let status = current.get("status").and_then(scalar_text);
    let eta = current.get("estimatedTimeFrame").and_then(scalar_text);
    // Only what CPP says, each part as CPP wrote it.
    let mut parts = vec![name.unwrap_or_else(|| "step".into())];
    parts.extend(status);
    parts.extend(percent.map(|p| format!("{p:.0}%")));
    parts.extend(eta.map(|eta| format!("estimated {eta}")));
    Some(bounded(&parts.join(" · ")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOperation {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    submission_type: Option<Value>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    messages: Option<Value>,
    #[serde(default)]
    created_date_time: Option<Value>,
    #[serde(default)]
    steps: Option<Value>,
}

/// An operation body: an object, or an array whose first element is the
/// operation.
pub(crate) fn parse_operation(body: &[u8]) -> Result<Operation, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("operation body is not JSON: {e}"))?;
    let object = match value {
        Value::Array(items) => items
            .into_iter()
            .next()
            .ok_or("operation body is an empty array")?,
        other => other,
    };
    operation_from_value(object)
}

fn operation_from_value(value: Value) -> Result<Operation, String> {
    if !value.is_object() {
        return Err("operation body is not an object".into());
    }
    let raw: RawOperation =
        serde_json::from_value(value).map_err(|e| format!("operation body: {e}"))?;
    let status = raw
        .status
        .as_ref()
        .and_then(Value::as_str)
        .map(bounded)
        .ok_or("operation body has no status")?;
    let mut detail: Vec<String> = raw
        .error
        .as_ref()
        .and_then(error_text)
        .into_iter()
        .collect();
    detail.extend(raw.messages.as_ref().map(message_texts).unwrap_or_default());
    Ok(Operation {
        id: raw.id.as_ref().and_then(scalar_text),
        kind: raw.submission_type.as_ref().and_then(scalar_text),
        status,
        detail: bounded(&detail.join("; ")),
        created: raw
            .created_date_time
            .as_ref()
            .and_then(Value::as_str)
            .and_then(parse_utc),
        progress: raw.steps.as_ref().and_then(step_progress),
    })
}

/// The submissions list: an array, or an object holding one under `value`.
pub(crate) fn parse_operation_list(body: &[u8]) -> Result<Vec<Operation>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("submissions body is not JSON: {e}"))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut map) => match map.remove("value") {
            Some(Value::Array(items)) => items,
            _ => vec![Value::Object(map)],
        },
        _ => return Err("submissions body is neither a list nor an object".into()),
    };
    // One odd entry must not hide the others.
    Ok(items
        .into_iter()
        .filter_map(|v| operation_from_value(v).ok())
        .collect())
}

/// A location given in the body: a JSON string, or a field named
/// `location` or `operationLocation` in any case.
pub(crate) fn location_from_body(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let found = match &value {
        Value::String(s) => Some(s.as_str()),
        Value::Object(map) => map
            .iter()
            .find(|(k, _)| {
                k.eq_ignore_ascii_case("location") || k.eq_ignore_ascii_case("operationLocation")
            })
            .and_then(|(_, v)| v.as_str()),
        _ => None,
    };
    found
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

fn error_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(plain_text(s)),
        Value::Object(_) => ErrorBody::parse(v.to_string().as_bytes()).map(|e| e.to_string()),
        other => Some(bounded(&other.to_string())),
    }
}

fn message_texts(v: &Value) -> Vec<String> {
    let Some(items) = v.as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|m| m.get("messageHtml").and_then(Value::as_str))
        .map(plain_text)
        .filter(|m| !m.is_empty())
        .take(5)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_under_way_is_shown_with_its_percentage() {
        let body = br#"{"status":"running","steps":[
            {"stepName":"Validate","status":"complete","progressPercentage":100},
            {"stepName":"Deployment","status":"running","progressPercentage":40,"estimatedTimeFrame":"5 minutes"},
            {"stepName":"Publish","status":"notStarted"}]}"#;
        let op = parse_operation(body).unwrap();
        assert_eq!(
            op.progress.as_deref(),
            Some("Deployment · running · 40% · estimated 5 minutes")
        );
        let odd =
            br#"{"status":"running","steps":[{"status":"running","progressPercentage":"lots"}]}"#;
        assert_eq!(
            parse_operation(odd).unwrap().progress.as_deref(),
            Some("step · running")
        );
        let none = br#"{"status":"running","steps":"nope"}"#;
        assert_eq!(parse_operation(none).unwrap().progress, None);
    }

    #[test]
    fn created_time_reads_with_or_without_offset() {
        let list = br#"[{"status":"running","createdDateTime":"2026-11-25T10:00:00Z"},
            {"status":"running","createdDateTime":"2026-11-25T10:00:00.123"},
            {"status":"running","createdDateTime":"yesterday"}]"#;
        let ops = parse_operation_list(list).unwrap();
        let want: jiff::Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        assert_eq!(ops[0].created, Some(want));
        assert!(ops[1].created.is_some_and(|t| t > want));
        assert_eq!(ops[2].created, None);
    }

    #[test]
    fn operation_reads_object_and_array_forms() {
        let object = br#"{"id":"1","submissionType":"cancel","status":"running"}"#;
        let array = br#"[{"id":"1","submissionType":"cancel","status":"running"}]"#;
        assert_eq!(
            parse_operation(object).unwrap(),
            parse_operation(array).unwrap()
        );
        assert!(parse_operation(b"[]").is_err());
        assert!(parse_operation(b"42").is_err());
        assert!(parse_operation(b"{\"id\":1}").is_err(), "no status");
        assert!(parse_operation(b"not json").is_err());
    }

    #[test]
    fn failure_detail_joins_error_and_messages_without_html() {
        let body = br#"{"status":"failed","error":"Cancel failed",
            "messages":[{"messageHtml":"<b>Step</b> blocked","level":"error"},{"level":"x"}]}"#;
        let op = parse_operation(body).unwrap();
        assert_eq!(op.state(), OperationState::Failed);
        assert_eq!(op.detail, "Cancel failed; Step blocked");
    }

    #[test]
    fn location_in_body_as_string_or_field_any_case() {
        assert_eq!(
            location_from_body(br#""/api/x""#).as_deref(),
            Some("/api/x")
        );
        assert_eq!(
            location_from_body(br#"{"Location":"/a"}"#).as_deref(),
            Some("/a")
        );
        assert_eq!(
            location_from_body(br#"{"OPERATIONLOCATION":"/b"}"#).as_deref(),
            Some("/b")
        );
        assert_eq!(location_from_body(br#"{"other":"/c"}"#), None);
        assert_eq!(location_from_body(br#"{"location":""}"#), None);
        assert_eq!(location_from_body(b""), None);
    }

    #[test]
    fn list_accepts_array_or_value_wrapper_and_skips_odd_entries() {
        let body = br#"{"value":[{"id":"a","status":"running","submissionType":"cancel"},7]}"#;
        let ops = parse_operation_list(body).unwrap();
        assert_eq!(ops.len(), 1);
        assert!(ops[0].is_cancel());
        assert!(parse_operation_list(b"[]").unwrap().is_empty());
        assert!(parse_operation_list(b"true").is_err());
    }
}
