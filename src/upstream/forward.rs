//! Sending a chat request upstream and turning the successful answer into a response: the
//! attempt loop (with [`retry`](super::retry) deciding), reading whole answers, and the
//! streamed response holding its slot.

use super::error_map::{map_error_status, map_send_error};
use super::keys::{KeyError, KeyLease};
use super::retry::{self, RetryReason};
use super::shared_cap::{self, SharedCap, SharedError};
use super::slots::{Slot, SlotError};
use super::{ResolvedModel, Upstream, UpstreamBody, UpstreamTiming};
use crate::chat::{self, ChatRequest};
use crate::error::ProxyError;
use crate::replica::FailureMode;
use crate::telemetry;
use crate::usage::{find_usage, FoundUsage, UsageSlot};
use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The response header naming the model that served the answer (the requested one, or the
/// fallback that answered in its place).
pub const SERVED_MODEL: &str = "x-hunyuan-proxy-model";

/// [`SERVED_MODEL`] as a header name made at compile time (a `&str` name is checked again on
/// every insert).
const SERVED_MODEL_HEADER: HeaderName = HeaderName::from_static(SERVED_MODEL);

/// A successful upstream answer.
pub(super) enum Answer {
    /// A streamed answer whose body is still to come; holds the concurrency slot, and the
    /// attempt's span (open until the body ends).
    Stream(reqwest::Response, Slot, telemetry::Attempt),
    /// The upstream's safety refusal as the proxy's own answer ([`refusal`]); never
    /// returned by [`Upstream::send`].
    Refused {
        /// `application/json`, or `text/event-stream` for a streamed request.
        content_type: HeaderValue,
        /// The answer.
        body: Bytes,
    },
    /// A whole answer, read before anything reached the client (its slot is free again).
    Whole {
        /// The upstream's content type.
        content_type: HeaderValue,
        /// The body.
        body: Bytes,
        /// What the search for its `usage` found, when the attempt's trace already made it
        /// (`None`: not searched yet).
        found: Option<Option<FoundUsage>>,
    },
}

/// A whole answer's response, its `usage` put into `usage` (`found`: what a search already
/// found; `None`: search now).
fn whole_response(
    content_type: HeaderValue,
    body: Bytes,
    found: Option<Option<FoundUsage>>,
    usage: Option<&UsageSlot>,
) -> Response<Body> {
    if let Some(slot) = usage {
        if let Some(found) = found.unwrap_or_else(|| find_usage(&body)) {
            slot.set_usage(found);
        }
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("static response parts are valid")
}

/// Why an upstream attempt failed, kept until it is known whether to retry.
enum Failure {
    /// An error status.
    Status(reqwest::Response),
    /// The request could not be sent or answered.
    Send(reqwest::Error),
    /// The answer broke off while being read.
    Error(ProxyError),
}

/// A model's attempts that failed, and whether its fallback models may be tried (the failure
/// was the model's: 429, 5xx, a timeout, a broken answer).
struct Failed {
    error: ProxyError,
    fallback: bool,
}

impl Failed {
    /// A failure another model would not fix (the queue, the keys, a client error).
    fn last(error: ProxyError) -> Self {
        Failed {
            error,
            fallback: false,
        }
    }

    /// A failure of the model: its fallbacks may be tried.
    fn model(error: ProxyError) -> Self {
        Failed {
            error,
            fallback: true,
        }
    }
}

impl Upstream {
    /// Sends `chat` to its model, then, while the failure is the model's (429, 5xx, timeout)
    /// and before any byte reached the client, to each of its `fallback_models` in order.
    /// `chat.model` names the model that answered (or the last one tried).
    pub(super) async fn send(
        &self,
        chat: &mut ChatRequest,
        raw: Option<Bytes>,
    ) -> Result<(Answer, UpstreamTiming), ProxyError> {
        let mut failed = match self.send_model(chat, raw, None).await {
            Ok(answer) => return Ok(answer),
            Err(failed) => failed,
        };
        let primary = chat.model.clone();
        let fallbacks = self
            .inner
            .fallbacks
            .get(&primary)
            .map_or(&[][..], Vec::as_slice);
        for model in fallbacks {
            if !failed.fallback {
                break;
            }
            tracing::warn!(
                from = %primary,
                to = %model,
                "the model failed before its answer started; trying its fallback"
            );
            metrics::counter!(crate::metrics::names::UPSTREAM_FALLBACKS).increment(1);
            chat.model.clone_from(model);
            // The client's bytes name the primary: the request is serialized again.
            match self.send_model(chat, None, Some("fallback")).await {
                Ok(answer) => return Ok(answer),
                Err(next) => failed = next,
            }
        }
        Err(failed.error)
    }

    /// Waits for a free upstream slot in the bounded queue, counting refusals: a lease of the
    /// shared cap when there is one, else (or while Redis is away) an in-process slot.
    async fn acquire_slot(&self) -> Result<Slot, ProxyError> {
        let Some(shared) = &self.inner.shared else {
            return self.inner.slots.acquire().await.map_err(rejected);
        };
        let keys = &self.inner.keys;
        match shared.acquire(|| shared_cap::any_key(keys)).await {
            Ok(permit) => Ok(Slot::shared(permit)),
            Err(SharedError::Slot(err)) => Err(rejected(err)),
            Err(SharedError::Unavailable) => self.local_slot(shared).await,
        }
    }

    /// Redis did not answer: an in-process slot in local mode (the cap is per replica until
    /// Redis returns), 503 in closed mode.
    async fn local_slot(&self, shared: &Arc<SharedCap>) -> Result<Slot, ProxyError> {
        let redis = shared.redis();
        match redis.failure() {
            FailureMode::Local => {
                redis.fallback("upstream_cap");
                let slot = self.inner.slots.acquire().await.map_err(rejected)?;
                Ok(slot.with_claim(shared.claim()))
            }
            FailureMode::Closed => {
                redis.fallback("closed");
                Err(ProxyError::Unavailable {
                    message: "the shared state store (Redis) is unavailable and redis_failure \
                              is \"closed\"; retry shortly"
                        .into(),
                })
            }
        }
    }

    /// The key of the next attempt. With an in-process slot: the pool's least-loaded key with
    /// room, waiting until `deadline`. With a shared lease: the lease's key while it is usable
    /// and untried, else (the lease given back first) a lease on another such key.
    async fn lease_key(
        &self,
        slot: &mut Option<Slot>,
        tried: &[bool],
        deadline: Instant,
    ) -> Result<Result<KeyLease, KeyError>, ProxyError> {
        let keys = &self.inner.keys;
        let (Some(shared), Some(current)) =
            (&self.inner.shared, slot.as_ref().and_then(Slot::shared_key))
        else {
            return Ok(keys.lease(tried, deadline).await);
        };
        let candidates = match keys.candidates(tried) {
            Ok(candidates) => candidates,
            Err(err) => return Ok(Err(err)),
        };
        if candidates.contains(&current) {
            return Ok(Ok(keys.lease_index(current)));
        }
        *slot = None;
        let moved = shared
            .wait(|| keys.candidates(tried).unwrap_or_default(), deadline)
            .await;
        match moved {
            None => Ok(Err(KeyError::Busy)),
            Some(Ok(permit)) => {
                let index = permit.key();
                *slot = Some(Slot::shared(permit));
                Ok(Ok(keys.lease_index(index)))
            }
            Some(Err(_)) => {
                *slot = Some(self.local_slot(shared).await?);
                Ok(keys.lease(tried, deadline).await)
            }
        }
    }

    /// Sends `chat` and returns the upstream's successful answer: a stream holding its
    /// concurrency slot and key, or a whole body already read. Retries, before any byte of the
    /// answer can have reached the client, as the [`RetryPolicy`](super::retry::RetryPolicy)
    /// says; a key refused (401/403), rate-limited (429) or unreachable is left for another key
    /// of the pool at once, while one is left. A 402 (the model is not enabled for the key) is
    /// answered at once, with no key cooled down.
    async fn send_model(
        &self,
        chat: &mut ChatRequest,
        raw: Option<Bytes>,
        mut reason_for_attempt: Option<&'static str>,
    ) -> Result<(Answer, UpstreamTiming), Failed> {
        let stripped = chat.strip_override_fields();
        // The client's own bytes when nobody changed the request and nothing had to be
        // stripped; otherwise the request serialized once.
        let body = match raw {
            Some(bytes) if stripped == 0 => bytes,
            _ => chat::to_json_bytes(chat),
        };
        let stream = chat.is_stream();
        let slot = self.acquire_slot().await.map_err(Failed::last)?;
        let started = Instant::now();
        let mut attempts = self.inner.retry.start(started);
        let keys = &self.inner.keys;
        let mut tried = vec![false; keys.len()];
        let mut slot = Some(slot);
        let mut attempt = 0;
        loop {
            let deadline = started + self.inner.queue_timeout;
            let leased = self
                .lease_key(&mut slot, &tried, deadline)
                .await
                .map_err(Failed::last)?;
            let lease = match leased {
                Ok(lease) => {
                    if let Some(slot) = &slot {
                        slot.use_key(lease.index());
                    }
                    lease
                }
                Err(KeyError::AllTried) => {
                    // The untried key was taken out meanwhile: every key again.
                    tried.fill(false);
                    continue;
                }
                Err(err) => return Err(Failed::last(key_error(err))),
            };
            let sent_at = Instant::now();
            let limit = attempts.limit(sent_at);
            attempt += 1;
            let span = telemetry::attempt_span(
                &chat.model,
                &self.inner.chat_endpoint,
                stream,
                attempt,
                reason_for_attempt.take(),
            );
            if telemetry::captures_content(&span) {
                telemetry::record_input_messages(&span, &body);
            }
            let mut request = self.build_request(body.clone(), stream, lease.auth());
            let recording = telemetry::inject_context(&span, request.headers_mut());
            // Not entered while it is polled: the span's parent is set, nothing inside logs,
            // and it ends when dropped (after the whole answer, or with the stream's body).
            let sent = tokio::time::timeout(limit.limit, self.inner.client.execute(request));
            let outcome = match sent.await {
                Err(_) => {
                    telemetry::record_failure(&span, None, "timeout");
                    tracing::warn!("the upstream's answer did not start in time");
                    return Err(Failed::model(ProxyError::GatewayTimeout(limit.reported)));
                }
                Ok(outcome) => outcome,
            };
            let (reason, retry_after, failure) = match outcome {
                Ok(response) if response.status().is_success() => {
                    let timing = UpstreamTiming {
                        time_to_headers: started.elapsed(),
                    };
                    if stream && is_event_stream(&response) {
                        let slot = slot
                            .take()
                            .expect("held until the answer")
                            .with_lease(lease);
                        let attempt = telemetry::Attempt {
                            span,
                            sent_at: sent_at.into_std(),
                            recording,
                        };
                        return Ok((Answer::Stream(response, slot, attempt), timing));
                    }
                    let content_type = response
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .cloned()
                        .unwrap_or(HeaderValue::from_static("application/json"));
                    match read_whole(response, self.inner.read_timeout).await {
                        Ok(body) if is_json(&body) => {
                            let mut found = None;
                            if recording {
                                // One search for `usage`, for the trace and accounting alike.
                                let usage = find_usage(&body);
                                let facts = telemetry::AnswerFacts::of_answer(
                                    &body,
                                    usage.as_ref().map(|f| f.usage),
                                );
                                found = Some(usage);
                                telemetry::record_answer(&span, &facts);
                                if telemetry::captures_content(&span) {
                                    telemetry::record_output_messages(&span, &body);
                                }
                            }
                            let answer = Answer::Whole {
                                content_type,
                                body,
                                found,
                            };
                            return Ok((answer, timing));
                        }
                        Ok(_) => {
                            tracing::warn!("the upstream's answer is not whole JSON (cut short?)");
                            (
                                Some(RetryReason::BrokenBody),
                                None,
                                Failure::Error(ProxyError::BadGateway {
                                    message: "the upstream's answer ended early or is not JSON"
                                        .into(),
                                }),
                            )
                        }
                        Err(err @ ProxyError::GatewayTimeout(_)) => return Err(Failed::model(err)),
                        Err(err) => (Some(RetryReason::BrokenBody), None, Failure::Error(err)),
                    }
                }
                Ok(response) => (
                    RetryReason::of_status(response.status()),
                    retry::retry_after(response.headers()),
                    Failure::Status(response),
                ),
                Err(err) if err.is_connect() => {
                    (Some(RetryReason::Connect), None, Failure::Send(err))
                }
                Err(err) => (None, None, Failure::Send(err)),
            };
            match &failure {
                Failure::Status(response) => {
                    let status = response.status();
                    telemetry::record_failure(&span, Some(status.as_u16()), status.as_str());
                }
                Failure::Send(err) if err.is_connect() => {
                    telemetry::record_failure(&span, None, "connect")
                }
                Failure::Send(_) => telemetry::record_failure(&span, None, "send"),
                Failure::Error(err) => telemetry::record_failure(&span, None, err.kind()),
            }
            drop(span);
            // The key's own trouble: try another key at once, while one is left.
            let refused = match &failure {
                // A 402 is about the model, not the key (TokenHub: the model is not enabled
                // for the key, other models still work): no cooldown, no other key.
                Failure::Status(response) => matches!(response.status().as_u16(), 401 | 403)
                    .then(|| response.status().as_u16()),
                _ => None,
            };
            if let Some(status) = refused {
                keys.cool_down(lease.index(), status);
            }
            let key_trouble = refused.is_some()
                || matches!(
                    reason,
                    Some(RetryReason::TooManyRequests | RetryReason::Connect)
                );
            if key_trouble && keys.len() > 1 {
                tried[lease.index()] = true;
                if keys.has_untried(&tried) {
                    let label = match refused {
                        Some(_) => "key_refused",
                        None => reason.map_or("other", RetryReason::label),
                    };
                    tracing::warn!(
                        key = lease.index(),
                        reason = label,
                        "moving the upstream request to another key"
                    );
                    metrics::counter!("hunyuan_proxy_upstream_retries_total", "reason" => "key_switch")
                        .increment(1);
                    reason_for_attempt = Some("key_switch");
                    continue;
                }
                // Every key had its turn: the usual retry rules, on any key again.
                tried.fill(false);
            }
            drop(lease);
            let retry = reason.and_then(|reason| {
                let wait =
                    attempts.retry(reason, retry_after, Instant::now(), retry::clock_jitter())?;
                Some((reason.label(), wait))
            });
            let Some((reason, wait)) = retry else {
                return Err(match failure {
                    Failure::Status(response) => {
                        let status = response.status();
                        let error =
                            map_error_status(response, self.inner.read_timeout, &chat.model).await;
                        Failed {
                            error,
                            fallback: status.as_u16() == 429 || status.is_server_error(),
                        }
                    }
                    Failure::Send(err) => Failed {
                        error: map_send_error(&err, self.inner.read_timeout),
                        fallback: err.is_timeout(),
                    },
                    Failure::Error(err) => Failed::model(err),
                });
            };
            tracing::warn!(
                attempt = attempts.retries(),
                reason,
                wait_ms = wait.as_millis() as u64,
                "retrying the upstream request"
            );
            metrics::counter!("hunyuan_proxy_upstream_retries_total", "reason" => reason)
                .increment(1);
            drop(failure);
            reason_for_attempt = Some(reason);
            tokio::time::sleep(wait).await;
        }
    }

    fn build_request(
        &self,
        body: Bytes,
        stream: bool,
        auth: Option<&HeaderValue>,
    ) -> reqwest::Request {
        // Built directly rather than through `RequestBuilder`, whose `header` calls convert
        // and check each value again on every request.
        let mut request =
            reqwest::Request::new(reqwest::Method::POST, self.inner.chat_endpoint.clone());
        let headers = request.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(auth) = auth {
            headers.insert(header::AUTHORIZATION, auth.clone());
        }
        if stream {
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            );
        }
        *request.body_mut() = Some(body.into());
        request
    }

    /// Sends `chat` and builds the client's response: the stream relayed as it comes, or the
    /// whole answer, with [`UpstreamTiming`] and [`ResolvedModel`] in its extensions.
    ///
    /// With a [`UsageSlot`], the upstream's `usage` goes into it: found in the whole answer,
    /// or in the stream's chunks as they pass.
    pub(super) async fn forward(
        &self,
        mut chat: ChatRequest,
        raw: Option<Bytes>,
        usage: Option<UsageSlot>,
    ) -> Result<Response<Body>, ProxyError> {
        let started = Instant::now();
        let (answer, timing) = match self.send(&mut chat, raw).await {
            Ok(sent) => sent,
            Err(ProxyError::ContentFiltered { model }) => {
                let timing = UpstreamTiming {
                    time_to_headers: started.elapsed(),
                };
                metrics::counter!("hunyuan_proxy_upstream_refusals_total").increment(1);
                (refusal(&chat, &model), timing)
            }
            Err(err) => return Err(err),
        };
        let model = chat.model.clone();
        let served = HeaderValue::from_str(&model).ok();
        let mut out = match answer {
            Answer::Stream(response, slot, attempt) => {
                let mut body = UpstreamBody::new(
                    Box::pin(response.bytes_stream()),
                    slot,
                    self.inner.read_timeout,
                )
                .usage_into(usage);
                if attempt.recording {
                    body.trace(telemetry::AnswerTrace::new(attempt.span, attempt.sent_at));
                }
                Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "text/event-stream")
                    .header(header::CACHE_CONTROL, "no-cache")
                    .body(Body::new(body))
                    .expect("static response parts are valid")
            }
            Answer::Whole {
                content_type,
                body,
                found,
            } => whole_response(content_type, body, found, usage.as_ref()),
            Answer::Refused { content_type, body } => {
                whole_response(content_type, body, None, usage.as_ref())
            }
        };
        if let Some(served) = served {
            out.headers_mut().insert(SERVED_MODEL_HEADER, served);
        }
        out.extensions_mut().insert(timing);
        out.extensions_mut().insert(ResolvedModel(model));
        Ok(out)
    }
}

/// The upstream's safety refusal (TokenHub's 451) as a chat answer: no text and
/// `finish_reason: "content_filter"`, streamed when `chat` asked for a stream, so that each
/// dialect renders its own refusal (Anthropic `stop_reason: "refusal"`, Responses `incomplete`
/// with reason `content_filter`). Nothing of the upstream's text is passed on.
fn refusal(chat: &ChatRequest, model: &str) -> Answer {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let id = format!("chatcmpl-refused-{created}");
    if !chat.is_stream() {
        let body = serde_json::json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ""},
                         "finish_reason": "content_filter"}],
        });
        return Answer::Refused {
            content_type: HeaderValue::from_static("application/json"),
            body: Bytes::from(body.to_string()),
        };
    }
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let chunk = serde_json::json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        format!("data: {chunk}\n\n")
    };
    let events = chunk(
        serde_json::json!({"role": "assistant", "content": ""}),
        None,
    ) + &chunk(serde_json::json!({}), Some("content_filter"))
        + "data: [DONE]\n\n";
    Answer::Refused {
        content_type: HeaderValue::from_static("text/event-stream"),
        body: Bytes::from(events),
    }
}

/// A queue refusal as the client's error, counted by its reason.
fn rejected(err: SlotError) -> ProxyError {
    if let Some(reason) = err.rejection_reason() {
        metrics::counter!("hunyuan_proxy_upstream_queue_rejections_total", "reason" => reason)
            .increment(1);
    }
    ProxyError::from(err)
}

fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// A key that could not be had, as the client's error.
fn key_error(err: KeyError) -> ProxyError {
    match err {
        KeyError::AllCooling(wait) => {
            tracing::warn!(
                back_in_secs = wait.as_secs(),
                "every upstream key is cooling down"
            );
            ProxyError::Unavailable {
                message: format!(
                    "every upstream API key was refused by the upstream (401/403) and is \
                     cooling down; the first is back in {} s",
                    wait.as_secs_f64().ceil() as u64
                ),
            }
        }
        KeyError::AllTried | KeyError::Busy => ProxyError::RateLimited {
            message: "waited too long for a free upstream slot; retry shortly".into(),
            retry_after: Some(Duration::from_secs(1)),
        },
    }
}

/// Whether `body` is one whole JSON value (a close-delimited answer cut short is not).
fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

/// A whole answer's body, read within `timeout`: 504 when it is not, 502 when it breaks off.
pub(super) async fn read_whole(
    response: reqwest::Response,
    timeout: Duration,
) -> Result<Bytes, ProxyError> {
    match tokio::time::timeout(timeout, response.bytes()).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(err)) if err.is_timeout() => Err(ProxyError::GatewayTimeout(timeout)),
        Ok(Err(_)) => Err(ProxyError::BadGateway {
            message: "the upstream's answer broke off".into(),
        }),
        Err(_) => Err(ProxyError::GatewayTimeout(timeout)),
    }
}
