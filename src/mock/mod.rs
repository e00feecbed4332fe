//! An in-repo mock of Hunyuan's legacy OpenAI-compatible endpoint (feature `mock`).
//!
//! [`MockHunyuan`] is an axum server on `127.0.0.1:<free port>` that behaves like
//! `https://api.hunyuan.cloud.tencent.com/v1` as far as `docs/hunyuan-api.md` knows it: it
//! refuses what Hunyuan refuses (rules R1–R12, with Hunyuan's error envelope, see
//! [`validate`]), answers with Hunyuan's quirks (a top-level `note`, `role` and
//! `reasoning_content` in every streamed delta, no `usage` in streams, repeated tool-call ids,
//! stop strings kept), records every request, and can be told to misbehave ([`Fault`]).
//! Answers are deterministic and nothing is fetched from the network. It serves the integration
//! tests, the benches, the proxy's `--demo` mode and users' own tests.
//!
//! **TokenHub mode** ([`MockConfig::tokenhub`], [`MockHunyuan::start_tokenhub`]) stands in for
//! TokenHub instead: its models, each model's rules and TokenHub's error envelope and texts
//! (see [`validate_tokenhub`]), 402 for models not enabled for the key, `/v1/models` with a
//! `status` per model, and images ignored by the models that cannot see. The legacy mode stays
//! the default of [`MockConfig::default`] and [`MockHunyuan::start`].
//!
//! Routes (everything under `/v1`, as [`MockHunyuan::base_url`] says):
//! - `POST /v1/chat/completions`: validation, then a deterministic answer (JSON or SSE).
//! - `GET /v1/models`: the configured models in OpenAI's list shape.
//! - anything else: 404 with a Hunyuan-style envelope (the real body is unknown); a known path
//!   with the wrong method: 405.
//!
//! Both need `Authorization: Bearer <key>`: any non-empty key when [`MockConfig::api_key`] is
//! `None`, that key otherwise. A missing or wrong key is answered with 401 and a Hunyuan-style
//! envelope, `code` `"401"`. **Assumption A**: Hunyuan's real 401 body is unknown.
//!
//! What a valid chat request is answered with:
//! - **vision models** (name contains `vision`), when the last user message has images: one
//!   line per image, in order, `Description of image <12 hex>: …`, the hex being the start of
//!   the SHA-256 of the decoded bytes (data URLs) or of the URL string (http(s) URLs).
//! - **text models**, when the last message is from the user and `tools` are offered (and
//!   `tool_choice` is not `"none"`): a call to a tool with id `call_<20 [a-z0-9]>` derived
//!   from the request, arguments holding every `required` property of the tool's schema
//!   (strings get the last user text, other types a zero value), a short `content` beside the
//!   call, and `finish_reason: "tool_calls"`. The tool is the one `tool_choice` names, else the
//!   first offered, unless the last user text steers it (so an agent's tool loop is
//!   deterministic):
//!   - `Use <name>`, `<name>` an offered tool (followed by a character that cannot be part of
//!     a name, or the end): that tool is called, and a required string property `P` takes
//!     the value written as `P=<value>` after it (to the end of the line, trailing spaces cut;
//!     `P` at the start or after a character that cannot be part of a name), else the text.
//!     E.g. `Use Bash with command=echo hi` calls `Bash` with `{"command": "echo hi"}`.
//!   - `Use no tool`: a text answer as below (not when `tool_choice` is `"required"`).
//!   - the last such phrase of the text wins (Claude Code puts its `<system-reminder>` texts
//!     before the prompt).
//! - otherwise `Echo: <text of the last user message>`, or after a tool result `Echo: <the
//!   first 200 characters of the tool message>`, `finish_reason: "stop"`.
//! - models whose name contains `thinking` or `t1` also get `reasoning_content`
//!   (`Thinking about: <last user text>`).
//! - `stop`: the content is cut *after* the first stop string found (Hunyuan keeps it); under
//!   [`MockPolicy::TokenHub`] it is cut before it, as TokenHub does.
//! - `id` is 32 hex digits derived from the request; `created` is the current time.
//!
//! ```
//! use hunyuan_proxy::mock::MockHunyuan;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mock = MockHunyuan::start().await;
//! let request = serde_json::json!({
//!     "model": "hunyuan-turbos-latest",
//!     "messages": [{"role": "user", "content": "hello"}],
//! });
//! let response = reqwest::Client::new()
//!     .post(format!("{}/chat/completions", mock.base_url()))
//!     .bearer_auth("sk-test")
//!     .header("content-type", "application/json")
//!     .body(request.to_string())
//!     .send()
//!     .await
//!     .unwrap();
//! let answer: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
//! assert_eq!(answer["choices"][0]["message"]["content"], "Echo: hello");
//! assert_eq!(mock.chat_requests().len(), 1);
//! mock.stop().await;
//! # }
//! ```

mod answer;
mod server;
mod tokenhub;
mod validate;

pub use server::MockHunyuan;
pub use tokenhub::{
    developer_role_message, hy_effort_message, kimi_k3_sampling_message, kimi_replay_message,
    tokenhub_rejection, validate_tokenhub, TokenHubMode, MAX_IMAGES, MAX_IMAGE_BYTES, MAX_STOPS,
    MSG_DEEPSEEK_REPLAY, MSG_FILTERED, MSG_IMAGE_FORMAT, MSG_IMAGE_TOO_LARGE, MSG_INVALID_KEY,
    MSG_KIMI_K3_EFFORT, MSG_MINIMAX_THINKING, MSG_NOT_ENABLED, MSG_RATE_LIMITED,
    MSG_TOOL_CHOICE_AUTO_ONLY, MSG_TOOL_CHOICE_THINKING, MSG_TOO_MANY_IMAGES, MSG_TOO_MANY_STOPS,
    SAW_NO_IMAGE, TOKENHUB_MODELS,
};
pub use validate::{
    validate, Rejection, CODE_BAD_FORMAT, CODE_INVALID, MAX_MESSAGES, MSG_BAD_FORMAT,
    MSG_EMPTY_CONTENT, MSG_ROLE_ORDER, MSG_SYSTEM_FIRST,
};

use std::time::Duration;

/// The models of `docs/hunyuan-api.md`'s table, legacy and TokenHub: the default
/// [`MockConfig::models`].
pub const DEFAULT_MODELS: &[&str] = &[
    "hunyuan-2.0-thinking-20251109",
    "hunyuan-2.0-instruct-20251111",
    "hunyuan-turbos-latest",
    "hunyuan-t1-latest",
    "hunyuan-vision-1.5-instruct",
    "hunyuan-vision",
    "hunyuan-turbos-vision",
    "hunyuan-t1-vision-20250916",
    "hy3-preview",
    "hy3",
    "hy4",
    "hy-vision-2.0-instruct",
];

/// Which upstream's rules the mock enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MockPolicy {
    /// The legacy endpoint: every rule R1–R12 enforced (the strict default).
    #[default]
    Legacy,
    /// TokenHub: no role-order rule (R1) and no 40-message limit (R7); `reasoning_content` in
    /// history and `reasoning_effort` accepted (R4, R6 inverted); penalties still refused.
    /// Stop strings are cut before (not after) and a streamed request with
    /// `stream_options.include_usage` gets a final usage chunk. Error envelopes stay
    /// Hunyuan's legacy shape.
    TokenHub,
}

/// A misbehaviour the mock applies to chat requests (see [`MockHunyuan::set_fault`] and
/// [`MockHunyuan::fail_next`]). A faulty request is still recorded, and the fault comes before
/// authentication and validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 with a `Retry-After` header and an envelope (code `"429"`; text assumed).
    RateLimited {
        /// The `Retry-After` value in seconds.
        retry_after_secs: u64,
    },
    /// 500 with an envelope (code `"500"`; text assumed).
    ServerError,
    /// This status with an envelope (code: the status as a string); an invalid status gives 500.
    Status(u16),
    /// The normal answer, after this delay (headers and first byte alike).
    Delay(Duration),
    /// Never answers; the request ends when the client goes away (counted in
    /// [`MockHunyuan::cancelled`]).
    Hang,
    /// Streams: this many SSE events, then the connection is aborted (no `[DONE]`; a stream
    /// with no more events than this ends normally).
    /// Non-streamed: headers announce the full length, half the body is sent, then the
    /// connection is aborted. A request the mock refuses (401, 400) is refused normally.
    DropMidStream {
        /// How many events are sent before the connection is aborted.
        after_events: usize,
    },
    /// An HTTP/1.0-style answer whose end is the connection's close (no `Content-Length`,
    /// no chunking, `Connection: close`), cut short but closed cleanly, so a client sees a
    /// normal end of body. Streams: this many SSE events (no `[DONE]` unless all events fit);
    /// non-streamed: half the body. A request the mock refuses is refused normally.
    CloseDelimitedCut {
        /// How many events are sent before the connection is closed.
        after_events: usize,
    },
}

/// How a [`MockHunyuan`] behaves.
///
/// ```
/// use hunyuan_proxy::mock::{MockConfig, MockPolicy};
///
/// let config = MockConfig::default()
///     .with_api_key("sk-test")
///     .with_policy(MockPolicy::TokenHub)
///     .with_models(["hy3"]);
/// assert_eq!(config.models, ["hy3"]);
/// ```
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// The only bearer key accepted; `None` accepts any non-empty key.
    pub api_key: Option<String>,
    /// The models served; any other `model` is refused with 400 (code `"1001"`, text
    /// invented). Default: [`DEFAULT_MODELS`].
    pub models: Vec<String>,
    /// Which rules are enforced. Default: [`MockPolicy::Legacy`].
    pub policy: MockPolicy,
    /// A pause before each SSE event of a streamed answer (default zero), to make streams slow
    /// enough to observe concurrency or timeouts.
    pub chunk_delay: Duration,
    /// Standing faults by bearer key: a chat request with this key gets this fault (before any
    /// queued or standing one), e.g. 401 for a revoked key or 429 for an account at its limit.
    pub key_faults: Vec<(String, Fault)>,
    /// Standing faults by model: a chat request for this model gets this fault (after a key
    /// fault, before any queued or standing one), e.g. 500 for a model that is down.
    pub model_faults: Vec<(String, Fault)>,
    /// TokenHub mode (see [`MockConfig::tokenhub`]): TokenHub's per-model rules and error
    /// envelope instead of Hunyuan's; `None` (the default) for the legacy endpoint's.
    pub tokenhub: Option<TokenHubMode>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            api_key: None,
            models: DEFAULT_MODELS.iter().map(|m| (*m).to_owned()).collect(),
            policy: MockPolicy::Legacy,
            chunk_delay: Duration::ZERO,
            key_faults: Vec::new(),
            model_faults: Vec::new(),
            tokenhub: None,
        }
    }
}

impl MockConfig {
    /// A stand-in for TokenHub: [`TOKENHUB_MODELS`], [`MockPolicy::TokenHub`] and TokenHub mode,
    /// which enforces each model's rules with TokenHub's error envelope and texts (the table in
    /// [`validate_tokenhub`]), answers 401 [`MSG_INVALID_KEY`], 402 [`MSG_NOT_ENABLED`] for a
    /// [disabled](Self::with_disabled_model) model, lists `/v1/models` with a `status` per model
    /// ([offline](Self::with_offline_model) ones `"offline"`), gives faults TokenHub's envelope
    /// (a 429 [`MSG_RATE_LIMITED`], a 451 [`MSG_FILTERED`]) and ignores images on the models
    /// that cannot see.
    ///
    /// ```
    /// use hunyuan_proxy::mock::MockConfig;
    ///
    /// let config = MockConfig::tokenhub().with_disabled_model("deepseek-v4-pro");
    /// assert!(config.models.iter().any(|m| m == "hy4"));
    /// assert_eq!(config.tokenhub.unwrap().disabled_models, ["deepseek-v4-pro"]);
    /// ```
    pub fn tokenhub() -> Self {
        MockConfig {
            models: TOKENHUB_MODELS.iter().map(|m| (*m).to_owned()).collect(),
            policy: MockPolicy::TokenHub,
            tokenhub: Some(TokenHubMode::default()),
            ..MockConfig::default()
        }
    }

    /// TokenHub mode: answers chat requests for `model` with 402 [`MSG_NOT_ENABLED`] (the model
    /// is not enabled for the key). Turns TokenHub mode on when it is off.
    pub fn with_disabled_model(mut self, model: impl Into<String>) -> Self {
        self.tokenhub
            .get_or_insert_with(TokenHubMode::default)
            .disabled_models
            .push(model.into());
        self
    }

    /// TokenHub mode: lists `model` with `status: "offline"` and refuses chat requests for it.
    /// Turns TokenHub mode on when it is off.
    pub fn with_offline_model(mut self, model: impl Into<String>) -> Self {
        self.tokenhub
            .get_or_insert_with(TokenHubMode::default)
            .offline_models
            .push(model.into());
        self
    }

    /// Accepts only this bearer key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Serves these models only.
    pub fn with_models<I, M>(mut self, models: I) -> Self
    where
        I: IntoIterator<Item = M>,
        M: Into<String>,
    {
        self.models = models.into_iter().map(Into::into).collect();
        self
    }

    /// Enforces this policy's rules.
    pub fn with_policy(mut self, policy: MockPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Answers every chat request made with bearer `key` with `fault`.
    pub fn with_key_fault(mut self, key: impl Into<String>, fault: Fault) -> Self {
        self.key_faults.push((key.into(), fault));
        self
    }

    /// Answers every chat request for `model` with `fault`.
    pub fn with_model_fault(mut self, model: impl Into<String>, fault: Fault) -> Self {
        self.model_faults.push((model.into(), fault));
        self
    }

    /// Pauses this long before each SSE event.
    pub fn with_chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }
}

/// The `usage` the mock sent in one whole answer (a JSON body, or a stream's usage chunk):
/// what the proxy's usage accounting must add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentUsage {
    /// `prompt_tokens`.
    pub prompt_tokens: u64,
    /// `completion_tokens`.
    pub completion_tokens: u64,
    /// `prompt_tokens_details.cached_tokens` (0 in Hunyuan mode, which sends no details).
    pub cached_tokens: u64,
    /// `completion_tokens_details.reasoning_tokens` (0 in Hunyuan mode).
    pub reasoning_tokens: u64,
}

/// One request the mock received, as it arrived.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The method.
    pub method: http::Method,
    /// The path, without the query (e.g. `/v1/chat/completions`).
    pub path: String,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body as JSON; `None` when empty or not JSON.
    pub body: Option<serde_json::Value>,
}
