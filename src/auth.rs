//! [`ClientAuthLayer`]: optional proxy API keys for clients.
//!
//! With keys configured, a request must carry `Authorization: Bearer <key>` (or `x-api-key:
//! <key>`, as Anthropic-style clients send) matching one of them; the comparison takes the same
//! time whichever key matches or how much of it does. A missing or wrong key gets a 401 envelope
//! that never echoes what was presented. The matched key's fingerprint (a prefix of its SHA-256,
//! the same wherever the key sits in the lists) travels on as a [`ClientKey`] request extension
//! (for per-key rate limits), and its name as a [`ClientName`] (for usage, budgets and stored
//! responses), never the key itself.
//!
//! Keys come as a plain list ([`AuthConfig::keys`], each named `#` and the first 8 hex digits of
//! its fingerprint, so that a key keeps its name, usage and stored responses wherever it sits in
//! the list) and as
//! named keys ([`AuthConfig::named`], config `[client_keys.<name>]`), given as the key or as
//! the hex SHA-256 of the key (so the config file need not hold the secret).
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

use crate::error::{toml_key, InvalidConfig, ProxyError};
use crate::secret::{constant_time_eq, Secret};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use http::{header, HeaderMap, Request};
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Which configured client key a request presented: the first 8 bytes of the key's SHA-256,
/// big-endian. Not the secret, and stable: the same for a key wherever it sits in
/// `client_api_keys`, and whether it is given there, as a named key or as its `key_sha256`, so
/// reordering the lists keeps each key's rate-limit bucket (in Redis too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(pub u64);

impl ClientKey {
    /// The fingerprint of the key whose SHA-256 is `digest`.
    pub fn from_sha256(digest: &[u8; 32]) -> Self {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&digest[..8]);
        ClientKey(u64::from_be_bytes(prefix))
    }

    /// The fingerprint of `key`.
    pub fn of(key: &str) -> Self {
        use sha2::{Digest as _, Sha256};
        Self::from_sha256(&Sha256::digest(key.as_bytes()).into())
    }

    /// The name a key of the plain `client_api_keys` list goes by: `#` and the first 8 hex
    /// digits of the fingerprint (32 bits of the key's hash: not enough to find the key).
    pub fn plain_name(self) -> String {
        format!("#{:08x}", self.0 >> 32)
    }
}

/// The name of the client key a request presented: a named key's name, or for a key of the
/// plain list `#` and the first 8 hex digits of its [`ClientKey`] (so `#ca978112` for the key
/// `a`), which stays the same when the list is reordered. Never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientName(pub Arc<str>);

/// How a named key is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMatch {
    /// The key itself.
    Key(Secret),
    /// The SHA-256 of the key.
    Sha256([u8; 32]),
}

impl KeyMatch {
    /// A match on the hex SHA-256 `hex` (64 hex digits), or `None` if it is not one.
    pub fn sha256_hex(hex: &str) -> Option<Self> {
        let hex = hex.trim();
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(KeyMatch::Sha256(out))
    }
}

/// A named client key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedKey {
    /// Its name (in metrics, logs, `/status`).
    pub name: String,
    /// How it is recognised.
    pub key: KeyMatch,
}

/// The shortest client key accepted (shorter ones are too easy to guess).
pub const MIN_KEY_LEN: usize = 8;

/// Which client keys a [`ClientAuthLayer`] accepts (config key `client_api_keys`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// The accepted keys; with no named keys either, empty means every request passes.
    pub keys: Vec<Secret>,
    /// The accepted named keys.
    pub named: Vec<NamedKey>,
}

impl AuthConfig {
    /// Accepts any of `keys`.
    pub fn new(keys: Vec<Secret>) -> Self {
        AuthConfig {
            keys,
            named: Vec::new(),
        }
    }

    /// Adds a named key.
    pub fn named(mut self, name: impl Into<String>, key: KeyMatch) -> Self {
        self.named.push(NamedKey {
            name: name.into(),
            key,
        });
        self
    }

    /// Adds an accepted key.
    pub fn key(mut self, key: Secret) -> Self {
        self.keys.push(key);
        self
    }

    /// Checks every key is at least [`MIN_KEY_LEN`] long (a short one is named by position,
    /// `keys[1]`, or by name, `named.alice.key`, never by value) and every name is neither
    /// empty nor starts with `#` (the plain keys' names, `#0`, `#1`…).
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let short = format!("is shorter than {MIN_KEY_LEN} characters");
        if let Some(index) = self.keys.iter().position(|k| k.len() < MIN_KEY_LEN) {
            return Err(InvalidConfig::new(format!("keys[{index}]"), short));
        }
        for named in &self.named {
            if named.name.trim().is_empty() || named.name.starts_with('#') {
                return Err(InvalidConfig::new(
                    "named",
                    "holds a name that is empty or starts with `#`",
                ));
            }
            if matches!(&named.key, KeyMatch::Key(key) if key.len() < MIN_KEY_LEN) {
                let field = format!("named.{}.key", toml_key(&named.name));
                return Err(InvalidConfig::new(field, short));
            }
        }
        Ok(())
    }
}

/// Demands one of the configured client keys. With an empty list every request passes.
#[derive(Debug, Clone)]
pub struct ClientAuthLayer {
    keys: Arc<Keys>,
}

/// The accepted keys, each with its name and fingerprint (made once, here).
#[derive(Debug)]
struct Keys {
    plain: Vec<(Secret, (ClientKey, ClientName))>,
    named: Vec<(Secret, (ClientKey, ClientName))>,
    hashed: Vec<([u8; 32], (ClientKey, ClientName))>,
}

impl Keys {
    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.named.is_empty() && self.hashed.is_empty()
    }

    /// The fingerprint and name of the key that matches (every key compared in constant
    /// time).
    fn find(&self, presented: &str) -> Option<&(ClientKey, ClientName)> {
        let plain = self.plain.iter().chain(&self.named);
        let mut found = None;
        for (key, id) in plain {
            if constant_time_eq(key.expose().as_bytes(), presented.as_bytes()) && found.is_none() {
                found = Some(id);
            }
        }
        if !self.hashed.is_empty() {
            use sha2::{Digest as _, Sha256};
            let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
            for (hash, id) in &self.hashed {
                if constant_time_eq(hash, &digest) && found.is_none() {
                    found = Some(id);
                }
            }
        }
        found
    }
}

impl ClientAuthLayer {
    /// A layer accepting the keys of `config`, which is validated here.
    pub fn new(config: AuthConfig) -> Result<Self, InvalidConfig> {
        config.validate()?;
        let plain = config
            .keys
            .into_iter()
            .map(|key| {
                let id = ClientKey::of(key.expose());
                (key, (id, ClientName(Arc::from(id.plain_name()))))
            })
            .collect();
        let mut named = Vec::new();
        let mut hashed = Vec::new();
        for key in config.named {
            let name = ClientName(Arc::from(key.name));
            match key.key {
                KeyMatch::Key(secret) => {
                    let id = ClientKey::of(secret.expose());
                    named.push((secret, (id, name)));
                }
                KeyMatch::Sha256(hash) => {
                    hashed.push((hash, (ClientKey::from_sha256(&hash), name)))
                }
            }
        }
        Ok(ClientAuthLayer {
            keys: Arc::new(Keys {
                plain,
                named,
                hashed,
            }),
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
    keys: Arc<Keys>,
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
        let found = presented_key(req.headers()).and_then(|k| self.keys.find(k));
        match found {
            Some((id, name)) => {
                let (id, name) = (*id, name.clone());
                req.extensions_mut().insert(id);
                req.extensions_mut().insert(name);
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
    fn keys_are_found_by_fingerprint_and_named() {
        let hash = "5b6a3e1cba5b6f8e3ab28a0a0c8fc3ab5da4e2a1e5bbfbac4aee0b59bc0bbbae";
        let digest: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
            <sha2::Sha256 as sha2::Digest>::new(),
            b"carol-secret-key",
        ))
        .into();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert!(KeyMatch::sha256_hex(hash).is_some() && KeyMatch::sha256_hex("zz").is_none());
        let config = AuthConfig::new(vec![Secret::new("a-key-000"), Secret::new("b-key-000")])
            .named("alice", KeyMatch::Key(Secret::new("alice-secret-key")))
            .named("carol", KeyMatch::sha256_hex(&hex).unwrap());
        let layer = ClientAuthLayer::new(config).unwrap();
        let find = |k: &str| layer.keys.find(k).map(|(id, n)| (*id, n.0.to_string()));
        assert_eq!(
            find("b-key-000"),
            Some((
                ClientKey::of("b-key-000"),
                ClientKey::of("b-key-000").plain_name()
            ))
        );
        assert_eq!(find("b-key-00"), None);
        assert_eq!(
            find("alice-secret-key"),
            Some((ClientKey::of("alice-secret-key"), "alice".to_owned()))
        );
        assert_eq!(
            find("carol-secret-key"),
            Some((ClientKey::of("carol-secret-key"), "carol".to_owned())),
            "a key given by its hash has the fingerprint it would have given as itself"
        );
        assert_eq!(find(&hex), None, "the hash itself is not the key");
        // Reordered, the plain list's keys keep their fingerprints and names (and so their
        // rate-limit buckets, usage and stored responses).
        let reordered = ClientAuthLayer::new(AuthConfig::new(vec![
            Secret::new("b-key-000"),
            Secret::new("a-key-000"),
        ]))
        .unwrap();
        let (id, name) = reordered.keys.find("b-key-000").unwrap();
        let b = ClientKey::of("b-key-000");
        assert_eq!((*id, &*name.0), (b, &*b.plain_name()));
        let a_name = &reordered.keys.find("a-key-000").unwrap().1;
        assert_eq!(
            find("a-key-000").unwrap().1,
            &*a_name.0,
            "the same name at #1 as at #0"
        );
        assert_ne!(ClientKey::of("a-key-000"), ClientKey::of("b-key-000"));
        assert_eq!(
            ClientKey::of("a").0,
            0xca97_8112_ca1b_bdca,
            "SHA-256(\"a\")'s prefix"
        );
        assert_eq!(ClientKey::of("a").plain_name(), "#ca978112");
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
        assert_eq!(err.field, "keys[1]");
        assert!(!err.to_string().contains("tiny"), "{err}");
        let named = AuthConfig::default().named("alice", KeyMatch::Key(Secret::new("tiny")));
        let err = ClientAuthLayer::new(named).unwrap_err();
        assert_eq!(err.field, "named.alice.key");
        assert!(!err.to_string().contains("tiny"), "{err}");
        let hashed = KeyMatch::sha256_hex(&"ab".repeat(32)).unwrap();
        let err = ClientAuthLayer::new(AuthConfig::default().named("#0", hashed)).unwrap_err();
        assert_eq!(err.field, "named");
    }
}
