//! [`ClientAuthLayer`]: optional proxy API keys for clients.
//!
//! With keys configured, a request must carry `Authorization: Bearer <key>` (or `x-api-key:
//! <key>`, as Anthropic-style clients send) matching one of them; the comparison takes the same
//! time whichever key matches or how much of it does. A missing or wrong key gets a 401 envelope
//! that never echoes what was presented. The matched key's index travels on as a
//! [`ClientKey`] request extension (for per-key rate limits), never the key itself.
//!
//! ```
//! use hunyuan_proxy::auth::{AuthConfig, ClientAuthLayer};
//! use hunyuan_proxy::secret::Secret;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio_test_block_on(async {
//! let service = ServiceBuilder::new()
//!     .layer(ClientAuthLayer::new(AuthConfig::default().key(Secret::new("sk-team-a"))).unwrap())
//!     .service_fn(|_req: http::Request<axum::body::Body>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
//!     });
//! let denied = service
//!     .clone()
//!     .oneshot(http::Request::new(axum::body::Body::empty()))
//!     .await
//!     .unwrap();
//! assert_eq!(denied.status(), 401);
//! let allowed = service
//!     .oneshot(
//!         http::Request::builder()
//!             .header("authorization", "Bearer sk-team-a")
//!             .body(axum::body::Body::empty())
//!             .unwrap(),
//!     )
//!     .await
//!     .unwrap();
//! assert_eq!(allowed.status(), 200);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use crate::error::ProxyError;
use crate::secret::{constant_time_eq, Secret};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use http::{header, HeaderMap, Request};
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Which configured client key a request presented (its position in the list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(pub usize);

/// The shortest client key accepted (shorter ones are too easy to guess).
pub const MIN_KEY_LEN: usize = 8;

/// Which client keys a [`ClientAuthLayer`] accepts (config key `client_api_keys`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// The accepted keys; empty: every request passes.
    pub keys: Vec<Secret>,
}

impl AuthConfig {
    /// Accepts any of `keys`.
    pub fn new(keys: Vec<Secret>) -> Self {
        AuthConfig { keys }
    }

    /// Adds an accepted key.
    pub fn key(mut self, key: Secret) -> Self {
        self.keys.push(key);
        self
    }

    /// Checks every key is at least [`MIN_KEY_LEN`] long.
    pub fn validate(&self) -> Result<(), AuthConfigError> {
        match self.keys.iter().position(|k| k.len() < MIN_KEY_LEN) {
            Some(index) => Err(AuthConfigError { index }),
            None => Ok(()),
        }
    }
}

/// An [`AuthConfig`] holding a key that is too short (named by position, never by value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client key {index} is shorter than {MIN_KEY_LEN} characters")]
pub struct AuthConfigError {
    /// The key's position in the list.
    pub index: usize,
}

/// Demands one of the configured client keys. With an empty list every request passes.
#[derive(Debug, Clone)]
pub struct ClientAuthLayer {
    keys: Arc<[Secret]>,
}

impl ClientAuthLayer {
    /// A layer accepting the keys of `config`, which is validated here.
    pub fn new(config: AuthConfig) -> Result<Self, AuthConfigError> {
        config.validate()?;
        Ok(ClientAuthLayer {
            keys: config.keys.into(),
        })
    }
}

impl<S> Layer<S> for ClientAuthLayer {
    type Service = ClientAuth<S>;

    fn layer(&self, inner: S) -> ClientAuth<S> {
        ClientAuth {
            inner,
            keys: self.keys.clone(),
        }
    }
}

/// The service made by [`ClientAuthLayer`].
#[derive(Debug, Clone)]
pub struct ClientAuth<S> {
    inner: S,
    keys: Arc<[Secret]>,
}

/// Anthropic's key header, named at compile time.
const X_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");

/// The key a request presents, from `Authorization: Bearer` or `x-api-key`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, key) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| key.trim());
    }
    headers.get(X_API_KEY)?.to_str().ok().map(str::trim)
}

/// The index of the key that matches, comparing against every key in constant time.
fn matching_key(keys: &[Secret], presented: &str) -> Option<usize> {
    let mut found = None;
    for (i, key) in keys.iter().enumerate() {
        if constant_time_eq(key.expose().as_bytes(), presented.as_bytes()) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

impl<S, B> Service<Request<B>> for ClientAuth<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if self.keys.is_empty() {
            return Either::Left(self.inner.call(req));
        }
        let found = presented_key(req.headers()).and_then(|k| matching_key(&self.keys, k));
        match found {
            Some(index) => {
                req.extensions_mut().insert(ClientKey(index));
                Either::Left(self.inner.call(req))
            }
            None => {
                let message = if presented_key(req.headers()).is_some() {
                    "invalid API key"
                } else {
                    "missing API key: send `Authorization: Bearer <key>`"
                };
                Either::Right(ready(Ok(ProxyError::Unauthorized {
                    message: message.into(),
                }
                .into_response())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_position() {
        let keys = vec![Secret::new("a-key"), Secret::new("b-key")];
        assert_eq!(matching_key(&keys, "b-key"), Some(1));
        assert_eq!(matching_key(&keys, "b-ke"), None);
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "bearer  a-key".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("a-key"));
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "b-key".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("b-key"));
    }

    #[test]
    fn a_short_key_is_refused_by_position_without_showing_it() {
        let config = AuthConfig::default()
            .key(Secret::new("long-enough-key"))
            .key(Secret::new("tiny"));
        let err = ClientAuthLayer::new(config).unwrap_err();
        assert_eq!(err.index, 1);
        assert!(!err.to_string().contains("tiny"), "{err}");
    }
}
