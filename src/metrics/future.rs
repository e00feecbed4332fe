//! The response future of [`Metrics`](super::Metrics).

use super::body::{Finish, ResponseBody};
use super::layer::{Route, Shared};
use crate::usage::UsageSlot;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

pin_project! {
    /// Resolves to the inner response with its body wrapped so the request is recorded when
    /// the body ends or is dropped.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        route: Option<Route>,
        shared: Arc<Shared>,
        usage: Option<UsageSlot>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Dropped before the inner service answered: the client went away.
            if let Some(route) = this.route.take() {
                Finish::cancelled(*this.started, route, this.shared.clone());
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        inner: F,
        started: Instant,
        route: Route,
        shared: Arc<Shared>,
        usage: UsageSlot,
    ) -> Self {
        ResponseFuture {
            inner,
            started,
            route: Some(route),
            shared,
            usage: Some(usage),
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<http::Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let route = this
            .route
            .take()
            .expect("ResponseFuture polled after completion");
        Poll::Ready(match result {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let finish = Finish::at_headers(
                    *this.started,
                    route,
                    this.shared.clone(),
                    &parts,
                    this.usage.take(),
                );
                Ok(http::Response::from_parts(
                    parts,
                    ResponseBody::new(body, finish),
                ))
            }
            Err(err) => {
                Finish::service_error(*this.started, route, this.shared.clone());
                Err(err)
            }
        })
    }
}
