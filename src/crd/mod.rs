//! The `OfferCancellation` custom resource.
//!
//! - `types.rs`: spec, status, target, phase, and the limits and rules the
//!   generated schema carries.
//! - `validation.rs`: the checks that repeat the schema, for specs no API
//!   server has seen (the CLI's files).
//! - `schema.rs`: the CRD as YAML, generated from the types.
//!
//! This room knows nothing of the APIs, the decision or Kubernetes clients:
//! everything else reads its words.

mod schema;
mod types;
mod validation;

pub use schema::crd_yaml;
pub(crate) use schema::quote_date_like_scalars;
pub use types::*;

#[cfg(test)]
mod tests {
    use super::schema::crd_yaml;
    use super::types::*;
    use kube::CustomResourceExt;

    fn spec() -> OfferCancellationSpec {
        serde_yaml::from_str(
            "publisherId: contoso\nofferId: contoso-offer\ncredentialsSecretRef: {name: cpp}\n",
        )
        .unwrap()
    }

    #[test]
    fn defaults_fill_api_version_and_poll_interval() {
        let s = spec();
        assert_eq!(s.api_version, "2017-10-31");
        assert_eq!(s.poll_interval_seconds(), 30);
        assert_eq!(s.timeout_seconds, None);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn ids_reject_path_tricks() {
        for bad in [
            "", "a/b", "a$b", "..", "a..b", ".a", "a.", "a b", "ä", "a%2F",
        ] {
            let mut s = spec();
            s.offer_id = Some(bad.to_string());
            assert!(s.validate().is_err(), "{bad:?} should be refused");
        }
        let mut s = spec();
        s.offer_id = Some("x".repeat(129));
        assert!(s.validate().is_err());
        s.offer_id = Some("contoso.offer_v2-preview".into());
        assert!(s.validate().is_ok());
    }

    #[test]
    fn emails_are_checked_and_comma_joined() {
        let mut s = spec();
        s.notification_emails = vec!["jondoe@contoso.com".into(), "ops@contoso.com".into()];
        assert!(s.validate().is_ok());
        assert_eq!(
            s.notification_emails_joined(),
            "jondoe@contoso.com,ops@contoso.com"
        );
        for bad in ["nobody", "a,b@c.d", "a@b", "a b@c.d", "@c.d"] {
            s.notification_emails = vec![bad.into()];
            assert!(s.validate().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn secret_names_are_dns_subdomains_never_paths() {
        for bad in [
            "../../kube-system/secrets/admin-token",
            "a/b",
            "A",
            "-a",
            "a-",
            "a..b",
            "",
            &"a".repeat(254),
        ] {
            let mut s = spec();
            s.credentials_secret_ref.name = bad.to_string();
            assert!(s.validate().is_err(), "{bad:?} should be refused");
        }
        let mut s = spec();
        s.credentials_secret_ref.name = "cpp-credentials.v2".into();
        assert!(s.validate().is_ok());
    }

    #[test]
    fn timeout_is_bounded_in_code_and_schema() {
        let mut s = spec();
        s.timeout_seconds = Some(MAX_TIMEOUT_SECONDS + 1);
        assert!(s.validate().is_err());
        let crd = serde_json::to_value(OfferCancellation::crd()).unwrap();
        let props = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
        let number = |v: &serde_json::Value| v.as_f64().unwrap_or(-1.0);
        let timeout = &props["spec"]["properties"]["timeoutSeconds"];
        assert_eq!(number(&timeout["maximum"]), f64::from(MAX_TIMEOUT_SECONDS));
        assert_eq!(
            props["spec"]["properties"]["credentialsSecretRef"]["properties"]["name"]["pattern"],
            SECRET_NAME_PATTERN
        );
        let status = &props["status"]["properties"];
        assert_eq!(number(&status["attempts"]["maximum"]), f64::from(u32::MAX));
        assert_eq!(status["operationLocation"]["maxLength"], MAX_LOCATION_LEN);
        assert_eq!(status["message"]["maxLength"], MAX_MESSAGE_LEN);
        assert_eq!(status["retryRequest"]["maxLength"], MAX_RETRY_REQUEST_LEN);
    }

    #[test]
    fn long_retry_values_become_a_stable_digest_that_fits() {
        let long = "x".repeat(10_000);
        let token = retry_request_token(&long);
        assert!(token.len() <= MAX_RETRY_REQUEST_LEN);
        assert_eq!(token, retry_request_token(&long));
        assert_ne!(token, retry_request_token(&"y".repeat(10_000)));
        assert_eq!(retry_request_token("2026-11-25"), "2026-11-25");
    }

    #[test]
    fn a_job_is_never_polled_more_than_once_a_minute() {
        let mut s = spec();
        s.publisher_id = None;
        s.offer_id = None;
        s.product_ingestion = Some(ProductIngestion {
            job_id: "9f1c".into(),
            api_version: DEFAULT_JOB_API_VERSION.into(),
        });
        s.poll_interval_seconds = Some(5);
        assert_eq!(s.poll_interval_seconds(), 60);
        let crd = serde_json::to_string(&OfferCancellation::crd()).unwrap();
        assert!(crd.contains(JOB_POLL_RULE), "the schema refuses it");
    }

    #[test]
    fn poll_interval_below_five_is_refused() {
        let mut s = spec();
        s.poll_interval_seconds = Some(4);
        assert!(s.validate().is_err());
    }

    #[test]
    fn schema_patterns_match_the_code_constants() {
        // The schema is generated from these constants; this pins the result.
        let crd = serde_json::to_value(OfferCancellation::crd()).unwrap();
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(spec["publisherId"]["pattern"], ID_PATTERN);
        assert_eq!(spec["offerId"]["pattern"], ID_PATTERN);
        assert_eq!(
            spec["notificationEmails"]["items"]["pattern"],
            EMAIL_PATTERN
        );
        assert_eq!(
            spec["offerId"]["x-kubernetes-validations"][0]["rule"],
            "self == oldSelf"
        );
        assert_eq!(spec["operationId"]["pattern"], OPERATION_ID_PATTERN);
        assert_eq!(spec["notAfter"]["format"], "date-time");
    }

    #[test]
    fn operation_ids_are_plain_tokens() {
        let mut s = spec();
        for ok in [
            "7f3c2a1e-0000-4000-8000-000000000001",
            "contoso$offer$2$preview",
        ] {
            s.operation_id = Some(ok.into());
            assert_eq!(s.validate(), Ok(()), "{ok}");
        }
        for bad in ["", "../x", "a b", "-lead"] {
            s.operation_id = Some(bad.into());
            assert!(s.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn block_scalars_are_text_and_never_quoted() {
        let yaml = "message: |-\n  failed\n  at: 2024-01-01\nnotAfter: 2024-01-02\n";
        let quoted = super::schema::quote_date_like_scalars(yaml);
        assert_eq!(
            quoted,
            "message: |-\n  failed\n  at: 2024-01-01\nnotAfter: '2024-01-02'\n"
        );
    }

    #[test]
    fn crd_yaml_quotes_the_default_api_version() {
        let yaml = crd_yaml().unwrap();
        assert!(yaml.contains("default: '2017-10-31'"), "{yaml}");
        let back: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(back["spec"]["names"]["shortNames"][0], "ocancel");
    }

    fn job_spec() -> OfferCancellationSpec {
        serde_yaml::from_str(
            "productIngestion: {jobId: 9f1c0e2a-1b2c-4d5e-8f90-123456789abc}\ncredentialsSecretRef: {name: pc}\n",
        )
        .unwrap()
    }

    #[test]
    fn a_job_target_takes_its_own_defaults() {
        let s = job_spec();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.poll_interval_seconds(), 60);
        let Ok(Target::Job { api_version, .. }) = s.target() else {
            panic!("a job: {:?}", s.target());
        };
        assert_eq!(api_version, "2022-03-01-preview2");
        assert_eq!(
            s.target().unwrap().to_string(),
            "job 9f1c0e2a-1b2c-4d5e-8f90-123456789abc"
        );
        assert_eq!(
            spec().target().unwrap().to_string(),
            "contoso/contoso-offer"
        );
    }

    #[test]
    fn exactly_one_target_is_named_in_code_and_schema() {
        let mut both = job_spec();
        both.publisher_id = Some("contoso".into());
        both.offer_id = Some("offer".into());
        assert!(both.validate().is_err(), "both targets");
        let mut half = spec();
        half.offer_id = None;
        assert!(half.validate().is_err(), "a publisher without an offer");
        let mut job_with_operation = job_spec();
        job_with_operation.operation_id = Some("abc".into());
        assert!(job_with_operation.validate().is_err());
        for bad in ["", "../x", "a/b", "-x", &"a".repeat(65)] {
            let mut s = job_spec();
            s.product_ingestion.as_mut().unwrap().job_id = bad.into();
            assert!(s.validate().is_err(), "{bad:?}");
        }
        let crd = serde_json::to_value(OfferCancellation::crd()).unwrap();
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["x-kubernetes-validations"][0]["rule"], ONE_TARGET_RULE);
        let required = spec["required"].as_array().cloned().unwrap_or_default();
        assert!(!required.contains(&"publisherId".into()), "{required:?}");
        let job = &spec["properties"]["productIngestion"]["properties"]["jobId"];
        assert_eq!(job["pattern"], JOB_ID_PATTERN);
        assert!(spec["properties"]["pollIntervalSeconds"]["default"].is_null());
    }

    #[test]
    fn one_key_per_target_whatever_the_case_of_a_job_id() {
        let mut upper = job_spec();
        let job = upper.product_ingestion.as_mut().unwrap();
        job.job_id = job.job_id.to_uppercase();
        assert_eq!(
            upper.target().unwrap().key(),
            job_spec().target().unwrap().key()
        );
        assert_ne!(
            spec().target().unwrap().key(),
            job_spec().target().unwrap().key()
        );
    }
}
