//! Helpers shared by the HTTP tests.

pub mod keys;
pub mod tls;
