//! [`ModelsLayer`] and its service [`Models`]: the per-profile rules applied to each chat
//! request, and the reasoning of tool-calling answers remembered for replay.

use super::memory::ReasoningMemory;
use super::record::{record_typed, RecordBody};
use super::rules::{apply_profile, ForcedToolChoice, DEFAULT_REASONING_PLACEHOLDER};
use super::table::ModelTable;
use crate::chat::{ParsedChat, TypedAnswer};
use crate::ingress::Dropped;
use axum::body::Body;
use axum::response::IntoResponse;
use futures_util::future::BoxFuture;
use http::{header, Request, Response};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// The counter of tool-call turns whose reasoning the proxy put back, labelled `source`
/// (`memory` or `placeholder`).
pub const REPLAYED_METRIC: &str = "hunyuan_proxy_reasoning_replayed_total";

/// The `dialect` label under which the models layer counts what it dropped in
/// `hunyuan_proxy_dropped_total`.
pub const DROPPED_LABEL: &str = "model";

/// Retired ids logged once each, at most this many (a client cannot grow the set forever).
const RETIRED_LOGGED_MAX: usize = 256;

/// How the [`ModelsLayer`] behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelsConfig {
    /// The profiles (default: [`ModelTable::builtin`]).
    pub table: Arc<ModelTable>,
    /// What a forced `tool_choice` becomes on a model refusing it while thinking.
    pub forced_tool_choice: ForcedToolChoice,
    /// The `reasoning_content` replayed when neither the client nor the memory has it
    /// (default [`DEFAULT_REASONING_PLACEHOLDER`]).
    pub reasoning_placeholder: String,
    /// Bytes of remembered reasoning (default 32 MiB; 0: no memory, the placeholder only).
    pub memory_bytes: u64,
}

impl ModelsConfig {
    /// Checks the settings (the table was checked when it was configured): the reasoning
    /// placeholder must not be blank.
    pub fn validate(&self) -> Result<(), crate::error::InvalidConfig> {
        if self.reasoning_placeholder.trim().is_empty() {
            return Err(crate::error::InvalidConfig::new(
                "reasoning_placeholder",
                "must not be blank",
            ));
        }
        Ok(())
    }
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            table: Arc::new(ModelTable::builtin()),
            forced_tool_choice: ForcedToolChoice::Auto,
            reasoning_placeholder: DEFAULT_REASONING_PLACEHOLDER.to_owned(),
            memory_bytes: 32 * 1024 * 1024,
        }
    }
}

#[derive(Debug)]
struct Shared {
    config: ModelsConfig,
    memory: Option<ReasoningMemory>,
    retired_logged: Mutex<HashSet<String>>,
}

/// Applies the profile of the model each chat request names (after retirements) just before
/// the request goes on: thinking and effort in the model's vocabulary, `tool_choice`, refused
/// and renamed fields, `developer` → `system`, `stop`, and reasoning replay. What it removed
/// or changed against the client's wish is named in `x-hunyuan-proxy-dropped` and counted.
///
/// ```
/// use hunyuan_proxy::models::{ModelsConfig, ModelsLayer};
/// use tower::ServiceBuilder;
///
/// let layer = ModelsLayer::new(ModelsConfig::default()).unwrap();
/// let _service = ServiceBuilder::new()
///     .layer(layer)
///     .service(tower::service_fn(|_req: http::Request<axum::body::Body>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
///     }));
/// ```
#[derive(Debug, Clone)]
pub struct ModelsLayer {
    shared: Arc<Shared>,
}

impl ModelsLayer {
    /// A layer with `config`, checked here.
    pub fn new(config: ModelsConfig) -> Result<Self, crate::error::InvalidConfig> {
        config.validate()?;
        let memory = (config.memory_bytes > 0).then(|| ReasoningMemory::new(config.memory_bytes));
        Ok(ModelsLayer {
            shared: Arc::new(Shared {
                config,
                memory,
                retired_logged: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// Shares the reasoning memory through `redis` (see [`ReasoningMemory::shared`]); call
    /// before the layer is cloned into services.
    pub fn with_redis(mut self, redis: crate::replica::Redis) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.memory = shared.memory.take().map(|m| m.shared(redis));
        }
        self
    }

    /// The reasoning memory (`None` when `memory_bytes` is 0).
    pub fn memory(&self) -> Option<&ReasoningMemory> {
        self.shared.memory.as_ref()
    }
}

impl<S> Layer<S> for ModelsLayer {
    type Service = Models<S>;

    fn layer(&self, inner: S) -> Models<S> {
        Models {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`ModelsLayer`].
#[derive(Debug, Clone)]
pub struct Models<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl Shared {
    /// Logs a retired id the first time it is met.
    fn log_retired(&self, from: &str, to: &str) {
        let mut seen = self
            .retired_logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if seen.len() < RETIRED_LOGGED_MAX && seen.insert(from.to_owned()) {
            tracing::warn!(
                retired = from,
                replacement = to,
                "a client asked for a retired model; requests for it go to its replacement"
            );
        }
    }
}

/// The tool-call ids of assistant turns without reasoning, when the request's model replays.
fn ids_to_replay(chat: &crate::chat::ChatRequest, table: &ModelTable) -> Vec<String> {
    let replays = table
        .resolve(&chat.model)
        .profile
        .is_some_and(|p| p.replay_reasoning);
    if !replays {
        return Vec::new();
    }
    chat.messages
        .iter()
        .filter(|m| m.role == crate::chat::Role::Assistant && m.has_tool_calls())
        .filter(|m| {
            m.extra
                .get("reasoning_content")
                .and_then(serde_json::Value::as_str)
                .is_none_or(|r| r.trim().is_empty())
        })
        .flat_map(|m| m.tool_calls.iter().flatten().map(|c| c.id.clone()))
        .collect()
}

impl<S> Service<Request<Body>> for Models<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            if let Err(err) = crate::chat::ensure_chat(&mut req).await {
                return Ok(err.into_response());
            }
            if let Some(memory) = &shared.memory {
                // Ids whose reasoning may be replayed, fetched from Redis first when shared.
                let chat = req
                    .extensions()
                    .get::<ParsedChat>()
                    .expect("inserted above");
                let ids = ids_to_replay(chat, &shared.config.table);
                if !ids.is_empty() {
                    memory.fetch(&ids).await;
                }
            }
            let parsed = req
                .extensions_mut()
                .get_mut::<ParsedChat>()
                .expect("inserted above");
            let config = &shared.config;
            let (dropped, replayed, record) = parsed.edit_reporting(|chat| {
                let resolved = config.table.resolve(&chat.model);
                let mut changed = false;
                if resolved.retired {
                    shared.log_retired(&chat.model, resolved.model);
                    let model = resolved.model.to_owned();
                    chat.model = model;
                    changed = true;
                }
                let Some(profile) = config.table.get(&chat.model).cloned() else {
                    return ((Dropped::new(), Default::default(), false), changed);
                };
                let outcome = apply_profile(
                    chat,
                    &profile,
                    config.forced_tool_choice,
                    shared.memory.as_ref(),
                    &config.reasoning_placeholder,
                );
                let mut dropped = Dropped::new();
                for item in outcome.dropped {
                    dropped.add(item);
                }
                let record =
                    profile.replay_reasoning && chat.tools.as_ref().is_some_and(|t| !t.is_empty());
                (
                    (dropped, outcome.replayed, record),
                    changed || outcome.changed,
                )
            });
            if replayed.memory > 0 {
                metrics::counter!(REPLAYED_METRIC, "source" => "memory")
                    .increment(replayed.memory as u64);
            }
            if replayed.placeholder > 0 {
                metrics::counter!(REPLAYED_METRIC, "source" => "placeholder")
                    .increment(replayed.placeholder as u64);
                tracing::debug!(
                    turns = replayed.placeholder,
                    "tool-call turns without reasoning got the placeholder"
                );
            }
            req.headers_mut().remove(header::CONTENT_LENGTH);
            let typed = req.extensions().get::<TypedAnswer>().is_some();
            let mut response = inner.call(req).await?;
            dropped.report(DROPPED_LABEL, response.headers_mut());
            match (record, &shared.memory) {
                (true, Some(memory)) if response.status().is_success() => {
                    if typed && crate::chat::answer::is_json(&response) {
                        return Ok(record_typed(response, memory).await);
                    }
                    Ok(RecordBody::wrap(response, memory.clone()))
                }
                _ => Ok(response),
            }
        })
    }
}
