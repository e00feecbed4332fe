//! Model discovery and the proxy's own `GET /v1/models` (the story is on [`ModelCatalog`]).

use super::Proxy;
use crate::health::CheckResult;
use serde_json::{json, Value};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// How often [`Proxy::spawn_model_discovery`] asks the upstream for its models again.
pub const MODEL_REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// How long one `GET /models` may take.
const MODEL_LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// Representative ids listed for a `claude-*` alias (the current Claude models, as Claude Code
/// 2.1 names them), so that Claude Code's model picker offers them.
pub const CLAUDE_MODEL_IDS: &[&str] = &["claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5"];

/// What a model can do, as JSON for `/v1/models` (`None`: nothing known). The model-profile
/// table plugs in here.
pub type ModelCapabilities = Arc<dyn Fn(&str) -> Option<Value> + Send + Sync>;

/// One model of the upstream's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamModel {
    /// The model id.
    pub id: String,
    /// Whether it is deployed (`status` `"online"`, or no `status` at all).
    pub online: bool,
    /// The upstream's `status` when it gave one.
    pub status: Option<String>,
    /// The upstream's `created` (Unix seconds) when it gave one.
    pub created: Option<u64>,
}

/// A configured model the upstream's list lacks or has not online. Displayed as
/// `hy3 (offline)` or `x (not listed)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotOnline {
    /// The model id.
    pub model: String,
    /// Its `status` in the list; `None`: not listed at all.
    pub status: Option<String>,
}

impl std::fmt::Display for NotOnline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = self.status.as_deref().unwrap_or("not listed");
        write!(f, "{} ({why})", self.model)
    }
}

/// The upstream's last model list and the capability source: model discovery and the proxy's
/// own `GET /v1/models`.
///
/// [`ModelCatalog`] holds the upstream's last model list (`GET {api_base}/models` with the
/// first key; TokenHub lists the models the key may call, each with a `status`, and only
/// `"online"` is deployed; a list without `status`, like the legacy endpoint's, counts as
/// online). [`Proxy::refresh_models`] fills it; the binary does so at start and every
/// [`MODEL_REFRESH_INTERVAL`] ([`Proxy::spawn_model_discovery`]). The configured models
/// (`text_model`, `vision_model`, the targets of `model_aliases`, `fallback_models`) that are
/// missing or not online are named in the log and by the non-critical `/health` component
/// `models`. An upstream that will not list (no key, 401, no `/models` such as the Token Plan)
/// leaves the catalog unknown: nothing is reported, `/health` says `not checked`.
///
/// `GET /v1/models` lists the upstream's online models (the configured ones while the list is
/// unknown) plus the names the proxy answers to: each exact `model_aliases` key, and for the
/// `claude-*` alias the Messages route always has (and any alias pattern that is a prefix of
/// them) the current Claude model ids [`CLAUDE_MODEL_IDS`], because Claude Code shows only ids
/// that start with `claude`/`anthropic`. Other patterns (`gpt-*`) cannot be enumerated and are
/// not listed. With an `anthropic-version` header the list has Anthropic's shape
/// (`{"data":[{"type":"model","id","display_name","created_at"}],"has_more","first_id",
/// "last_id"}`), else OpenAI's (`{"object":"list","data":[{"id","object","created",
/// "owned_by"}]}`). Each entry carries `capabilities` when a capability source is set
/// ([`Proxy::set_model_capabilities`]; the hook the model-profile table plugs into).
#[derive(Default)]
pub struct ModelCatalog {
    listed: RwLock<Option<Vec<UpstreamModel>>>,
    capabilities: RwLock<Option<ModelCapabilities>>,
}

impl std::fmt::Debug for ModelCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelCatalog")
            .field("listed", &self.listed())
            .finish_non_exhaustive()
    }
}

impl ModelCatalog {
    /// The last list, `None` while unknown.
    pub fn listed(&self) -> Option<Vec<UpstreamModel>> {
        self.listed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_listed(&self, models: Vec<UpstreamModel>) {
        *self.listed.write().unwrap_or_else(PoisonError::into_inner) = Some(models);
    }

    fn capabilities(&self, id: &str) -> Option<Value> {
        let source = self
            .capabilities
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        source(id)
    }

    /// Each of `wanted` that the last list lacks or has not online; `None` while the list is
    /// unknown.
    pub fn not_online(&self, wanted: &[String]) -> Option<Vec<NotOnline>> {
        let listed = self.listed()?;
        Some(
            wanted
                .iter()
                .filter_map(|id| match listed.iter().find(|m| &m.id == id) {
                    None => Some(NotOnline {
                        model: id.clone(),
                        status: None,
                    }),
                    Some(m) if !m.online => Some(NotOnline {
                        model: id.clone(),
                        status: Some(m.status.clone().unwrap_or_else(|| "not online".into())),
                    }),
                    Some(_) => None,
                })
                .collect(),
        )
    }

    /// The `/health` component `models`.
    fn health(&self, wanted: &[String]) -> CheckResult {
        match self.not_online(wanted) {
            None => CheckResult::healthy("not checked: the upstream's model list is unknown"),
            Some(missing) if missing.is_empty() => {
                CheckResult::healthy(format!("{} configured model(s) online", wanted.len()))
            }
            Some(missing) => CheckResult::degraded(format!(
                "configured model(s) not online on the upstream: {}",
                missing
                    .iter()
                    .map(NotOnline::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The models of an upstream list body (`{"data":[{"id","status"?,"created"?}]}`).
fn parse_list(body: &[u8]) -> Option<Vec<UpstreamModel>> {
    let list: Value = serde_json::from_slice(body).ok()?;
    let data = list.get("data")?.as_array()?;
    Some(
        data.iter()
            .filter_map(|m| {
                let id = m.get("id")?.as_str()?.to_owned();
                let status = m.get("status").and_then(Value::as_str).map(str::to_owned);
                Some(UpstreamModel {
                    online: status.as_deref().is_none_or(|s| s == "online"),
                    status,
                    created: m.get("created").and_then(Value::as_u64),
                    id,
                })
            })
            .collect(),
    )
}

/// The models the configuration names: `text_model`, `vision_model`, the targets of
/// `model_aliases` and the models of `fallback_models`, each once.
pub(crate) fn configured_models(config: &crate::config::Config) -> Vec<String> {
    let mut wanted = vec![
        config.text_model().to_owned(),
        config.vision_model().to_owned(),
    ];
    wanted.extend(config.model_aliases.values().cloned());
    for (model, fallbacks) in &config.fallback_models {
        wanted.push(model.clone());
        wanted.extend(fallbacks.iter().cloned());
    }
    let mut seen = std::collections::HashSet::new();
    wanted.retain(|m| seen.insert(m.clone()));
    wanted
}

/// The `/health` component `models` over `catalog` for the configured models.
pub(crate) fn health_check(
    catalog: Arc<ModelCatalog>,
    wanted: Vec<String>,
) -> impl crate::health::ComponentHealth {
    crate::health::check_fn(move || {
        let result = catalog.health(&wanted);
        async move { result }
    })
}

impl Proxy {
    /// Asks the upstream for its models (`GET {api_base}/models` with the first key), keeps
    /// the list for `/v1/models` and `/health`, and warns about each configured model that is
    /// missing or not online; returns those. `None` when the list cannot be had (no key, a key that may not list, an upstream without `/models`): said at debug
    /// level only, and the last list is kept.
    pub async fn refresh_models(&self) -> Option<Vec<NotOnline>> {
        let upstream = self.upstream();
        let mut request = upstream
            .client()
            .get(upstream.models_url())
            .timeout(MODEL_LIST_TIMEOUT);
        if let Some(auth) = upstream.auth_header() {
            request = request.header(http::header::AUTHORIZATION, auth.clone());
        }
        let models = match request.send().await {
            Ok(response) if response.status().is_success() => {
                let body = response.bytes().await.ok()?;
                parse_list(&body)
            }
            Ok(response) => {
                tracing::debug!(
                    status = response.status().as_u16(),
                    "the upstream does not list its models"
                );
                None
            }
            Err(_) => {
                tracing::debug!("cannot ask the upstream for its models");
                None
            }
        }?;
        let catalog = &self.state.models;
        catalog.set_listed(models);
        let missing = catalog
            .not_online(&configured_models(self.config()))
            .unwrap_or_default();
        for model in &missing {
            tracing::warn!(
                model = %model.model,
                status = model.status.as_deref().unwrap_or("not listed"),
                "a configured model is not online on the upstream; requests for it will fail \
                 (check the model is enabled for the key in the TokenHub console)"
            );
        }
        Some(missing)
    }

    /// Runs [`refresh_models`](Self::refresh_models) now and then every
    /// [`MODEL_REFRESH_INTERVAL`] on the current tokio runtime, until the proxy is dropped.
    pub fn spawn_model_discovery(&self) {
        let proxy = Arc::downgrade(&self.state);
        tokio::spawn(async move {
            loop {
                let Some(state) = proxy.upgrade() else {
                    return;
                };
                let _ = Proxy { state }.refresh_models().await;
                tokio::time::sleep(MODEL_REFRESH_INTERVAL).await;
            }
        });
    }

    /// Sets what `/v1/models` says each model can do (the `capabilities` of each entry).
    pub fn set_model_capabilities(&self, capabilities: ModelCapabilities) {
        *self
            .state
            .models
            .capabilities
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(capabilities);
    }

    /// The upstream's model catalog (the last list; see [`ModelCatalog`]).
    pub fn model_catalog(&self) -> &ModelCatalog {
        &self.state.models
    }
}

/// The ids `GET /v1/models` lists, in order, each once: the upstream's online models (the
/// configured ones while unknown), then the names the proxy answers to.
fn listed_ids(proxy: &Proxy) -> Vec<(String, Option<u64>)> {
    let config = proxy.config();
    let mut ids: Vec<(String, Option<u64>)> = match proxy.state.models.listed() {
        Some(models) => models
            .into_iter()
            .filter(|m| m.online)
            .map(|m| (m.id, m.created))
            .collect(),
        None => vec![
            (config.text_model().to_owned(), None),
            (config.vision_model().to_owned(), None),
        ],
    };
    let mut patterns = vec!["claude-*".to_owned()];
    for alias in config.model_aliases.keys() {
        if alias.ends_with('*') {
            patterns.push(alias.clone());
        } else {
            ids.push((alias.clone(), None));
        }
    }
    for claude in CLAUDE_MODEL_IDS {
        let answered = patterns
            .iter()
            .any(|p| claude.starts_with(p.trim_end_matches('*')));
        if answered {
            ids.push(((*claude).to_owned(), None));
        }
    }
    let mut seen = std::collections::HashSet::new();
    ids.retain(|(id, _)| seen.insert(id.clone()));
    ids
}

/// `GET /v1/models` (and `/models`): Anthropic's shape with `anthropic-version`, else
/// OpenAI's.
pub(crate) fn models_body(proxy: &Proxy, anthropic: bool) -> Value {
    let started = proxy.state.started_unix;
    let catalog = &proxy.state.models;
    let ids = listed_ids(proxy);
    let data: Vec<Value> = ids
        .iter()
        .map(|(id, created)| {
            let created = created.unwrap_or(started);
            let mut entry = if anthropic {
                json!({"type": "model", "id": id, "display_name": id,
                       "created_at": rfc3339(created)})
            } else {
                json!({"id": id, "object": "model", "created": created, "owned_by": "tencent"})
            };
            if let Some(capabilities) = catalog.capabilities(id) {
                entry["capabilities"] = capabilities;
            }
            entry
        })
        .collect();
    if anthropic {
        json!({
            "data": data,
            "has_more": false,
            "first_id": ids.first().map(|(id, _)| id),
            "last_id": ids.last().map(|(id, _)| id),
        })
    } else {
        json!({"object": "list", "data": data})
    }
}

/// Unix seconds as RFC 3339 UTC (`2026-12-07T22:00:00Z`).
fn rfc3339(secs: u64) -> String {
    crate::health::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_read_from_an_openai_list() {
        let list = br#"{"object":"list","data":[{"id":"a"},{"id":"b"},{"x":1}]}"#;
        let ids: Vec<String> = parse_list(list)
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(parse_list(br#"{"error":{}}"#).is_none());
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn a_list_without_status_is_online_and_offline_is_named() {
        let models = parse_list(
            br#"{"data":[{"id":"hy4","status":"online"},{"id":"hy3","status":"offline"},{"id":"old"}]}"#,
        )
        .unwrap();
        let catalog = ModelCatalog::default();
        let wanted: Vec<String> = ["hy4", "hy3", "old", "gone"].map(String::from).to_vec();
        assert_eq!(catalog.not_online(&wanted), None);
        catalog.set_listed(models);
        let missing: Vec<String> = catalog
            .not_online(&wanted)
            .unwrap()
            .iter()
            .map(NotOnline::to_string)
            .collect();
        assert_eq!(missing, ["hy3 (offline)", "gone (not listed)"]);
    }
}
