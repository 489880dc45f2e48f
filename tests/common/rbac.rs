//! Every Kubernetes API call the operator makes, as RBAC sees it. deploy/
//! grants exactly these (tests/deploy.rs), and the mocked API servers in the
//! tests refuse any call not listed here. The tests' own record: the
//! operator does not read it.

/// One RBAC permission: API group, resource (with subresource), verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Access {
    pub group: &'static str,
    pub resource: &'static str,
    pub verb: &'static str,
}

pub const fn access(group: &'static str, resource: &'static str, verb: &'static str) -> Access {
    Access {
        group,
        resource,
        verb,
    }
}

/// Calls on the watched resources and Secrets (ClusterRole, or Role in the
/// namespaced install).
pub const WATCHED: &[Access] = &[
    // control_loop.rs: Controller::for_stream over watch.rs lists and watches.
    // reconcile.rs read_current: a fresh read when the cache lags
    // behind our own last status write.
    access("offercancel.dev", "offercancellations", "get"),
    access("offercancel.dev", "offercancellations", "list"),
    access("offercancel.dev", "offercancellations", "watch"),
    // status.rs apply: server-side apply of status.
    access("offercancel.dev", "offercancellations/status", "patch"),
    // credentials.rs read, and control_loop.rs watches_stream(secrets).
    access("", "secrets", "get"),
    access("", "secrets", "list"),
    access("", "secrets", "watch"),
    // events.rs: one Event per notice, never updated.
    access("events.k8s.io", "events", "create"),
    // workload_identity.rs: TokenRequest for the ServiceAccount a Secret
    // names, in the resource's own namespace (workload identity).
    access("", "serviceaccounts/token", "create"),
];

/// Leases in the operator's own namespace: leader election
/// (kube-lease-manager: get, create, patch) and the targets' claims
/// (claim/lease.rs: get, create, a fenced patch to take one over or record
/// an answer, delete to let one go, list for the sweep of old ones).
pub const LEADER_ELECTION: &[Access] = &[
    access("coordination.k8s.io", "leases", "get"),
    access("coordination.k8s.io", "leases", "create"),
    access("coordination.k8s.io", "leases", "patch"),
    access("coordination.k8s.io", "leases", "delete"),
    access("coordination.k8s.io", "leases", "list"),
];

/// The granted permission a request uses, from its method, path and query;
/// `None` when no listed permission covers it.
pub fn required(method: &str, path: &str, query: &str) -> Option<Access> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/... is the core group; /apis/{group}/{version}/...
    let (group, rest) = match parts.as_slice() {
        ["api", _v, rest @ ..] => ("", rest),
        ["apis", g, _v, rest @ ..] => (*g, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] => rest,
        rest => rest,
    };
    let (resource, named, sub) = match rest {
        [r] => (*r, false, None),
        [r, _name] => (*r, true, None),
        [r, _name, s] => (*r, true, Some(*s)),
        _ => return None,
    };
    let watching = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, named, watching) {
        ("GET", _, true) => "watch",
        ("GET", true, false) => "get",
        ("GET", false, false) => "list",
        ("POST", _, _) => "create",
        ("PUT", _, _) => "update",
        ("PATCH", _, _) => "patch",
        ("DELETE", true, _) => "delete",
        ("DELETE", false, _) => "deletecollection",
        _ => return None,
    };
    let want = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    };
    WATCHED
        .iter()
        .chain(LEADER_ELECTION)
        .copied()
        .find(|a| a.group == group && a.verb == verb && a.resource == want)
}
