//! Turning a `Location` an API returns into a URL the bearer token may go to.

use reqwest::Url;

use crate::crd::MAX_LOCATION_LEN;

/// Longest host name quoted back in an error.
const MAX_HOST_SHOWN: usize = 64;

/// Why a location cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    #[error("operation location is empty")]
    Empty,
    #[error("operation location is not a usable URL or path")]
    Malformed,
    #[error(
        "operation location points at host {host:?}, not the configured endpoint; refusing to send the token there"
    )]
    ForeignHost { host: String },
    #[error("operation location is {len} bytes long (at most {MAX_LOCATION_LEN}); host {host:?}")]
    TooLong { len: usize, host: String },
    #[error("operation location carries user credentials; refusing to follow it")]
    UserInfo,
    #[error("operation location carries a fragment; refusing to follow it")]
    Fragment,
}

/// A host name as an error may quote it: at most 64 bytes.
fn shown_host(host: &str) -> String {
    crate::text::clip(host, MAX_HOST_SHOWN)
}

/// Resolves a location against the configured endpoint.
///
/// A path (`/api/...`) is taken relative to the service root, which is the
/// endpoint including any path prefix it has. The path and query are kept
/// byte for byte, so the non-migrated shape's `$` is sent as CPP wrote it.
/// An absolute URL is accepted only for the endpoint's own scheme, host and
/// port: the token never leaves for another host.
pub(crate) fn resolve_location(endpoint: &Url, location: &str) -> Result<Url, LocationError> {
    let location = location.trim();
    if location.is_empty() {
        return Err(LocationError::Empty);
    }
    if location.len() > MAX_LOCATION_LEN {
        let host = Url::parse(location)
            .ok()
            .and_then(|u| u.host_str().map(shown_host))
            .unwrap_or_default();
        return Err(LocationError::TooLong {
            len: location.len(),
            host,
        });
    }
    if location
        .chars()
        .any(|c| c.is_control() || c == ' ' || c == '\\')
    {
        return Err(LocationError::Malformed);
    }
    if location.starts_with("//") || has_scheme(location) {
        return absolute_on_endpoint(endpoint, location);
    }
    let root = endpoint.as_str().trim_end_matches('/');
    let path = location.trim_start_matches('/');
    let url = Url::parse(&format!("{root}/{path}")).map_err(|_| LocationError::Malformed)?;
    same_origin(endpoint, url)
}

fn has_scheme(location: &str) -> bool {
    match location.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !scheme.contains('/')
        }
        None => false,
    }
}

fn absolute_on_endpoint(endpoint: &Url, location: &str) -> Result<Url, LocationError> {
    let url = endpoint
        .join(location)
        .map_err(|_| LocationError::Malformed)?;
    same_origin(endpoint, url)
}

fn same_origin(endpoint: &Url, url: Url) -> Result<Url, LocationError> {
    if url.origin() != endpoint.origin() {
        return Err(LocationError::ForeignHost {
            host: shown_host(url.host_str().unwrap_or("")),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(LocationError::UserInfo);
    }
    if url.fragment().is_some() {
        return Err(LocationError::Fragment);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Url {
        Url::parse("https://cloudpartner.azure.com").unwrap()
    }

    #[test]
    fn migrated_shape_resolves_against_endpoint() {
        let loc = "/api/publishers/contoso/offers/contoso-offer/operations/56615b67-2185-49fe-80d2-c4ddf77bb2e8?api-version=2017-10-31";
        let url = resolve_location(&endpoint(), loc).unwrap();
        assert_eq!(url.as_str(), format!("https://cloudpartner.azure.com{loc}"));
    }

    #[test]
    fn non_migrated_shape_keeps_dollar_signs() {
        let loc = "/api/operations/contoso$contoso-offer$2$preview?api-version=2017-10-31";
        let url = resolve_location(&endpoint(), loc).unwrap();
        assert_eq!(
            url.path(),
            "/api/operations/contoso$contoso-offer$2$preview"
        );
        assert_eq!(url.query(), Some("api-version=2017-10-31"));
    }

    #[test]
    fn endpoint_path_prefix_is_the_service_root() {
        let ep = Url::parse("http://127.0.0.1:8089/cpp/").unwrap();
        let url = resolve_location(&ep, "/api/operations/a$b").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8089/cpp/api/operations/a$b");
    }

    #[test]
    fn absolute_location_on_same_host_is_followed() {
        let url = resolve_location(
            &endpoint(),
            "https://cloudpartner.azure.com/api/operations/x",
        )
        .unwrap();
        assert_eq!(url.path(), "/api/operations/x");
    }

    #[test]
    fn foreign_hosts_are_refused() {
        for loc in [
            "https://evil.example/api/operations/x",
            "//evil.example/api/operations/x",
            "http://cloudpartner.azure.com/api/x",
            "https://cloudpartner.azure.com:8443/api/x",
            "https://cloudpartner.azure.com.evil.example/api",
            "https://cloudpartner.azure.com@evil.example/api",
        ] {
            let err = resolve_location(&endpoint(), loc).unwrap_err();
            assert!(
                matches!(err, LocationError::ForeignHost { .. }),
                "{loc}: {err:?}"
            );
        }
    }

    #[test]
    fn userinfo_and_fragments_are_refused() {
        for loc in [
            "https://user:password@cloudpartner.azure.com/api/operations/x",
            "https://user@cloudpartner.azure.com/api/operations/x",
        ] {
            assert_eq!(
                resolve_location(&endpoint(), loc),
                Err(LocationError::UserInfo),
                "{loc}"
            );
        }
        assert_eq!(
            resolve_location(&endpoint(), "/api/operations/x#frag"),
            Err(LocationError::Fragment)
        );
    }

    #[test]
    fn huge_locations_are_refused_with_the_host_shortened() {
        let host = format!("{}.example", "h".repeat(300));
        let loc = format!("https://{host}/{}", "a".repeat(300_000));
        let err = resolve_location(&endpoint(), &loc).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LocationError::TooLong { .. }), "{err:?}");
        assert!(text.len() < 200, "{} bytes", text.len());
        let path = format!("/api/{}", "a".repeat(5000));
        assert!(matches!(
            resolve_location(&endpoint(), &path),
            Err(LocationError::TooLong { .. })
        ));
    }

    #[test]
    fn junk_is_malformed_not_a_panic() {
        assert_eq!(
            resolve_location(&endpoint(), "  "),
            Err(LocationError::Empty)
        );
        for loc in [
            "/api/\nx",
            "/a b",
            "\\\\evil\\x",
            "javascript:alert(1)",
            "file:///etc/passwd",
        ] {
            assert!(resolve_location(&endpoint(), loc).is_err(), "{loc:?}");
        }
    }
}
