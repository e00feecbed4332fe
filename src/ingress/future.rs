//! [`ResponseFuture`]: the one boxed response future of the dialect ingresses and the fixer.

use axum::body::Body;
use http::Response;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The response future of every dialect's services: [`Messages`](super::messages::Messages),
/// [`Responses`](super::responses::Responses), [`CompletionsService`](super::completions::CompletionsService)
/// and their siblings, and of [`Fix`](crate::fix::Fix) (re-exported as `fix::ResponseFuture`).
///
/// Boxed: the request body is read (asynchronously) before the inner service is called, and
/// an error answer's body is read before it is rewritten; one allocation per request.
pub struct ResponseFuture<E> {
    inner: Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>,
}

impl<E> ResponseFuture<E> {
    pub(crate) fn new(
        future: impl Future<Output = Result<Response<Body>, E>> + Send + 'static,
    ) -> Self {
        ResponseFuture {
            inner: Box::pin(future),
        }
    }
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<Response<Body>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<E> fmt::Debug for ResponseFuture<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
