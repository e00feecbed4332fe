//! [`Describer`]: the service that asks the vision model for one image's description.

use super::config::CascadeConfig;
use crate::cache::{CacheKey, CacheValue, Cached, Digest};
use crate::chat::{ChatRequest, Content, ContentPart, ImageUrl, Message, Role};
use crate::error::ProxyError;
use crate::upstream::Upstream;
use futures_util::future::BoxFuture;
use serde_json::Value;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower_service::Service;

/// One image to describe, with its cache key (content digest, vision model, prompt version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeRequest {
    /// The image URL as the client sent it: `http(s)` URLs are passed on unfetched, `data:`
    /// URLs with any line-wrapping removed.
    pub url: String,
    /// OpenAI's `detail` hint, passed on.
    pub detail: Option<String>,
    /// The cache key.
    pub key: Digest,
}

impl CacheKey for DescribeRequest {
    fn cache_key(&self) -> Digest {
        self.key
    }
}

/// An image's description (cheap to clone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(pub Arc<str>);

impl Description {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl CacheValue for Description {
    fn byte_size(&self) -> usize {
        self.0.len()
    }
}

impl crate::replica::SharedValue for Description {
    fn to_bytes(&self) -> Vec<u8> {
        self.0.as_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        std::str::from_utf8(bytes)
            .ok()
            .map(|s| Description(Arc::from(s)))
    }
}

/// A describer's answer: a bare [`Description`] (not cached) or one from a
/// [`Cache`](crate::cache::Cache) that says whether it was a hit.
pub trait DescriptionAnswer {
    /// The description, and whether it came without a vision call of its own.
    fn into_description(self) -> (Description, bool);

    /// Where the description came from, for traces: `hit`, `miss`, `coalesced`, or
    /// `uncached` (no cache in front of the describer).
    fn outcome(&self) -> &'static str {
        "uncached"
    }
}

impl DescriptionAnswer for Description {
    fn into_description(self) -> (Description, bool) {
        (self, false)
    }
}

impl DescriptionAnswer for Cached<Description> {
    fn into_description(self) -> (Description, bool) {
        (self.value, self.outcome.is_hit())
    }

    fn outcome(&self) -> &'static str {
        self.outcome.as_str()
    }
}

/// Why an image could not be described. Its text is the proxy's own; the upstream's error
/// text is never kept here, so it cannot reach a prompt or a client.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DescribeError {
    /// The vision call failed; the kind is the proxy error code (`bad_gateway`,
    /// `upstream_timeout`, `upstream_rejected`…).
    #[error("the vision call failed ({0})")]
    Upstream(&'static str),
    /// The vision model answered without a description.
    #[error("the vision model answered without a description")]
    Empty,
}

/// Calls `vision_model` over the shared upstream client with a context-free prompt and one
/// image, and answers the description text.
#[derive(Clone)]
pub struct Describer {
    upstream: Upstream,
    settings: Arc<Settings>,
}

struct Settings {
    model: String,
    prompt: String,
    max_tokens: u32,
    timeout: Duration,
}

impl std::fmt::Debug for Describer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Describer")
            .field("model", &self.settings.model)
            .field("max_tokens", &self.settings.max_tokens)
            .finish()
    }
}

impl Describer {
    /// A describer using `config`'s vision model, prompt and `max_tokens`.
    pub fn new(upstream: Upstream, config: &CascadeConfig) -> Self {
        Describer {
            upstream,
            settings: Arc::new(Settings {
                model: config.vision_model.clone(),
                prompt: config.prompt.clone(),
                max_tokens: config.max_tokens,
                timeout: config.describe_timeout(),
            }),
        }
    }

    /// The vision request for one image: one user message, the prompt and the image.
    pub fn vision_request(&self, req: &DescribeRequest) -> ChatRequest {
        let message = Message {
            content: Some(Content::Parts(vec![
                ContentPart::text_part(self.settings.prompt.clone()),
                ContentPart::ImageUrl {
                    image_url: ImageUrl {
                        url: req.url.clone(),
                        detail: req.detail.clone(),
                    },
                },
            ])),
            ..Message::text(Role::User, "")
        };
        let mut chat = ChatRequest {
            model: self.settings.model.clone(),
            messages: vec![message],
            stream: Some(false),
            ..ChatRequest::default()
        };
        chat.extra
            .insert("max_tokens".into(), Value::from(self.settings.max_tokens));
        chat.extra.insert("temperature".into(), Value::from(0));
        chat
    }
}

impl Service<DescribeRequest> for Describer {
    type Response = Description;
    type Error = DescribeError;
    type Future = BoxFuture<'static, Result<Description, DescribeError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), DescribeError>> {
        // The upstream's own concurrency slots do the waiting.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: DescribeRequest) -> Self::Future {
        let chat = self.vision_request(&req);
        let model = chat.model.clone();
        let upstream = self.upstream.clone();
        let timeout = self.settings.timeout;
        Box::pin(async move {
            let answer = match tokio::time::timeout(timeout, upstream.complete(chat)).await {
                Ok(Ok(answer)) => {
                    let usage = answer.usage.map(|u| crate::usage::Usage {
                        input_tokens: u.prompt_tokens,
                        output_tokens: u.completion_tokens,
                        ..Default::default()
                    });
                    crate::usage::count_vision(&model, usage.as_ref());
                    answer
                }
                Ok(Err(err)) => {
                    let kind = ProxyError::kind(&err);
                    tracing::warn!(key = %req.key, kind, "vision call failed");
                    return Err(DescribeError::Upstream(kind));
                }
                Err(_) => {
                    tracing::warn!(key = %req.key, ?timeout, "vision call timed out");
                    return Err(DescribeError::Upstream("upstream_timeout"));
                }
            };
            let text = answer
                .choices
                .into_iter()
                .next()
                .and_then(|c| c.message.content)
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    tracing::warn!(key = %req.key, "vision model gave no description");
                    DescribeError::Empty
                })?;
            Ok(Description(text.into()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::UpstreamConfig;

    #[test]
    fn the_vision_request_is_context_free_and_tool_free() {
        let upstream = Upstream::new(UpstreamConfig::new("http://127.0.0.1:9/v1")).unwrap();
        let config = CascadeConfig::default()
            .models("eyes-vision", "talker")
            .max_tokens(77);
        let describer = Describer::new(upstream, &config);
        let chat = describer.vision_request(&DescribeRequest {
            url: "https://x/a.png".into(),
            detail: Some("high".into()),
            key: Digest([0; 32]),
        });
        let sent = serde_json::to_value(&chat).unwrap();
        assert_eq!(sent["model"], "eyes-vision");
        assert_eq!(sent["max_tokens"], 77);
        assert!(sent.get("tools").is_none());
        assert_eq!(sent["messages"].as_array().unwrap().len(), 1);
        let parts = &sent["messages"][0]["content"];
        assert_eq!(parts[0]["text"], config.prompt);
        assert_eq!(parts[1]["image_url"]["url"], "https://x/a.png");
        assert_eq!(parts[1]["image_url"]["detail"], "high");
    }
}
