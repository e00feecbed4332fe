//! [`Metrics`], the service made by [`MetricsLayer`](super::MetricsLayer).

use super::future::ResponseFuture;
use super::layer::Shared;
use crate::usage::UsageSlot;
use http::{Request, Response};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tower_service::Service;

/// Records each request that passes through to `S`. Made by
/// [`MetricsLayer`](super::MetricsLayer).
#[derive(Clone)]
pub struct Metrics<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Metrics<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Metrics<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Metrics { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Metrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body,
{
    type Response = Response<super::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        let route = self.shared.resolve(req.uri().path());
        route.handles.in_flight().increment(1.0);
        // The upstream's `usage` comes back through this slot (read once, where the upstream's
        // bytes pass), shared with any usage layer further in.
        let usage = match req.extensions().get::<UsageSlot>() {
            Some(slot) => slot.clone(),
            None => {
                let slot = UsageSlot::new();
                req.extensions_mut().insert(slot.clone());
                slot
            }
        };
        // The inner service is called here, not in the future: no clone is needed (tower's
        // `mem::replace` idiom is for futures that call it later).
        ResponseFuture::new(
            self.inner.call(req),
            started,
            route,
            self.shared.clone(),
            usage,
        )
    }
}
