//! The Anthropic Messages ingress end to end: through the proxy to the strict mock Hunyuan.

use crate::common::*;
use base64::Engine as _;
use hunyuan_proxy::config::Secret;
use hunyuan_proxy::mock::Fault;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::time::Duration;

const TEXT_MODEL: &str = "hunyuan-2.0-thinking-20251109";

fn bash_tool() -> Value {
    json!({"name": "Bash", "description": "Run a command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
            "required": ["command"]}})
}

/// One Anthropic SSE event: its name and data.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_else(|| panic!("an event without a name: {e:?}"))
                .to_owned();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name, serde_json::from_str(data).unwrap())
        })
        .collect()
}

fn text_calls(t: &TestProxy) -> Vec<Value> {
    t.mock
        .chat_requests()
        .into_iter()
        .filter(|r| r["model"] == TEXT_MODEL)
        .collect()
}

#[tokio::test]
async fn a_plain_question_is_answered_as_a_message() {
    let t = TestProxy::start().await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 1000,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "say hi"}]}],
        "top_k": 5, "context_management": {"edits": []}, "output_config": {"effort": "high"}});
    let response = t.post("/v1/messages?beta=true", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-hunyuan-proxy-dropped"], "top_k");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["model"], "claude-sonnet-4-5");
    assert!(answer["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(
        answer["content"],
        json!([{"type": "text", "text": "Echo: say hi"}])
    );
    assert_eq!(answer["stop_reason"], "end_turn");
    assert!(answer["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let sent = text_calls(&t).pop().expect("the text model was asked");
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "You are Claude Code."})
    );
    assert!(!sent.to_string().contains("cache_control"));
    assert!(sent.get("top_k").is_none());
}

#[tokio::test]
async fn a_streamed_tool_call_arrives_as_input_json_deltas() {
    let t = TestProxy::start().await;
    let body = json!({"model": "claude-opus-4-1", "max_tokens": 32000, "stream": true,
        "tools": [bash_tool(),
            {"name": "DeferredToolPlaceholder", "description": "never call this tool",
             "input_schema": {"type": "object"}, "defer_loading": true},
            {"type": "web_search_20250305", "name": "web_search"}],
        "messages": [{"role": "user", "content": "list files"}]});
    let response = t.post("/v1/messages", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(
        response.headers()["x-hunyuan-proxy-dropped"],
        "tool:deferred, tool:web_search_20250305"
    );
    let text = response.text().await.unwrap();
    assert!(!text.contains("[DONE]"), "{text}");
    let events = events(&text);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.iter().filter(|n| **n == "message_start").count(), 1);
    assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"]);
    let start = &events[0].1["message"];
    assert!(start["usage"]["input_tokens"].as_u64().unwrap() > 0);
    // Blocks never interleave: each start is followed by its deltas and its stop.
    let mut open: Option<u64> = None;
    let mut input = String::new();
    let mut tool_id = None;
    for (name, data) in &events {
        match name.as_str() {
            "content_block_start" => {
                assert!(open.is_none(), "{text}");
                open = data["index"].as_u64();
                if data["content_block"]["type"] == "tool_use" {
                    assert_eq!(data["content_block"]["name"], "Bash");
                    tool_id = data["content_block"]["id"].as_str().map(str::to_owned);
                }
            }
            "content_block_delta" => {
                assert_eq!(data["index"].as_u64(), open, "{text}");
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "input_json_delta" => {
                        let piece = delta["partial_json"].as_str().unwrap();
                        assert!(!piece.is_empty());
                        input.push_str(piece);
                    }
                    "text_delta" => assert!(!delta["text"].as_str().unwrap().is_empty()),
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                assert_eq!(data["index"].as_u64(), open);
                open = None;
            }
            _ => {}
        }
    }
    let input: Value = serde_json::from_str(&input).unwrap();
    assert_eq!(input, json!({"command": "list files"}));
    assert!(tool_id.unwrap().starts_with("call_"));
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let sent = text_calls(&t).pop().unwrap();
    let tools = sent["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(
        tools[0]["function"]["parameters"],
        bash_tool()["input_schema"]
    );
}

#[tokio::test]
async fn a_tool_result_with_a_png_is_described_once_for_the_text_model() {
    let t = TestProxy::start().await;
    let png: Vec<u8> = (0..2000u32).map(|n| (n * 7) as u8).collect();
    let digest: String = Sha256::digest(&png)[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let data = base64::engine::general_purpose::STANDARD.encode(&png);
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
    "tools": [{"name": "Read", "input_schema": {"type": "object",
        "properties": {"file_path": {"type": "string"}}}}],
    "messages": [
        {"role": "user", "content": "look at shot.png"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Reading it."},
            {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"file_path": "shot.png"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}]},
            {"type": "text", "text": "What does it show?"}]}
    ]});
    let response = t.post("/v1/messages", &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["type"], "message", "{answer}");
    let requests = t.mock.chat_requests();
    let vision: Vec<_> = requests
        .iter()
        .filter(|r| r["model"].as_str().is_some_and(|m| m.contains("vision")))
        .collect();
    assert_eq!(vision.len(), 1);
    let sent = text_calls(&t).pop().unwrap();
    let messages = sent["messages"].as_array().unwrap();
    let tool = messages.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(tool["tool_call_id"], "call_1");
    assert!(
        tool["content"]
            .to_string()
            .contains(&format!("Description of image {digest}")),
        "{tool}"
    );
    assert_eq!(
        sent["messages"][1]["tool_calls"][0]["function"]["arguments"],
        "{\"file_path\":\"shot.png\"}"
    );
    assert!(sent.to_string().contains("What does it show?"));
}

#[tokio::test]
async fn thinking_is_shown_as_a_thinking_block_when_asked_for() {
    let t = TestProxy::start().await;
    let body = json!({"model": TEXT_MODEL, "max_tokens": 100, "stream": true,
        "thinking": {"type": "adaptive"},
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "earlier thoughts", "signature": "sig"},
                {"type": "text", "text": "ok"}]},
            {"role": "user", "content": "why?"}]});
    let response = t.post("/v1/messages", &body).await;
    assert_eq!(response.status(), 200);
    let events = events(&response.text().await.unwrap());
    let blocks: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d["content_block"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(blocks, ["thinking", "text"]);
    let deltas: Vec<&str> = events
        .iter()
        .filter(|(n, d)| n == "content_block_delta" && d["index"] == 0)
        .map(|(_, d)| d["delta"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(deltas.last(), Some(&"signature_delta"));
    assert!(deltas[..deltas.len() - 1]
        .iter()
        .all(|d| *d == "thinking_delta"));
    // Legacy: no reasoning in history, and no `thinking` field upstream.
    let sent = text_calls(&t).pop().unwrap();
    assert!(!sent.to_string().contains("earlier thoughts"));
    assert!(sent.get("thinking").is_none());
    // Without thinking asked, the reasoning stays hidden.
    let mut quiet = body.clone();
    quiet.as_object_mut().unwrap().remove("thinking");
    quiet["stream"] = json!(false);
    let answer: Value = t.post("/v1/messages", &quiet).await.json().await.unwrap();
    assert_eq!(answer["content"][0]["type"], "text");
}

#[tokio::test]
async fn prefill_repeated_users_and_a_mid_conversation_system_message_are_accepted() {
    let t = TestProxy::start().await;
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 100,
        "system": "top",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "<system-reminder>x</system-reminder>"}]},
            {"role": "user", "content": "hello"},
            {"role": "system", "content": "env: linux"},
            {"role": "assistant", "content": "Sure, "}]});
    let response = t.post("/messages", &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["type"], "message", "{answer}");
    let sent = text_calls(&t).pop().unwrap();
    assert_eq!(sent["messages"][0]["content"], "top\n\nenv: linux");
    assert_eq!(
        sent["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "system")
            .count(),
        1
    );
}

#[tokio::test]
async fn bad_input_is_an_anthropic_error_naming_the_field() {
    let t = TestProxy::start().await;
    for (body, needle) in [
        (json!({"model": "claude-x", "max_tokens": 5}), "messages"),
        (
            json!({"model": "claude-x", "messages": [{"role": "robot", "content": "hi"}]}),
            "messages.0.role",
        ),
        (
            json!({"model": "claude-x", "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png"}}]}]}),
            "messages.0.content.0.source.data",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
    ] {
        let response = t.post("/v1/messages", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert!(
            error["error"]["message"].as_str().unwrap().contains(needle),
            "{error}"
        );
    }
    let response = t
        .post_raw("/v1/messages", "application/json", b"{not json".to_vec())
        .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(t.mock.chat_requests().len(), 0);
}

#[tokio::test]
async fn auth_and_rate_limit_refusals_are_in_anthropic_shape() {
    let t = TestProxy::start_with(|c| {
        c.client_api_keys = vec![Secret::new("sk-client")];
    })
    .await;
    let body = json!({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let response = t.post("/v1/messages", &body).await;
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "authentication_error");
    let response = t
        .client
        .post(t.url("/v1/messages?beta=true"))
        .header("x-api-key", "sk-client")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A wrong method on the route is answered in the same shape.
    let response = t
        .client
        .get(t.url("/v1/messages"))
        .header("x-api-key", "sk-client")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    // The chat route keeps OpenAI's envelope.
    let response = t.post("/v1/chat/completions", &simple_chat(false)).await;
    expect_envelope(response, 401).await;
}

#[tokio::test]
async fn an_upstream_failure_mid_stream_is_an_error_event() {
    let t = TestProxy::start_with(|c| {
        c.upstream_retries = 0;
        c.request_timeout = 1;
        c.cascade.keepalive_after_ms = 50;
    })
    .await;
    // The vision call hangs: the stream is committed with keep-alives, then fails.
    t.mock.fail_next(1, Fault::Hang);
    let png = base64::engine::general_purpose::STANDARD.encode([1u8, 2, 3, 4, 5, 6, 7, 8]);
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
        "tools": [bash_tool()],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}]}]});
    let response = t.post("/v1/messages", &body).await;
    assert_eq!(response.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(20), response.text())
        .await
        .unwrap()
        .unwrap();
    let events = events(&text);
    assert_eq!(events[0].0, "message_start", "{text}");
    assert!(events.iter().any(|(n, _)| n == "ping"), "{text}");
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error", "{text}");
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(!text.contains("[DONE]"));
}

#[tokio::test]
async fn count_tokens_answers_without_calling_the_upstream() {
    let t = TestProxy::start().await;
    let body = json!({"model": "claude-sonnet-4-5", "tools": [bash_tool()],
        "messages": [{"role": "user", "content": "a fairly long question about the code base"}]});
    let response = t.post("/v1/messages/count_tokens?beta=true", &body).await;
    assert_eq!(response.status(), 200);
    let count: Value = response.json().await.unwrap();
    let n = count["input_tokens"].as_u64().unwrap();
    assert!(n > 10, "{count}");
    assert!(t.mock.chat_requests().is_empty());
    let response = t
        .post("/messages/count_tokens", &json!({"model": "m"}))
        .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn rate_limits_of_the_proxy_and_the_upstream_keep_retry_after() {
    let t = TestProxy::start_with(|c| {
        c.rate_limit = Some(hunyuan_proxy::rate_limit::RateLimit::new(0.01, 1));
        c.upstream_retries = 0;
    })
    .await;
    let body = json!({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    // The one request the burst allows reaches the upstream, which is rate limited itself.
    t.mock.set_fault(Some(Fault::RateLimited {
        retry_after_secs: 7,
    }));
    let response = t.post("/v1/messages", &body).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "rate_limit_error");
    // The next one is refused by the proxy's own limit, before the ingress.
    let response = t.post("/v1/messages", &body).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_error", "{error}");
}

#[tokio::test]
async fn an_upstream_server_error_is_an_api_error() {
    let t = TestProxy::start_with(|c| c.upstream_retries = 0).await;
    t.mock.set_fault(Some(Fault::ServerError));
    let body = json!({"model": "claude-x", "max_tokens": 5, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let response = t.post("/v1/messages", &body).await;
    assert!(response.status().is_server_error(), "{}", response.status());
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert!(
        ["api_error", "overloaded_error"].contains(&error["error"]["type"].as_str().unwrap()),
        "{error}"
    );
}

#[tokio::test]
async fn python_sdk_speaks_to_the_proxy() {
    let t = TestProxy::start().await;
    crate::common::run_python_client(
        "import anthropic",
        "anthropic",
        "anthropic_sdk.py",
        &t.url(""),
    )
    .await;
}

/// The value of `hunyuan_proxy_dropped_total{dialect="anthropic", item}` on `/metrics`.
async fn dropped_count(t: &TestProxy, item: &str) -> f64 {
    let text = t.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("hunyuan_proxy_dropped_total{"))
        .filter(|l| l.contains("dialect=\"anthropic\"") && l.contains(&format!("item=\"{item}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn dropped_items_are_counted_with_bounded_labels() {
    let t = TestProxy::start().await;
    let before = (
        dropped_count(&t, "top_k").await,
        dropped_count(&t, "other").await,
    );
    let body = json!({"model": "claude-x", "max_tokens": 5, "top_k": 3,
        "tools": [{"type": "computer_20250124", "name": "computer"}],
        "messages": [{"role": "user", "content": "hi"}]});
    let response = t.post("/v1/messages", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-hunyuan-proxy-dropped"],
        "tool:computer_20250124, top_k"
    );
    // The metric is process-wide: other tests may add to it, never take away.
    assert!(dropped_count(&t, "top_k").await >= before.0 + 1.0);
    assert!(dropped_count(&t, "other").await >= before.1 + 1.0);
    let text = t.get("/metrics").await.text().await.unwrap();
    assert!(
        !text.contains("item=\"tool:computer_20250124\""),
        "client names are not labels"
    );
}

#[tokio::test]
async fn a_claude_code_style_tool_loop_turn_is_accepted_by_the_strict_upstream() {
    let t = TestProxy::start().await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": true,
    "thinking": {"type": "adaptive"},
    "metadata": {"user_id": "{\"device_id\":\"d\",\"session_id\":\"s\"}"},
    "system": [{"type": "text", "text": "You are Claude Code."},
               {"type": "text", "text": "Be careful.", "cache_control": {"type": "ephemeral"}}],
    "tools": [bash_tool()],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
            {"type": "text", "text": "list files"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should run ls.", "signature": "abc"},
            {"type": "tool_use", "id": "call_aaaaaaaaaaaaaaaaaaaa", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_aaaaaaaaaaaaaaaaaaaa", "content": "a.txt\nb.txt"}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "Done.", "signature": "def"}]},
        {"role": "user", "content": [{"type": "text", "text": "thanks"}]}
    ]});
    let response = t.post("/v1/messages?beta=true", &body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let events = events(&text);
    assert_eq!(events.last().unwrap().0, "message_stop", "{text}");
    let sent = text_calls(&t).pop().unwrap();
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles[..4],
        ["system", "user", "assistant", "tool"],
        "{sent}"
    );
    assert_eq!(sent["user"], "{\"device_id\":\"d\",\"session_id\":\"s\"}");
}

/// The TokenHub preset: reasoning history goes back as `reasoning_content`, the thinking
/// switch goes upstream, and the TokenHub-like mock accepts both.
#[tokio::test]
async fn tokenhub_keeps_reasoning_history_and_passes_the_thinking_switch() {
    use hunyuan_proxy::config::Preset;
    use hunyuan_proxy::mock::{MockConfig, MockHunyuan, MockPolicy};
    let mock =
        MockHunyuan::start_with(MockConfig::default().with_policy(MockPolicy::TokenHub)).await;
    let mut config = TestProxy::config_for(&mock);
    config.upstream = Preset::Tokenhub;
    config.text_model = Some("hy3".into());
    let t = TestProxy::start_on(mock, config).await;
    let body = json!({"model": "claude-opus-4-1", "max_tokens": 100, "stream": true,
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "tools": [bash_tool()],
    "messages": [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "run ls", "signature": "s"},
            {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "a.txt"}]}
    ]});
    let response = t.post("/v1/messages", &body).await;
    assert_eq!(response.status(), 200);
    let events = events(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap().0, "message_stop");
    let sent = t.mock.chat_requests().pop().unwrap();
    assert_eq!(sent["model"], "hy3");
    assert_eq!(sent["thinking"], json!({"type": "enabled"}));
    assert_eq!(sent["messages"][1]["reasoning_content"], "run ls");
}
