//! Replays of request bodies Claude Code 2.1.328 sent to the proxy (recorded with `claude -p`
//! in front of `hunyuan-proxy --demo`, paths scrubbed; `tests/it/fixtures/claude_code/`):
//! each is accepted by the strict mock and answered in the stream grammar Claude Code parses.
//!
//! - `plain.json`: the first turn of `say hi. Use no tool.`
//! - `bash_call.json`, `bash_result.json`: both turns of `Use Bash with command=echo
//!   hunyuan-bash-ok` (the second carries the `tool_result`).
//! - `png_result.json`: the second turn of `Use Read with file_path=…/shot.png` (the Read
//!   result is an `image` block inside the `tool_result`).
//! - `headers.json`: the headers Claude Code sent (key and session id left out).

use crate::common::*;
use base64::Engine as _;
use hunyuan_proxy::mock::{validate, MockPolicy};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/fixtures/claude_code");
const TEXT_MODEL: &str = "hunyuan-2.0-thinking-20251109";
const ALL: [&str; 4] = [
    "plain.json",
    "bash_call.json",
    "bash_result.json",
    "png_result.json",
];

fn fixture(name: &str) -> Value {
    let path = format!("{FIXTURES}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the proxy answered to one replayed request.
struct Replayed {
    status: u16,
    dropped: Option<String>,
    events: Vec<(String, Value)>,
}

impl Replayed {
    /// The text of all `text_delta`s.
    fn text(&self) -> String {
        self.deltas("text_delta", "text")
    }

    fn deltas(&self, kind: &str, field: &str) -> String {
        self.events
            .iter()
            .filter(|(n, d)| n == "content_block_delta" && d["delta"]["type"] == kind)
            .filter_map(|(_, d)| d["delta"][field].as_str())
            .collect()
    }

    fn stop_reason(&self) -> &Value {
        let (_, delta) = self
            .events
            .iter()
            .find(|(n, _)| n == "message_delta")
            .expect("a message_delta");
        &delta["delta"]["stop_reason"]
    }
}

/// POSTs `body` to `/v1/messages?beta=true` with Claude Code's headers.
async fn replay(t: &TestProxy, body: &Value) -> Replayed {
    let mut request = t.client.post(t.url("/v1/messages?beta=true")).json(body);
    for (name, value) in fixture("headers.json").as_object().unwrap() {
        request = request.header(name.as_str(), value.as_str().unwrap());
    }
    let response = request.header("x-api-key", "sk-any").send().await.unwrap();
    let status = response.status().as_u16();
    let dropped = response
        .headers()
        .get("x-hunyuan-proxy-dropped")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert!(!text.contains("[DONE]"), "{text}");
    let events = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: "));
            let data = e.lines().find_map(|l| l.strip_prefix("data: "));
            match (name, data) {
                (Some(name), Some(data)) => (name.to_owned(), serde_json::from_str(data).unwrap()),
                _ => panic!("not an Anthropic SSE event: {e:?} in {text}"),
            }
        })
        .collect();
    Replayed {
        status,
        dropped,
        events,
    }
}

/// Every request the mock received passes its strict rules (it would have answered 400).
fn assert_all_accepted(t: &TestProxy) {
    let sent = t.mock.chat_requests();
    assert!(!sent.is_empty());
    for body in &sent {
        if let Err(rejection) = validate(body, MockPolicy::Legacy) {
            panic!("the mock refused {body}: {rejection:?}");
        }
    }
}

#[test]
fn the_fixtures_keep_the_shape_claude_code_sends() {
    for name in ALL {
        let body = fixture(name);
        assert_eq!(body["stream"], true, "{name}");
        assert_eq!(body["max_tokens"], 32000, "{name}");
        assert_eq!(body["thinking"]["type"], "adaptive", "{name}");
        assert!(body["context_management"]["edits"].is_array(), "{name}");
        assert_eq!(body["output_config"]["effort"], "high", "{name}");
        let user_id: Value =
            serde_json::from_str(body["metadata"]["user_id"].as_str().unwrap()).unwrap();
        assert!(user_id["session_id"].is_string(), "{name}");
        let system = body["system"].as_array().unwrap();
        assert!(
            system.iter().any(|b| b.get("cache_control").is_some()),
            "{name}"
        );
        let messages = body["messages"].as_array().unwrap();
        let mid = messages.iter().position(|m| m["role"] == "system");
        assert_eq!(
            mid,
            Some(1),
            "{name}: the environment comes after the first user turn"
        );
        let tools = body["tools"].as_array().unwrap();
        assert!(tools.len() >= 8, "{name}");
        assert!(
            tools
                .iter()
                .any(|t| t["name"] == "DeferredToolPlaceholder" && t["defer_loading"] == true),
            "{name}"
        );
    }
}

#[tokio::test]
async fn every_recorded_request_is_accepted_and_answered_in_order() {
    let t = TestProxy::start().await;
    for name in ALL {
        let body = fixture(name);
        let answer = replay(&t, &body).await;
        assert_eq!(answer.status, 200, "{name}");
        let names: Vec<&str> = answer.events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.first(), Some(&"message_start"), "{name}");
        assert_eq!(
            names.iter().filter(|n| **n == "message_start").count(),
            1,
            "{name}"
        );
        assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"]);
        assert!(!names.contains(&"error"), "{name}");
        let usage = &answer.events[0].1["message"]["usage"];
        assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{name}");
        assert_eq!(
            answer.dropped.as_deref(),
            Some("tool:deferred"),
            "{name}: only the placeholder is dropped"
        );
        // Claude Code asked for thinking: a signed thinking block leads.
        let first_block = answer
            .events
            .iter()
            .find(|(n, _)| n == "content_block_start")
            .unwrap();
        assert_eq!(first_block.1["content_block"]["type"], "thinking", "{name}");
        assert!(!answer.deltas("signature_delta", "signature").is_empty());
    }
    assert_all_accepted(&t);
    // What went upstream: one system message first, the placeholder and cache hints gone.
    for sent in text_calls(&t) {
        let messages = sent["messages"].as_array().unwrap();
        assert_eq!(messages[0]["role"], "system");
        assert_eq!(messages.iter().filter(|m| m["role"] == "system").count(), 1);
        assert!(!sent.to_string().contains("cache_control"));
        let tools = sent["tools"].as_array().unwrap();
        assert!(tools
            .iter()
            .all(|t| t["function"]["name"] != "DeferredToolPlaceholder"));
        assert!(tools.iter().any(|t| t["function"]["name"] == "Bash"));
        assert!(sent["user"].as_str().unwrap().contains("session_id"));
    }
}

fn text_calls(t: &TestProxy) -> Vec<Value> {
    t.mock
        .chat_requests()
        .into_iter()
        .filter(|r| r["model"] == TEXT_MODEL)
        .collect()
}

#[tokio::test]
async fn the_plain_turn_is_answered_with_text() {
    let t = TestProxy::start().await;
    let answer = replay(&t, &fixture("plain.json")).await;
    assert_eq!(answer.stop_reason(), "end_turn");
    let text = answer.text();
    assert!(text.starts_with("Echo: "), "{text}");
    assert!(text.contains("say hi. Use no tool."), "{text}");
    assert_all_accepted(&t);
}

#[tokio::test]
async fn the_bash_loop_asks_for_bash_then_answers_with_its_output() {
    let t = TestProxy::start().await;
    let call = replay(&t, &fixture("bash_call.json")).await;
    assert_eq!(call.stop_reason(), "tool_use");
    let start = call
        .events
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .expect("a tool_use block");
    assert_eq!(start.1["content_block"]["name"], "Bash");
    let input: Value = serde_json::from_str(&call.deltas("input_json_delta", "partial_json"))
        .expect("the input deltas make one JSON object");
    assert_eq!(input, json!({"command": "echo hunyuan-bash-ok"}));

    // The recorded next turn returns that call's result.
    let body = fixture("bash_result.json");
    let messages = body["messages"].as_array().unwrap();
    let result = &messages.last().unwrap()["content"][0];
    assert_eq!(result["type"], "tool_result");
    let tool_use_id = result["tool_use_id"].as_str().unwrap();
    let answer = replay(&t, &body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.stop_reason(), "end_turn");
    assert_eq!(answer.text(), "Echo: hunyuan-bash-ok");
    let sent = text_calls(&t).pop().unwrap();
    let tool = sent["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(tool["role"], "tool", "{sent}");
    assert_eq!(tool["tool_call_id"], tool_use_id);
    assert_eq!(tool["content"], "hunyuan-bash-ok");
    let assistant =
        &sent["messages"].as_array().unwrap()[sent["messages"].as_array().unwrap().len() - 2];
    assert_eq!(assistant["tool_calls"][0]["id"], tool_use_id);
    assert_eq!(assistant["tool_calls"][0]["function"]["name"], "Bash");
    assert_all_accepted(&t);
}

#[tokio::test]
async fn the_png_read_is_described_once_and_the_description_reaches_the_text_model() {
    let t = TestProxy::start().await;
    let body = fixture("png_result.json");
    let result = &body["messages"].as_array().unwrap().last().unwrap()["content"][0];
    let image = &result["content"][0];
    assert_eq!(image["type"], "image");
    assert_eq!(image["source"]["media_type"], "image/png");
    let png = base64::engine::general_purpose::STANDARD
        .decode(image["source"]["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let digest: String = Sha256::digest(&png)[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let answer = replay(&t, &body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.stop_reason(), "end_turn");
    let vision: Vec<Value> = t
        .mock
        .chat_requests()
        .into_iter()
        .filter(|r| r["model"].as_str().is_some_and(|m| m.contains("vision")))
        .collect();
    assert_eq!(vision.len(), 1, "exactly one vision call");
    let sent = text_calls(&t).pop().unwrap();
    assert!(!sent.to_string().contains("image_url"), "{sent}");
    let tool = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap()
        .clone();
    let needle = format!("Description of image {digest}");
    assert!(tool["content"].to_string().contains(&needle), "{tool}");
    // The mock quotes the tool message: the description came back to Claude Code.
    assert!(answer.text().contains(&needle), "{}", answer.text());
    assert_all_accepted(&t);
}
