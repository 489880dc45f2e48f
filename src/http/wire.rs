//! What any of the APIs sends back that is not its own: the error body,
//! Retry-After, times, and text bounded before it reaches a message. Any
//! body may be malformed or hostile: nothing here panics.

use serde_json::Value;
use std::time::Duration;

/// Longest text (bytes) taken from an answer into a message.
const MAX_TEXT: usize = 512;
/// Longest Retry-After honoured; a larger one is clamped, not trusted.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A UTC time as CPP writes it: RFC 3339, or without an offset (then UTC).
pub(crate) fn parse_utc(text: &str) -> Option<jiff::Timestamp> {
    text.parse::<jiff::Timestamp>().ok().or_else(|| {
        let civil: jiff::civil::DateTime = text.parse().ok()?;
        civil
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp())
    })
}

/// The error body both APIs document: `{ "error": { "code": ..., "message": ... } }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
}

impl ErrorBody {
    /// Reads the documented shape, and a bare `{code, message}` too.
    pub fn parse(body: &[u8]) -> Option<ErrorBody> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let inner = value.get("error").unwrap_or(&value);
        let text = |k: &str| inner.get(k).and_then(Value::as_str).map(bounded);
        let parsed = ErrorBody {
            code: text("code"),
            message: text("message"),
        };
        (parsed.code.is_some() || parsed.message.is_some()).then_some(parsed)
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => write!(f, "{c}: {m}"),
            (Some(c), None) => f.write_str(c),
            (None, Some(m)) => f.write_str(m),
            (None, None) => f.write_str("no details"),
        }
    }
}

/// `Retry-After` as seconds or an HTTP date, clamped to [`MAX_RETRY_AFTER`].
pub(crate) fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
        let ahead = at.duration_since(now);
        Duration::try_from(ahead).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(bounded(s)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `messageHtml` is HTML: drop the tags so status holds words.
pub(crate) fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len().min(MAX_TEXT));
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(if c.is_control() { ' ' } else { c }),
            _ => {}
        }
    }
    bounded(out.trim())
}

/// Text from an answer as a message may carry it: at most [`MAX_TEXT`] bytes.
pub(crate) fn bounded(text: &str) -> String {
    crate::text::clip(text, MAX_TEXT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_reads_documented_shape() {
        let body = br#"{"error":{"code":"InvalidAPIVersion","message":"Invalid api version."}}"#;
        let e = ErrorBody::parse(body).unwrap();
        assert_eq!(e.to_string(), "InvalidAPIVersion: Invalid api version.");
        assert_eq!(ErrorBody::parse(b"<html>"), None);
        assert_eq!(ErrorBody::parse(b"{}"), None);
    }

    #[test]
    fn retry_after_as_seconds_or_date_and_clamped() {
        let now: jiff::Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 10:00:42 GMT", now),
            Some(Duration::from_secs(42))
        );
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn answer_text_is_bounded_in_bytes() {
        let long = "é".repeat(MAX_TEXT);
        let cut = bounded(&long);
        assert!(cut.ends_with("..."));
        assert!(cut.len() <= MAX_TEXT, "{}", cut.len());
    }
}
