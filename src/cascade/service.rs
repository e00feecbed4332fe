//! [`Cascade<S, D>`]: the service made by [`CascadeLayer`](super::CascadeLayer).

use super::config::{CascadeConfig, OnVisionFailure, SwitchModel};
use super::describer::{DescribeRequest, Description, DescriptionAnswer};
use super::image::{self, FoundImage, Keyer};
use super::stream;
use crate::chat::{self, ChatRequest, Content, ContentPart};
use crate::error::ProxyError;
use crate::extensions::VisionReport;
use crate::telemetry;
use axum::body::Body;
use axum::response::IntoResponse;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use http::{HeaderValue, Request, Response};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;
use tower::ServiceExt;
use tower_service::Service;

/// The response header set when a placeholder stood in for a description
/// (`on_failure = "degrade"`).
pub const VISION_HEADER: &str = "x-hunyuan-proxy-vision";

/// The [`VisionReport`] of a streamed response that was committed before its images were
/// described: filled when the vision stage ends (response extension, in place of a
/// `VisionReport`).
#[derive(Debug, Clone, Default)]
pub struct PendingVisionReport(pub Arc<OnceLock<VisionReport>>);

/// The settings every clone of a [`Cascade`] shares.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) config: CascadeConfig,
    pub(crate) keyer: Keyer,
}

impl Prepared {
    pub(crate) fn new(config: CascadeConfig) -> Self {
        let keyer = Keyer::new(&config.vision_model, &config.prompt, config.max_tokens);
        Prepared { config, keyer }
    }
}

/// Replaces every image of a chat request with its description and switches the request to the
/// text model; see the [module docs](super).
///
/// Reads and writes `ChatRequest` (request extension); writes [`VisionReport`] (request and
/// response extensions; [`PendingVisionReport`] when a stream was committed early).
pub struct Cascade<S, D> {
    inner: S,
    describer: D,
    prepared: Arc<Prepared>,
}

impl<S: Clone, D: Clone> Clone for Cascade<S, D> {
    fn clone(&self) -> Self {
        Cascade {
            inner: self.inner.clone(),
            describer: self.describer.clone(),
            prepared: self.prepared.clone(),
        }
    }
}

impl<S: std::fmt::Debug, D: std::fmt::Debug> std::fmt::Debug for Cascade<S, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cascade")
            .field("inner", &self.inner)
            .field("describer", &self.describer)
            .field("config", &self.prepared.config)
            .finish()
    }
}

impl<S, D> Cascade<S, D> {
    pub(crate) fn new(inner: S, describer: D, prepared: Arc<Prepared>) -> Self {
        Cascade {
            inner,
            describer,
            prepared,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// One unique image's description, or `None` when it could not be made.
pub(crate) type Outcome = Option<(Description, bool)>;

/// The request between the scan and the inner call.
pub(crate) struct Pending {
    pub(crate) req: Request<Body>,
    pub(crate) chat: ChatRequest,
    pub(crate) images: Vec<FoundImage>,
    /// For each image, the index of its unique description.
    pub(crate) unique_of: Vec<usize>,
    pub(crate) prepared: Arc<Prepared>,
    pub(crate) started: Instant,
}

/// What applying the descriptions gave.
pub(crate) struct Applied {
    pub(crate) req: Request<Body>,
    pub(crate) report: VisionReport,
    pub(crate) degraded: bool,
}

impl Pending {
    /// Puts the descriptions in place of the images and switches the model; fails (502) when
    /// an image has no description and `on_failure` is `fail`.
    pub(crate) fn apply(self, outcomes: Vec<Outcome>) -> Result<Applied, ProxyError> {
        let Pending {
            mut req,
            mut chat,
            images,
            unique_of,
            prepared,
            started,
        } = self;
        let config = &prepared.config;
        let failed = outcomes.iter().any(Option::is_none);
        if failed && config.on_failure == OnVisionFailure::Fail {
            return Err(ProxyError::BadGateway {
                message: "an image in the request could not be described by the vision model; \
                          please retry later"
                    .into(),
            });
        }
        for (n, (found, &unique)) in images.iter().zip(&unique_of).enumerate() {
            let text = match &outcomes[unique] {
                Some((description, _)) => format!("[Image {}: {}]", n + 1, description.as_str()),
                None => format!("[Image {}: (this image could not be described)]", n + 1),
            };
            if let Some(Content::Parts(parts)) = &mut chat.messages[found.message].content {
                parts[found.part] = ContentPart::Text { text };
            }
        }
        match config.switch_model {
            // With model profiles the client's model is kept: it is the model called.
            _ if config.models.is_some() => {}
            SwitchModel::Always => chat.model.clone_from(&config.text_model),
            SwitchModel::WhenNotVision if !config.sees_images(&chat.model) => {
                chat.model.clone_from(&config.text_model);
            }
            SwitchModel::WhenNotVision | SwitchModel::Never => {}
        }
        let hits = outcomes
            .iter()
            .filter(|o| matches!(o, Some((_, true))))
            .count();
        let report = VisionReport {
            images: images.len(),
            cache_hits: hits,
            cache_misses: outcomes.len() - hits,
            vision_time: started.elapsed(),
        };
        chat::put_chat(&mut req, chat);
        req.extensions_mut().insert(report);
        Ok(Applied {
            req,
            report,
            degraded: failed,
        })
    }
}

impl Applied {
    /// Marks `response` with the report and, when degraded, the header.
    pub(crate) fn mark(report: VisionReport, degraded: bool, response: &mut Response<Body>) {
        response.extensions_mut().insert(report);
        if degraded {
            response
                .headers_mut()
                .insert(VISION_HEADER, HeaderValue::from_static("degraded"));
        }
    }
}

/// Describes the unique images, `concurrency` at a time, in order.
fn describe_all<D>(
    describer: D,
    requests: Vec<DescribeRequest>,
    concurrency: usize,
) -> BoxFuture<'static, Vec<Outcome>>
where
    D: Service<DescribeRequest> + Clone + Send + 'static,
    D::Response: DescriptionAnswer + Send,
    D::Error: std::fmt::Display + Send,
    D::Future: Send,
{
    Box::pin(
        futures_util::stream::iter(requests)
            .map(move |request| {
                let describer = describer.clone();
                let span = telemetry::describe_span();
                let describe = describer.oneshot(request);
                async move {
                    match tracing::Instrument::instrument(describe, span.clone()).await {
                        Ok(answer) => {
                            telemetry::record_cache_outcome(&span, answer.outcome());
                            Some(answer.into_description())
                        }
                        Err(err) => {
                            telemetry::record_failure(&span, None, "describe_failed");
                            let _entered = span.enter();
                            tracing::warn!(error = %err, "an image could not be described");
                            None
                        }
                    }
                }
            })
            .buffered(concurrency)
            .collect(),
    )
}

/// Groups images by key and moves each unique image's URL out of the request (it is replaced
/// by text anyway).
fn plan(
    chat: &mut ChatRequest,
    images: &[FoundImage],
    keyer: &Keyer,
) -> (Vec<DescribeRequest>, Vec<usize>) {
    let mut requests: Vec<DescribeRequest> = Vec::new();
    let mut unique_of = Vec::with_capacity(images.len());
    for found in images {
        let key = keyer.key(found.kind, &found.content);
        if let Some(existing) = requests.iter().position(|r| r.key == key) {
            unique_of.push(existing);
            continue;
        }
        let Some(Content::Parts(parts)) = &mut chat.messages[found.message].content else {
            unreachable!("scan found an image part here");
        };
        let ContentPart::ImageUrl { image_url } = &mut parts[found.part] else {
            unreachable!("scan found an image part here");
        };
        let url = match &found.cleaned_url {
            Some(cleaned) => cleaned.clone(),
            None => std::mem::take(&mut image_url.url),
        };
        unique_of.push(requests.len());
        requests.push(DescribeRequest {
            url,
            detail: image_url.detail.clone(),
            key,
        });
    }
    (requests, unique_of)
}

impl<S, D> Service<Request<Body>> for Cascade<S, D>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    D: Service<DescribeRequest> + Clone + Send + 'static,
    D::Response: DescriptionAnswer + Send,
    D::Error: std::fmt::Display + Send,
    D::Future: Send,
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
        let describer = self.describer.clone();
        let prepared = self.prepared.clone();
        Box::pin(async move {
            let config = &prepared.config;
            if !config.enabled {
                return inner.call(req).await;
            }
            // Scanned where it lies when an earlier layer parsed it: a request without images
            // goes on untouched (raw bytes included), and is taken only when it will change.
            let scanned = req.extensions().get::<chat::ParsedChat>().map(|chat| {
                image::scan(
                    chat,
                    config.max_images,
                    config.max_image_bytes,
                    config.image_types.as_deref(),
                )
            });
            let (mut chat, images) = match scanned {
                Some(Err(err)) => return Ok(err.into_response()),
                Some(Ok(images)) if images.is_empty() => return inner.call(req).await,
                Some(Ok(images)) => match chat::take_chat(&mut req).await {
                    Ok(chat) => (chat, images),
                    Err(err) => return Ok(err.into_response()),
                },
                None => {
                    let chat = match chat::take_chat(&mut req).await {
                        Ok(chat) => chat,
                        Err(err) => return Ok(err.into_response()),
                    };
                    match image::scan(
                        &chat,
                        config.max_images,
                        config.max_image_bytes,
                        config.image_types.as_deref(),
                    ) {
                        Ok(images) if images.is_empty() => {
                            chat::put_chat(&mut req, chat);
                            return inner.call(req).await;
                        }
                        Ok(images) => (chat, images),
                        Err(err) => return Ok(err.into_response()),
                    }
                }
            };
            let has_tools = chat.tools.as_ref().is_some_and(|t| !t.is_empty());
            let native = config.sees_images(&chat.model)
                && (config.models.is_some() || (config.pass_through_vision && !has_tools));
            if native {
                let report = VisionReport {
                    images: images.len(),
                    ..VisionReport::default()
                };
                if config.models.is_some() {
                    image::hoist_tool_images(&mut chat);
                }
                chat::put_chat(&mut req, chat);
                req.extensions_mut().insert(report);
                let mut response = inner.call(req).await?;
                response.extensions_mut().insert(report);
                return Ok(response);
            }
            let started = Instant::now();
            let (requests, unique_of) = plan(&mut chat, &images, &prepared.keyer);
            let stream_early = chat.is_stream() && config.stream_keepalive;
            let mut describe = describe_all(describer, requests, config.concurrency);
            let pending = Pending {
                req,
                chat,
                images,
                unique_of,
                prepared: prepared.clone(),
                started,
            };
            let outcomes = if stream_early {
                match tokio::time::timeout(prepared.config.keepalive_after(), &mut describe).await {
                    Ok(outcomes) => outcomes,
                    Err(_) => return Ok(stream::commit_early(pending, describe, inner)),
                }
            } else {
                describe.await
            };
            let Applied {
                req,
                report,
                degraded,
            } = match pending.apply(outcomes) {
                Ok(applied) => applied,
                Err(err) => return Ok(err.into_response()),
            };
            let mut response = inner.call(req).await?;
            Applied::mark(report, degraded, &mut response);
            Ok(response)
        })
    }
}
