//! Message fixing: every OpenAI-valid conversation becomes one Hunyuan accepts, and Hunyuan's
//! answers come back in OpenAI's shape.
//!
//! [`FixLayer`] is a tower layer usable alone on any axum route or in the ready-made stack.
//! On the way in it takes the parsed [`ChatRequest`](crate::chat::ChatRequest) (from request
//! extensions, or by reading the body) and runs [`fix_request`]: a set of small named rules
//! chosen by a [`FixPolicy`] (the legacy endpoint's rules by default, or TokenHub's). Each
//! rule that changes something is recorded in a [`FixReport`], put into the request's and the
//! response's extensions for metrics, and logged at `debug` (rule names only, never message
//! text).
//!
//! | rule | what it does |
//! |---|---|
//! | `fields` | drops penalties, `parallel_tool_calls`, `strict`, `logit_bias`, `logprobs`, `n: 1` (legacy: also `reasoning_effort` and history reasoning); 400 for `n > 1` and out-of-range `temperature`/`top_p`/`seed` |
//! | `tool_names` | rewrites tool names outside `[A-Za-z0-9_-]`, maps them back in answers |
//! | `system` | `developer` → `system`; one system message at index 0 |
//! | `alternation` | merges repeated roles, bridges tool → user, opens with a user turn, turns orphan tool results into user text |
//! | `ending` | a trailing assistant (prefill) gets a "continue" user turn, or is folded into the last question |
//! | `empty_content` | fills empty content (a sentence naming the tools for tool-call turns) |
//! | `length` | at most `max_messages` (40), dropping the oldest whole turns |
//! | `content_shape` | flattens text-only part lists for text models; adds a text part beside lone images |
//!
//! On the way out it wraps the answer in a [`FixBody`], which rewrites the event stream event
//! by event: OpenAI-shaped tool-call deltas, stop strings cut, tool names mapped back, `note`
//! dropped, and a usage chunk synthesized (with *estimated* counts) when the client asked for
//! one and the upstream sent none (under TokenHub, usage the client did not ask for is
//! dropped). Events that need none of this go out as their original
//! bytes.
//!
//! The fixer is idempotent: fixing a fixed conversation changes nothing.
//!
//! ```
//! use axum::body::Body;
//! use hunyuan_proxy::chat::{ParsedChat, Role};
//! use hunyuan_proxy::fix::{FixConfig, FixLayer, FixReport};
//! use http::{Request, Response};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The inner service sees the fixed request in its extensions.
//! let upstream = service_fn(|req: Request<Body>| async move {
//!     let chat = req.extensions().get::<ParsedChat>().unwrap();
//!     let roles: Vec<_> = chat.messages.iter().map(|m| m.role.as_str()).collect();
//!     Ok::<_, std::convert::Infallible>(Response::new(Body::from(roles.join(","))))
//! });
//! let service = ServiceBuilder::new()
//!     .layer(FixLayer::new(FixConfig::default())?)
//!     .service(upstream);
//!
//! let body = r#"{"model": "hunyuan-turbos-latest", "messages": [
//!     {"role": "user", "content": "Hi"},
//!     {"role": "developer", "content": "Be brief."},
//!     {"role": "assistant", "content": "Once upon a time"}
//! ]}"#;
//! let response = service.oneshot(Request::post("/v1/chat/completions").body(Body::from(body))?).await?;
//! let report = response.extensions().get::<FixReport>().unwrap().clone();
//! assert_eq!(report.rules, ["system", "ending"]);
//! let bytes = axum::body::to_bytes(response.into_body(), 1024).await?;
//! assert_eq!(&bytes[..], b"system,user,assistant,user");
//! # Ok(())
//! # }
//! ```

mod body;
mod config;
mod layer;
mod rewrite;
mod rules;
mod service;
mod splice;

/// The response future of [`Fix`]: the boxed future the dialect ingresses share.
pub use crate::ingress::ResponseFuture;
pub use body::FixBody;
pub use config::{
    FixConfig, FixPolicy, PrefillMode, Rule, RuleSwitches, DEFAULT_CONTINUE_TEXT,
    DEFAULT_FOLD_TEXT, DEFAULT_MAX_MESSAGES,
};
pub use layer::FixLayer;
pub use rewrite::{asks_for_usage, EventAction, ResponsePlan, StreamRewriter};
pub use rules::{
    fix_request, fix_request_with_names, FixReport, ToolNameMap, BRIDGE_ASSISTANT_TEXT,
    EMPTY_ASSISTANT_TEXT, EMPTY_TOOL_TEXT, EMPTY_USER_TEXT, IMAGE_ONLY_TEXT, OPENING_USER_TEXT,
};
pub use service::Fix;
