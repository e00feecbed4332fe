//! The ready-made chat stack: parse, fix, model profiles and cascade, ending in the upstream
//! (their place in the whole server's stack is pictured once, in the repository's
//! `docs/architecture.md`).
//!
//! Which extension each layer writes and reads is the contract in [`extensions`](crate::extensions)
//! (the only copy). [`ChatStack::builder`] builds it from the layers' own configs, no server
//! config needed:
//!
//! ```
//! use hunyuan_proxy::cascade::CascadeConfig;
//! use hunyuan_proxy::fix::FixConfig;
//! use hunyuan_proxy::upstream::{Upstream, UpstreamConfig};
//! use hunyuan_proxy::ChatStack;
//!
//! let upstream = Upstream::new(UpstreamConfig::new("http://127.0.0.1:9/v1")).unwrap();
//! let stack = ChatStack::builder(upstream)
//!     .fix(FixConfig::default())
//!     .cascade(CascadeConfig::default())
//!     .build()
//!     .unwrap();
//! let app: axum::Router = axum::Router::new()
//!     .route_service("/v1/chat/completions", stack.service());
//! # let _ = app;
//! ```
//!
//! Metrics and health are app-wide layers applied to the whole router (see
//! [`server`](crate::server)), not part of this chat stack. Every layer also works alone: a
//! layer that finds no [`ParsedChat`](crate::chat::ParsedChat) in the extensions parses the
//! body itself. To build a stack of your own (another order, a layer left out, a layer of yours
//! inserted, your own describer), put the same layers into a `ServiceBuilder`:
//! `examples/custom_stack.rs` does all four.

use crate::cache::{CacheConfig, CacheHandle, DynStore};
use crate::cascade::{CascadeConfig, CascadeLayer, Description};
use crate::chat::{ParseLayer, DEFAULT_BODY_LIMIT};
use crate::error::InvalidConfig;
use crate::fix::{FixConfig, FixLayer};
use crate::models::{ModelsConfig, ModelsLayer};
use crate::upstream::Upstream;
use axum::body::Body;
use http::{Request, Response};
use std::convert::Infallible;
use tower::util::BoxCloneSyncService;
use tower::ServiceBuilder;

/// The type-erased chat stack: drops into `axum::Router::route_service`.
pub type ChatService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// The ready-made chat stack and the description cache's handle (for statistics and clearing).
#[derive(Clone, Debug)]
pub struct ChatStack {
    service: ChatService,
    description_cache: Option<CacheHandle>,
}

impl ChatStack {
    /// A builder for the stack ending in `upstream`: fixing with [`FixConfig::default`] and the
    /// cascade with [`CascadeConfig::default`] unless told otherwise.
    pub fn builder(upstream: Upstream) -> ChatStackBuilder {
        ChatStackBuilder {
            upstream,
            fix: Some(FixConfig::default()),
            cascade: Some(CascadeConfig::default()),
            models: None,
            models_redis: None,
            cache: CacheConfig::default(),
            store: None,
            body_limit: DEFAULT_BODY_LIMIT,
            log_bodies: false,
        }
    }

    /// The type-erased stack (cheap to clone).
    pub fn service(&self) -> ChatService {
        self.service.clone()
    }

    /// The image-description cache (`None` when the stack has no cascade).
    pub fn description_cache(&self) -> Option<&CacheHandle> {
        self.description_cache.as_ref()
    }
}

/// Builds a [`ChatStack`]; every config is validated in [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct ChatStackBuilder {
    upstream: Upstream,
    fix: Option<FixConfig>,
    cascade: Option<CascadeConfig>,
    models: Option<ModelsConfig>,
    models_redis: Option<crate::replica::Redis>,
    cache: CacheConfig,
    store: Option<CustomStore>,
    body_limit: usize,
    log_bodies: bool,
}

impl ChatStackBuilder {
    /// Message fixing with `config`.
    pub fn fix(mut self, config: FixConfig) -> Self {
        self.fix = Some(config);
        self
    }

    /// No message fixing.
    pub fn without_fix(mut self) -> Self {
        self.fix = None;
        self
    }

    /// The model profiles applied to each request with `config` (between the fixer and the
    /// cascade; default: none). Give the cascade the same table
    /// ([`CascadeConfig::model_table`]) so images go natively to models that see them.
    pub fn models(mut self, config: ModelsConfig) -> Self {
        self.models = Some(config);
        self
    }

    /// Shares the models layer's reasoning memory through `redis`, so replicas replay each
    /// other's reasoning.
    pub fn models_redis(mut self, redis: crate::replica::Redis) -> Self {
        self.models_redis = Some(redis);
        self
    }

    /// The image cascade with `config`.
    pub fn cascade(mut self, config: CascadeConfig) -> Self {
        self.cascade = Some(config);
        self
    }

    /// No image cascade (images go upstream as they came).
    pub fn without_cascade(mut self) -> Self {
        self.cascade = None;
        self
    }

    /// The description cache's size, lifetime and waits (default [`CacheConfig::default`]).
    pub fn description_cache(mut self, config: CacheConfig) -> Self {
        self.cache = config;
        self
    }

    /// Keeps the descriptions in `store` instead of a new in-process
    /// [`MemoryStore`](crate::cache::MemoryStore) sized by the cache config (e.g. a
    /// [`TieredStore`](crate::replica::TieredStore) over Redis, shared by replicas).
    pub fn description_store(mut self, store: DynStore<Description>) -> Self {
        self.store = Some(CustomStore(store));
        self
    }

    /// The largest request body accepted, in bytes (default [`DEFAULT_BODY_LIMIT`]).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Logs each request at debug level, image data elided (default off).
    pub fn log_request_bodies(mut self, on: bool) -> Self {
        self.log_bodies = on;
        self
    }

    /// Validates the configs and builds the stack, outermost first: parse, fix, models,
    /// cascade, upstream. A bad field is named within its layer's table (`fix.max_messages`,
    /// `cascade.concurrency`, `cascade.cache.ttl`, `models.reasoning_placeholder`).
    pub fn build(self) -> Result<ChatStack, InvalidConfig> {
        let parse = ParseLayer::new(self.body_limit).log_bodies(self.log_bodies);
        let fix = self
            .fix
            .map(FixLayer::new)
            .transpose()
            .map_err(|e| e.within("fix"))?;
        let models = match (
            self.models
                .map(ModelsLayer::new)
                .transpose()
                .map_err(|e| e.within("models"))?,
            self.models_redis,
        ) {
            (Some(layer), Some(redis)) => Some(layer.with_redis(redis)),
            (layer, _) => layer,
        };
        let (cascade, description_cache) = match self.cascade {
            Some(config) => {
                let (layer, handle) = match self.store {
                    Some(CustomStore(store)) => {
                        CascadeLayer::with_store(config, self.upstream.clone(), self.cache, store)
                    }
                    None => CascadeLayer::with_cache(config, self.upstream.clone(), self.cache),
                }
                .map_err(|e| e.within("cascade"))?;
                (Some(layer), Some(handle))
            }
            None => (None, None),
        };
        let service = ServiceBuilder::new()
            .layer(parse)
            .option_layer(fix)
            .option_layer(models)
            .option_layer(cascade)
            .service(self.upstream);
        Ok(ChatStack {
            service: BoxCloneSyncService::new(service),
            description_cache,
        })
    }
}

/// A description store given to the builder (stores need not be `Debug`).
#[derive(Clone)]
struct CustomStore(DynStore<Description>);

impl std::fmt::Debug for CustomStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomStore")
    }
}

#[cfg(test)]
mod tests {
    /// The sources that assemble the server's stack, tests left out: the router (app-wide
    /// and client-route layers, the ingress), the proxy (the ingress layers), this builder
    /// and the cascade's describer.
    fn assembly() -> Vec<&'static str> {
        [
            include_str!("server/router.rs"),
            include_str!("server/mod.rs"),
            include_str!("stack.rs"),
            include_str!("cascade/layer.rs"),
        ]
        .map(|source| source.split("#[cfg(test)]").next().unwrap_or(source))
        .to_vec()
    }

    #[test]
    fn every_layer_of_the_architecture_picture_is_assembled_by_the_code() {
        let doc = include_str!("../docs/architecture.md");
        let table = doc
            .split("## The stack, outermost first")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").find(|part| part.starts_with("| #")))
            .expect("docs/architecture.md has the stack table");
        let mut names = Vec::new();
        for row in table.lines().skip(2) {
            let layer_cell = row.split('|').nth(2).expect("a layer column");
            // Every type (CamelCase) the cell names in backticks: `Extension(BodyLimit)` is two.
            for code in layer_cell.split('`').skip(1).step_by(2) {
                for name in code.split(['(', ')']) {
                    if name.starts_with(char::is_uppercase) {
                        names.push(name.to_owned());
                    }
                }
            }
        }
        assert!(names.len() >= 20, "{names:?}");
        let assembly = assembly();
        for name in &names {
            assert!(
                assembly.iter().any(|source| source.contains(name.as_str())),
                "docs/architecture.md pictures `{name}`, which the stack's assembly never names"
            );
        }
        for layer in [
            "ResponsesLayer",
            "RedisGuardLayer",
            "ModelsLayer",
            "UsageLayer",
        ] {
            assert!(names.iter().any(|n| n == layer), "{layer} is missing");
        }
    }
}
