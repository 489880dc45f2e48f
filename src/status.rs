//! The one status writer: server-side apply of the whole status under one
//! field manager, and only while the object is still at the version the
//! decision was made from. It applies and remembers what it wrote; what
//! follows a write (its Event, its count) is the reconcile's
//! ([`crate::reconcile::Report`]).
//!
//! It may not decide what the status becomes: `decide::transition` does.

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use std::future::Future;
use std::time::Duration;

use crate::context::{Context, FIELD_MANAGER};
use crate::crd::{OfferCancellation, OfferCancellationStatus};

/// Why a status write did not land.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("resource has no namespace")]
    NoNamespace,
    /// The object moved past the version the decision was made from.
    #[error("status write refused: the resource changed since it was read")]
    Conflict,
    #[error("writing status: {0}")]
    Api(#[source] kube::Error),
}

/// Where a changed status goes. `write` returns only once the status is
/// durable, so the intent is recorded before the cancel is sent.
pub trait StatusWriter {
    type Error;
    fn write(
        &mut self,
        status: &OfferCancellationStatus,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// After `write` was refused because the resource moved on: the
    /// resource as it is now, and the next write is fenced on that
    /// version. `None` for any other refusal, or a writer that cannot read.
    fn reread(
        &mut self,
        _refused: &Self::Error,
    ) -> impl Future<Output = Option<OfferCancellation>> + Send {
        std::future::ready(None)
    }
}

/// Writes to the API server.
pub(crate) struct KubeStatus<'a> {
    ctx: &'a Context,
    obj: &'a OfferCancellation,
    /// What the object must still be at for the next write to land: the
    /// version the decision was made from, then each write's own.
    resource_version: Option<String>,
}

impl<'a> KubeStatus<'a> {
    /// A writer for `obj` as it was read.
    pub(crate) fn new(ctx: &'a Context, obj: &'a OfferCancellation) -> Self {
        KubeStatus {
            ctx,
            obj,
            resource_version: obj.meta().resource_version.clone(),
        }
    }
}

impl StatusWriter for KubeStatus<'_> {
    type Error = WriteError;

    /// Applies `status`, fenced on the version the decision was made from
    /// (then on our own last write), and remembers the new version: until
    /// the watch cache shows it, a cached copy is older than our write.
    async fn write(&mut self, status: &OfferCancellationStatus) -> Result<(), WriteError> {
        let version = self.resource_version.as_deref().unwrap_or_default();
        let written = apply(self.ctx, self.obj, version, status).await?;
        let key = ObjectRef::from_obj(self.obj);
        self.ctx.written.set(key, Some(written.clone()));
        self.resource_version = Some(written);
        Ok(())
    }

    async fn reread(&mut self, refused: &WriteError) -> Option<OfferCancellation> {
        if !matches!(refused, WriteError::Conflict) {
            return None;
        }
        let fresh = match read_fresh(self.ctx, self.obj).await {
            Ok(fresh) => fresh?,
            Err(e) => {
                tracing::warn!(error = %e, "reading the resource after a refused write failed");
                return None;
            }
        };
        self.resource_version = fresh.meta().resource_version.clone();
        Some(fresh)
    }
}

/// The resource as the API server has it now (`None`: deleted), read past
/// the watch cache. Its version becomes the one a cached copy must reach
/// before it is decided from again.
pub(crate) async fn read_fresh(
    ctx: &Context,
    obj: &OfferCancellation,
) -> Result<Option<OfferCancellation>, kube::Error> {
    let Some(ns) = obj.namespace() else {
        return Ok(None);
    };
    let api: Api<OfferCancellation> = Api::namespaced(ctx.client.clone(), &ns);
    let fresh = api.get_opt(&obj.name_any()).await?;
    let version = fresh
        .as_ref()
        .and_then(|f| f.meta().resource_version.clone());
    ctx.written.set(ObjectRef::from_obj(obj), version);
    Ok(fresh)
}

/// Server-side apply of the whole status, on condition that the object is
/// still at `resource_version` (the API server refuses it with 409
/// otherwise); returns the new resourceVersion. A failed write is retried a
/// few times: losing the answer to a POST would leave the request in doubt.
async fn apply(
    ctx: &Context,
    obj: &OfferCancellation,
    resource_version: &str,
    status: &OfferCancellationStatus,
) -> Result<String, WriteError> {
    use backon::Retryable;
    let ns = obj.namespace().ok_or(WriteError::NoNamespace)?;
    let api: Api<OfferCancellation> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({
        "apiVersion": OfferCancellation::api_version(&()),
        "kind": OfferCancellation::kind(&()),
        "metadata": { "resourceVersion": resource_version },
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = obj.name_any();
    let write = || async {
        api.patch_status(&name, &params, &Patch::Apply(&patch))
            .await
    };
    write
        .retry(
            backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_times(3),
        )
        .when(|e| !matches!(e, kube::Error::Api(s) if matches!(s.code, 404 | 409 | 422)))
        .await
        .map(|written| written.meta().resource_version.clone().unwrap_or_default())
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 409 => WriteError::Conflict,
            e => WriteError::Api(e),
        })
}
