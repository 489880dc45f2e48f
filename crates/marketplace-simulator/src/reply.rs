//! An answer of the simulator, before it becomes HTTP.

use serde_json::{Value, json};

/// An answer, before it becomes HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

impl Reply {
    pub(crate) fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: vec![],
            body,
        }
    }

    /// CPP's documented error shape.
    pub fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::json(
            status,
            json!({ "error": { "code": code, "message": message } }),
        )
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}
