//! The checks the operator applies to a spec before it trusts it: the
//! schema does the same on the API server, but the one-shot CLI reads YAML
//! that no server has seen. Each check names the schema rule it repeats;
//! `mod.rs`'s tests hold the two to the same constants.

use super::types::*;

/// Same rule as the schema's pattern: segments of letters, digits, `-`, `_`
/// joined by single dots, so no `/`, `$`, `..`, whitespace or dot-segments.
fn check_id(field: &'static str, value: &str) -> Result<(), SpecError> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(invalid(
            field,
            format!("must be 1 to {MAX_ID_LEN} characters"),
        ));
    }
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !value.split('.').all(segment_ok) {
        return Err(invalid(
            field,
            "only letters, digits, '-', '_' and single inner dots are allowed",
        ));
    }
    Ok(())
}

fn check_operation_id(id: &str) -> Result<(), SpecError> {
    let first_ok = id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'$' | b'-');
    if id.len() > MAX_ID_LEN || !first_ok || !id.bytes().all(ok) {
        return Err(invalid(
            "operationId",
            "must be an operation id as the operations list shows it (letters, digits, . _ $ -)",
        ));
    }
    Ok(())
}

fn check_job_id(id: &str) -> Result<(), SpecError> {
    let first_ok = id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
    if id.len() > MAX_JOB_ID_LEN || !first_ok || !id.bytes().all(ok) {
        return Err(invalid(
            "productIngestion.jobId",
            format!("must be a job id (letters, digits, '-'), at most {MAX_JOB_ID_LEN}"),
        ));
    }
    Ok(())
}

fn check_api_version(field: &'static str, version: &str) -> Result<(), SpecError> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    if version.is_empty() || version.len() > 32 || !version.bytes().all(ok) {
        return Err(invalid(field, "must look like 2017-10-31"));
    }
    Ok(())
}

fn check_email(value: &str) -> Result<(), SpecError> {
    let bad_char = |c: char| c.is_whitespace() || ",;<>\"".contains(c);
    let shape_ok = match value.split_once('@') {
        Some((local, domain)) => !local.is_empty() && domain.contains('.') && !domain.contains('@'),
        None => false,
    };
    if value.len() > MAX_EMAIL_LEN || value.chars().any(bad_char) || !shape_ok {
        return Err(invalid(
            "notificationEmails",
            format!("{value:?} is not an email address"),
        ));
    }
    Ok(())
}

impl OfferCancellationSpec {
    /// Checks what the schema checks, for specs that never met an API server.
    pub fn validate(&self) -> Result<(), SpecError> {
        match self.target()? {
            Target::Offer {
                publisher_id,
                offer_id,
                api_version,
            } => {
                check_id("publisherId", publisher_id)?;
                check_id("offerId", offer_id)?;
                check_api_version("apiVersion", api_version)?;
            }
            Target::Job {
                job_id,
                api_version,
            } => {
                check_job_id(job_id)?;
                check_api_version("productIngestion.apiVersion", api_version)?;
            }
        }
        self.validate_options()
    }

    /// What the schema checks besides the target.
    fn validate_options(&self) -> Result<(), SpecError> {
        if self.notification_emails.len() > MAX_EMAILS {
            return Err(invalid(
                "notificationEmails",
                format!("at most {MAX_EMAILS} addresses"),
            ));
        }
        self.notification_emails
            .iter()
            .try_for_each(|e| check_email(e))?;
        if !is_dns_subdomain(&self.credentials_secret_ref.name) {
            return Err(invalid(
                "credentialsSecretRef.name",
                "must be a Secret name: lower-case letters, digits, '-' and '.', at most 253",
            ));
        }
        if self.poll_interval_seconds() < MIN_POLL_INTERVAL_SECONDS {
            return Err(invalid("pollIntervalSeconds", "must be at least 5"));
        }
        if self
            .timeout_seconds
            .is_some_and(|t| t == 0 || t > MAX_TIMEOUT_SECONDS)
        {
            return Err(invalid(
                "timeoutSeconds",
                format!("must be 1 to {MAX_TIMEOUT_SECONDS}"),
            ));
        }
        if let Some(id) = &self.operation_id {
            check_operation_id(id)?;
        }
        Ok(())
    }
}

/// The schema's SECRET_NAME_PATTERN: so a name can never become a path
/// such as `../../kube-system/secrets/x` in a request.
fn is_dns_subdomain(name: &str) -> bool {
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    };
    name.len() <= 253 && name.split('.').all(label_ok)
}
