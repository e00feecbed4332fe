//! One test per mapping rule of the request translation, and the stream grammar.

use super::*;
use crate::chat::{ChatChunk, Content, ContentPart, Role, Stop};
use crate::error::ProxyError;
use crate::ingress::StreamTranslator;
use serde_json::{json, Value};

fn translate(body: &Value, config: &MessagesConfig) -> Result<Translated, ProxyError> {
    to_chat(body.to_string().as_bytes(), config)
}

fn tr(body: Value) -> Translated {
    translate(&body, &MessagesConfig::default()).unwrap()
}

fn with(messages: Value) -> Value {
    json!({"model": "claude-x", "max_tokens": 10, "messages": messages})
}

fn err(body: Value) -> String {
    let e = translate(&body, &MessagesConfig::default()).unwrap_err();
    assert_eq!(e.status(), 400);
    e.param().unwrap_or_default().to_owned()
}

#[test]
fn system_string_blocks_and_system_messages_become_one_system_message() {
    let mut body = with(json!([
        {"role": "user", "content": "hi"},
        {"role": "system", "content": [{"type": "text", "text": "env"}]},
        {"role": "assistant", "content": "yo"}
    ]));
    body["system"] = json!([{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "b"}]);
    let chat = tr(body).chat;
    let roles: Vec<Role> = chat.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::System, Role::User, Role::Assistant]);
    assert_eq!(
        chat.messages[0].content,
        Some(Content::Text("a\n\nb\n\nenv".into()))
    );
    assert!(!serde_json::to_string(&chat)
        .unwrap()
        .contains("cache_control"));
    let mut body = with(json!([{"role": "user", "content": "hi"}]));
    body["system"] = json!("plain");
    assert_eq!(
        tr(body).chat.messages[0].content,
        Some(Content::Text("plain".into()))
    );
}

#[test]
fn base64_and_url_images_become_image_url_parts() {
    let chat = tr(with(json!([{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "image", "source": {"type": "url", "url": "https://x/y.jpg"}}
    ]}])))
    .chat;
    let Some(Content::Parts(parts)) = &chat.messages[0].content else {
        panic!("parts expected")
    };
    assert_eq!(parts[0], ContentPart::text_part("look"));
    assert_eq!(
        parts[1].image_url().unwrap().url,
        "data:image/png;base64,iVBO"
    );
    assert_eq!(parts[2].image_url().unwrap().url, "https://x/y.jpg");
}

#[test]
fn tool_use_becomes_tool_calls_with_json_arguments() {
    let chat = tr(with(json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]}
    ])))
    .chat;
    let calls = chat.messages[1].tool_calls.as_ref().unwrap();
    assert_eq!(calls[0].id, "toolu_1");
    assert_eq!(calls[0].function.name, "Bash");
    assert_eq!(calls[0].function.arguments, r#"{"command":"ls"}"#);
    assert_eq!(chat.messages[1].content, Some(Content::Text("ok".into())));
}

#[test]
fn tool_results_become_tool_messages_then_the_rest_a_user_message() {
    let chat = tr(with(json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "a", "name": "f", "input": {}},
            {"type": "tool_use", "id": "b", "name": "f", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "done"},
            {"type": "tool_result", "tool_use_id": "b", "is_error": true,
             "content": [{"type": "text", "text": "no such file"}]},
            {"type": "text", "text": "and then?"}]}
    ])))
    .chat;
    let m = &chat.messages;
    assert_eq!(m.len(), 5);
    assert_eq!(
        (m[2].role, m[2].tool_call_id.as_deref()),
        (Role::Tool, Some("a"))
    );
    assert_eq!(m[2].content, Some(Content::Text("done".into())));
    assert_eq!(m[3].tool_call_id.as_deref(), Some("b"));
    assert_eq!(
        m[3].content,
        Some(Content::Text("Error: no such file".into()))
    );
    assert_eq!(m[4].role, Role::User);
    assert_eq!(m[4].content, Some(Content::Text("and then?".into())));
}

#[test]
fn images_inside_tool_results_stay_images_for_the_cascade() {
    let chat = tr(with(json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "Read", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}]}
    ])))
    .chat;
    assert_eq!(
        chat.messages.len(),
        3,
        "no empty user message after the results"
    );
    assert!(chat.messages[2].has_images());
}

#[test]
fn thinking_history_is_dropped_or_kept_as_reasoning() {
    let body = with(json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "redacted_thinking", "data": "xx"}, {"type": "text", "text": "ok"}]},
        {"role": "user", "content": "more"}
    ]));
    let legacy = tr(body.clone()).chat;
    assert!(legacy.messages[1].extra.get("reasoning_content").is_none());
    let tokenhub = translate(&body, &MessagesConfig::tokenhub()).unwrap().chat;
    assert_eq!(tokenhub.messages[1].extra["reasoning_content"], "hmm");
}

#[test]
fn documents_keep_their_text_and_other_blocks_are_reported() {
    let t = tr(with(json!([{"role": "user", "content": [
        {"type": "document", "title": "README", "source": {"type": "text", "media_type": "text/plain", "data": "body"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
        {"type": "search_result", "source": "x", "title": "t", "content": []}
    ]}])));
    assert_eq!(
        t.chat.messages[0].content,
        Some(Content::Text("README\n\nbody".into()))
    );
    assert_eq!(
        t.dropped.iter().collect::<Vec<_>>(),
        ["block:document", "block:search_result"]
    );
}

#[test]
fn plain_tools_are_functions_and_others_are_dropped() {
    let mut body = with(json!([{"role": "user", "content": "go"}]));
    body["tools"] = json!([
        {"name": "Bash", "description": "run", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
        {"type": "custom", "name": "Edit", "input_schema": {"type": "object"}},
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
        {"name": "Later", "input_schema": {"type": "object"}, "defer_loading": true}
    ]);
    let t = tr(body);
    let tools = t.chat.tools.unwrap();
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0].function.name, "Bash");
    assert_eq!(tools[0].function.description.as_deref(), Some("run"));
    assert_eq!(
        tools[0].function.parameters,
        Some(json!({"type": "object"}))
    );
    assert_eq!(
        t.dropped.iter().collect::<Vec<_>>(),
        [
            "tool:bash_20250124",
            "tool:text_editor_20250728",
            "tool:deferred"
        ]
    );
}

#[test]
fn tool_choice_maps_to_openai() {
    for (choice, expected) in [
        (json!({"type": "auto"}), json!("auto")),
        (json!({"type": "any"}), json!("required")),
        (json!({"type": "none"}), json!("none")),
        (
            json!({"type": "tool", "name": "Bash"}),
            json!({"type": "function", "function": {"name": "Bash"}}),
        ),
    ] {
        let mut body = with(json!([{"role": "user", "content": "go"}]));
        body["tools"] = json!([{"name": "Bash", "input_schema": {"type": "object"}}]);
        body["tool_choice"] = choice;
        assert_eq!(tr(body).chat.extra["tool_choice"], expected);
    }
}

#[test]
fn sampling_fields_are_kept_top_k_dropped_and_user_id_becomes_user() {
    let mut body = with(json!([{"role": "user", "content": "go"}]));
    body["stop_sequences"] = json!(["END"]);
    body["temperature"] = json!(0.3);
    body["top_p"] = json!(0.9);
    body["top_k"] = json!(40);
    body["metadata"] = json!({"user_id": "{\"device\":\"d\"}"});
    body["container"] = json!("c");
    body["mcp_servers"] = json!([]);
    let t = tr(body);
    assert_eq!(t.chat.stop, Some(Stop::Many(vec!["END".into()])));
    assert_eq!(t.chat.extra["temperature"], json!(0.3));
    assert_eq!(t.chat.extra["top_p"], json!(0.9));
    assert_eq!(t.chat.extra["max_tokens"], json!(10));
    assert_eq!(t.chat.extra["user"], "{\"device\":\"d\"}");
    assert!(!t.chat.extra.contains_key("top_k"));
    assert!(!t.chat.extra.contains_key("container"));
    assert_eq!(t.dropped.iter().collect::<Vec<_>>(), ["top_k"]);
}

#[test]
fn the_thinking_switch_passes_only_for_tokenhub() {
    for (thinking, shown, upstream) in [
        (
            json!({"type": "enabled", "budget_tokens": 2000}),
            true,
            "enabled",
        ),
        (
            json!({"type": "adaptive", "display": "omitted"}),
            true,
            "enabled",
        ),
        (json!({"type": "disabled"}), false, "disabled"),
    ] {
        let mut body = with(json!([{"role": "user", "content": "go"}]));
        body["thinking"] = thinking;
        let legacy = tr(body.clone());
        assert_eq!(legacy.thinking, shown);
        assert!(!legacy.chat.extra.contains_key("thinking"));
        let tokenhub = translate(&body, &MessagesConfig::tokenhub()).unwrap();
        assert_eq!(tokenhub.chat.extra["thinking"], json!({"type": upstream}));
    }
}

#[test]
fn effort_comes_from_output_config_else_the_budget_and_never_with_thinking_off() {
    let effort = |thinking: Value, output_config: Option<Value>| {
        let mut body = with(json!([{"role": "user", "content": "go"}]));
        body["thinking"] = thinking;
        if let Some(config) = output_config {
            body["output_config"] = config;
        }
        let legacy = tr(body.clone());
        assert!(!legacy.chat.extra.contains_key("reasoning_effort"));
        translate(&body, &MessagesConfig::tokenhub())
            .unwrap()
            .chat
            .extra
            .get("reasoning_effort")
            .cloned()
    };
    // Claude Code: adaptive thinking with an effort word, passed on as it is.
    let adaptive = json!({"type": "adaptive"});
    assert_eq!(
        effort(adaptive.clone(), Some(json!({"effort": "xhigh"}))),
        Some(json!("xhigh"))
    );
    assert_eq!(effort(adaptive, None), None);
    // A budget in three steps.
    for (budget, word) in [(1024, "low"), (8000, "medium"), (32000, "high")] {
        let thinking = json!({"type": "enabled", "budget_tokens": budget});
        assert_eq!(effort(thinking, None), Some(json!(word)), "{budget}");
    }
    // Thinking off: no effort asked of the model.
    let off = json!({"type": "disabled"});
    assert_eq!(effort(off, Some(json!({"effort": "high"}))), None);
    // A wrong shape names the field.
    let mut body = with(json!([{"role": "user", "content": "go"}]));
    body["output_config"] = json!({"effort": 3});
    let err = translate(&body, &MessagesConfig::tokenhub()).unwrap_err();
    assert!(err.to_string().contains("output_config.effort"), "{err}");
}

#[test]
fn the_model_goes_through_the_aliases_and_stream_asks_for_usage() {
    let config = MessagesConfig::default()
        .with_alias("claude-*", "hy3")
        .unwrap();
    let mut body = with(json!([{"role": "user", "content": "go"}]));
    body["stream"] = json!(true);
    let t = translate(&body, &config).unwrap();
    assert_eq!(t.chat.model, "hy3");
    assert_eq!(t.client_model, "claude-x");
    assert!(t.chat.is_stream());
    assert_eq!(t.chat.stream_options.unwrap().include_usage, Some(true));
}

#[test]
fn wrong_shapes_name_the_field() {
    assert_eq!(err(json!([])), "");
    assert_eq!(err(json!({"messages": []})), "model");
    assert_eq!(err(json!({"model": "m", "messages": []})), "messages");
    assert_eq!(
        err(with(json!([{"role": "user", "content": 5}]))),
        "messages.0.content"
    );
    assert_eq!(
        err(with(json!([{"role": "user", "content": [{"text": "x"}]}]))),
        "messages.0.content.0.type"
    );
    assert_eq!(
        err(with(
            json!([{"role": "user", "content": [{"type": "tool_result"}]}])
        )),
        "messages.0.content.0.tool_use_id"
    );
    let mut body = with(json!([{"role": "user", "content": "x"}]));
    body["max_tokens"] = json!("many");
    assert_eq!(err(body), "max_tokens");
    let mut body = with(json!([{"role": "user", "content": "x"}]));
    body["tools"] = json!([{"description": "no name"}]);
    assert_eq!(err(body), "tools.0.name");
}

#[test]
fn the_estimate_counts_text_tools_and_images() {
    let small = estimate_input_tokens(&tr(with(json!([{"role": "user", "content": "hi"}]))).chat);
    assert!(small >= 1);
    let mut body = with(json!([{"role": "user", "content": [
        {"type": "text", "text": "x".repeat(400)},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A".repeat(100_000)}}]}]));
    body["tools"] = json!([{"name": "Bash", "description": "d".repeat(400), "input_schema": {"type": "object"}}]);
    let big = estimate_input_tokens(&tr(body).chat);
    // 800+ characters of text and tools, and one image at a fixed count (not its base64).
    assert!((600..800).contains(&big), "{big}");
}

fn chunk(delta: Value, finish: Option<&str>) -> ChatChunk {
    serde_json::from_value(
        json!({"id": "x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
    )
    .unwrap()
}

fn run(thinking: bool, chunks: Vec<ChatChunk>) -> Vec<(String, Value)> {
    let mut stream = MessagesStream::new(AnswerPlan {
        client_model: "claude-x".into(),
        thinking,
        stop_sequences: vec![],
        input_estimate: 7,
    });
    let mut out = Vec::new();
    stream.start(&mut out);
    for c in chunks {
        stream.on_chunk(c, &mut out);
    }
    stream.on_done(&mut out);
    out.iter()
        .map(|b| {
            let text = std::str::from_utf8(b).unwrap();
            let name = text
                .lines()
                .next()
                .unwrap()
                .strip_prefix("event: ")
                .unwrap()
                .to_owned();
            let data = text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
            (name, serde_json::from_str(data).unwrap())
        })
        .collect()
}

#[test]
fn the_stream_grammar_closes_each_block_before_the_next() {
    let events = run(
        true,
        vec![
            chunk(
                json!({"role": "assistant", "content": "", "reasoning_content": "th"}),
                None,
            ),
            chunk(json!({"reasoning_content": "ink"}), None),
            chunk(json!({"content": "Hi", "reasoning_content": ""}), None),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "Bash", "arguments": ""}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                "function": {"name": "Read", "arguments": ""}}]}),
                Some("tool_calls"),
            ),
        ],
    );
    let names: Vec<String> = events
        .iter()
        .map(|(n, d)| {
            match d["delta"]["type"]
                .as_str()
                .or(d["content_block"]["type"].as_str())
            {
                Some(t) if n != "message_delta" => format!("{n}:{t}"),
                _ => n.clone(),
            }
        })
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start:thinking",
            "content_block_delta:thinking_delta",
            "content_block_delta:thinking_delta",
            "content_block_delta:signature_delta",
            "content_block_stop",
            "content_block_start:text",
            "content_block_delta:text_delta",
            "content_block_stop",
            "content_block_start:tool_use",
            "content_block_delta:input_json_delta",
            "content_block_delta:input_json_delta",
            "content_block_stop",
            "content_block_start:tool_use",
            // A call with no arguments still gets a complete input.
            "content_block_delta:input_json_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 7);
    assert_eq!(events[9].1["content_block"]["id"], "call_1");
    assert_eq!(events[14].1["delta"]["partial_json"], "{}");
    assert_eq!(events[16].1["delta"]["stop_reason"], "tool_use");
    assert!(events[16].1["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn hidden_reasoning_and_empty_deltas_send_nothing() {
    let events = run(
        false,
        vec![
            chunk(json!({"content": "", "reasoning_content": "secret"}), None),
            chunk(json!({"content": "ok"}), Some("length")),
        ],
    );
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert!(!events.iter().any(|(_, d)| d.to_string().contains("secret")));
    assert_eq!(events[4].1["delta"]["stop_reason"], "max_tokens");
}

#[test]
fn keepalives_are_pings_and_failures_error_events() {
    let mut stream = MessagesStream::new(AnswerPlan::default());
    let mut out = Vec::new();
    stream.on_keepalive(&mut out);
    stream.on_truncated(&mut out);
    assert_eq!(&out[0][..], b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
    let text = std::str::from_utf8(&out[1]).unwrap();
    assert!(text.starts_with("event: error\n"), "{text}");
    assert!(text.contains("overloaded_error"), "{text}");
    // An inner error event: capacity trouble is `overloaded_error`, the rest `api_error`.
    for (error, kind) in [
        (
            json!({"message": "queue full", "code": "service_unavailable"}),
            "overloaded_error",
        ),
        (
            json!({"message": "could not be described", "code": "bad_gateway"}),
            "api_error",
        ),
    ] {
        let mut out = Vec::new();
        MessagesStream::new(AnswerPlan::default()).on_error(&error, &mut out);
        let text = std::str::from_utf8(&out[0]).unwrap();
        let data: Value =
            serde_json::from_str(text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap())
                .unwrap();
        assert_eq!(data["error"]["type"], kind);
        assert_eq!(data["error"]["message"], error["message"]);
    }
}

#[test]
fn an_invalid_config_is_refused_when_the_layer_is_built() {
    assert!(MessagesLayer::new(MessagesConfig::default().with_ping_interval_secs(0)).is_err());
    assert!(MessagesLayer::new(MessagesConfig::default().with_body_limit(0)).is_err());
    assert!(MessagesConfig::default().with_alias("a*b", "x").is_err());
    let config: MessagesConfig =
        toml::from_str("reasoning_history = true\n[aliases]\n\"claude-*\" = \"hy3\"\n").unwrap();
    assert!(config.reasoning_history);
    assert_eq!(config.aliases.resolve("claude-opus-4"), Some("hy3"));
}

#[tokio::test]
async fn an_inner_error_keeps_its_status_headers_and_extensions() {
    use crate::error::{ErrorKind, ProxyError};
    use axum::body::Body;
    use axum::response::IntoResponse;
    use http::Request;
    use tower::{service_fn, Layer, ServiceExt};

    #[derive(Debug, Clone, PartialEq)]
    struct Seen(&'static str);

    let inner = service_fn(|req: Request<Body>| async move {
        assert_eq!(req.uri().path(), "/v1/chat/completions");
        assert!(req.headers().get("x-api-key").is_none());
        let chat = req
            .extensions()
            .get::<crate::chat::ParsedChat>()
            .expect("translated request");
        assert_eq!(chat.model, "hy3");
        let mut response = ProxyError::Unavailable {
            message: "queue full".into(),
        }
        .into_response();
        response.extensions_mut().insert(Seen("upstream"));
        response
            .headers_mut()
            .insert("x-hunyuan-proxy-vision", "degraded".parse().unwrap());
        Ok::<_, std::convert::Infallible>(response)
    });
    let layer = MessagesLayer::new(
        MessagesConfig::default()
            .with_alias("claude-*", "hy3")
            .unwrap(),
    )
    .unwrap();
    let body = json!({"model": "claude-x", "max_tokens": 5, "top_k": 3,
        "messages": [{"role": "user", "content": "hi"}]});
    let request = Request::post("/v1/messages?beta=true")
        .header("x-api-key", "sk-client")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = layer.layer(inner).oneshot(request).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-hunyuan-proxy-vision"], "degraded");
    assert_eq!(response.headers()["x-hunyuan-proxy-dropped"], "top_k");
    assert_eq!(response.extensions().get::<Seen>(), Some(&Seen("upstream")));
    assert_eq!(
        response.extensions().get::<ErrorKind>(),
        Some(&ErrorKind("service_unavailable"))
    );
    let bytes = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap();
    let error: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        error,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "queue full"}})
    );
}

/// A request with every kind of block and field Claude Code and the SDKs send, read into the
/// chat request it has always been read into (the expected requests were recorded from the
/// `serde_json::Value` translator this reader replaced; since then, TokenHub's also carries
/// the thinking budget as `reasoning_effort`).
#[test]
fn a_request_of_every_shape_reads_into_the_recorded_chat_request() {
    let tokenhub = MessagesConfig {
        reasoning_history: true,
        thinking_switch: true,
        ..MessagesConfig::default()
    };
    let body = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 100, "temperature": 0.5, "top_k": 3,
        "system": [{"type": "text", "text": "Be \"brief\".", "cache_control": {"type": "ephemeral"}},
                   {"type": "mystery"}],
        "metadata": {"user_id": "u1"}, "stop_sequences": ["END"],
        "thinking": {"type": "enabled", "budget_tokens": 1024}, "stream": true,
        "tool_choice": {"type": "tool", "name": "Read"},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look\u{e9}"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                {"type": "image", "source": {"type": "file", "file_id": "f"}},
                {"type": "server_note", "text": "kept"}, {"type": "other"}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "redacted_thinking", "data": "x"}, {"type": "text", "text": ""},
                {"type": "tool_use", "id": "t1", "name": "Read", "input": {"z": 1, "a": [true, null]}},
                {"type": "tool_use", "id": "t2", "name": "Read"},
                {"type": "tool_use", "id": "t3", "name": "Read", "input": null}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                {"type": "tool_result", "tool_use_id": "t2", "is_error": true,
                 "content": [{"type": "text", "text": "bad"}, {"type": "image",
                    "source": {"type": "url", "url": "https://x/z.png"}}, {"type": "x"}]},
                {"type": "tool_result", "tool_use_id": "t3", "is_error": true}]},
            {"role": "system", "content": "Later system."},
            {"role": "assistant", "content": "Plain."}
        ],
        "tools": [{"name": "Read", "description": "Reads", "input_schema": {"type": "object"}},
                  {"name": "Bare"}, {"type": "web_search_20250305", "name": "web_search"},
                  {"name": "Later", "defer_loading": true}]
    });
    let expected_default: Value = serde_json::from_str(r#"{"model": "claude-sonnet-4-5", "messages": [{"role": "system", "content": "Be \"brief\".\n\nLater system."}, {"role": "user", "content": [{"type": "text", "text": "look\u00e9"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}, {"type": "text", "text": "kept"}]}, {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "Read", "arguments": "{\"a\":[true,null],\"z\":1}"}}, {"id": "t2", "type": "function", "function": {"name": "Read", "arguments": "{}"}}, {"id": "t3", "type": "function", "function": {"name": "Read", "arguments": "null"}}]}, {"role": "tool", "content": "ok", "tool_call_id": "t1"}, {"role": "tool", "content": [{"type": "text", "text": "Error: bad"}, {"type": "image_url", "image_url": {"url": "https://x/z.png"}}], "tool_call_id": "t2"}, {"role": "tool", "content": "Error: the tool failed.", "tool_call_id": "t3"}, {"role": "assistant", "content": "Plain."}], "stream": true, "stream_options": {"include_usage": true}, "tools": [{"type": "function", "function": {"name": "Read", "description": "Reads", "parameters": {"type": "object"}}}, {"type": "function", "function": {"name": "Bare", "parameters": {"properties": {}, "type": "object"}}}], "stop": ["END"], "max_tokens": 100, "temperature": 0.5, "tool_choice": {"function": {"name": "Read"}, "type": "function"}, "user": "u1"}"#).unwrap();
    let expected_tokenhub: Value = serde_json::from_str(r#"{"model": "claude-sonnet-4-5", "messages": [{"role": "system", "content": "Be \"brief\".\n\nLater system."}, {"role": "user", "content": [{"type": "text", "text": "look\u00e9"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}, {"type": "text", "text": "kept"}]}, {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "Read", "arguments": "{\"a\":[true,null],\"z\":1}"}}, {"id": "t2", "type": "function", "function": {"name": "Read", "arguments": "{}"}}, {"id": "t3", "type": "function", "function": {"name": "Read", "arguments": "null"}}], "reasoning_content": "hmm"}, {"role": "tool", "content": "ok", "tool_call_id": "t1"}, {"role": "tool", "content": [{"type": "text", "text": "Error: bad"}, {"type": "image_url", "image_url": {"url": "https://x/z.png"}}], "tool_call_id": "t2"}, {"role": "tool", "content": "Error: the tool failed.", "tool_call_id": "t3"}, {"role": "assistant", "content": "Plain."}], "stream": true, "stream_options": {"include_usage": true}, "tools": [{"type": "function", "function": {"name": "Read", "description": "Reads", "parameters": {"type": "object"}}}, {"type": "function", "function": {"name": "Bare", "parameters": {"properties": {}, "type": "object"}}}], "stop": ["END"], "max_tokens": 100, "temperature": 0.5, "thinking": {"type": "enabled"}, "reasoning_effort": "low", "tool_choice": {"function": {"name": "Read"}, "type": "function"}, "user": "u1"}"#).unwrap();
    for (config, expected) in [
        (MessagesConfig::default(), expected_default),
        (tokenhub, expected_tokenhub),
    ] {
        let t = translate(&body, &config).unwrap();
        assert_eq!(serde_json::to_value(&t.chat).unwrap(), expected);
        assert!(t.thinking && t.stream);
        assert_eq!(t.stop_sequences, ["END"]);
        assert_eq!(
            t.dropped.iter().collect::<Vec<_>>(),
            [
                "block:mystery",
                "image:file",
                "block:other",
                "block:x",
                "tool:web_search_20250305",
                "tool:deferred",
                "top_k"
            ]
        );
    }
    for config in [
        MessagesConfig::default(),
        MessagesConfig {
            reasoning_history: true,
            thinking_switch: true,
            ..MessagesConfig::default()
        },
    ] {
        let plain = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "system": "s", "tools": null, "stream": null, "metadata": "not an object"});
        let t = translate(&plain, &config).unwrap();
        assert_eq!(
            serde_json::to_value(&t.chat).unwrap(),
            json!({"model": "m", "messages": [{"role": "system", "content": "s"},
                                              {"role": "user", "content": "hi"}], "stream": false})
        );
    }
}

/// The shapes the typed reader once left to the `Value` translator, read by the one reader
/// as that translator read them: the same 400 (naming the same field) or the same request.
#[test]
fn odd_shapes_read_as_they_always_did() {
    let config = MessagesConfig::default();
    let user =
        |content: Value| json!({"model": "m", "messages": [{"role": "user", "content": content}]});
    let param = |body: &Value| {
        let e = translate(body, &config).unwrap_err();
        assert_eq!(e.status(), 400, "{body}");
        e.param().map(str::to_owned)
    };
    for (body, expected) in [
        (json!([1, 2]), None),
        (json!({"model": "m", "messages": []}), Some("messages")),
        (
            json!({"model": " ", "messages": [{"role": "user", "content": "hi"}]}),
            Some("model"),
        ),
        (
            json!({"model": "m", "messages": [["user", "hi"]]}),
            Some("messages.0"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "robot", "content": "hi"}]}),
            Some("messages.0.role"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": null}]}),
            Some("messages.0.content"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}),
            Some("max_tokens"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}),
            Some("stream"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [["x"]]}),
            Some("tools.0"),
        ),
        (
            user(json!([["text", "hi"]])),
            Some("messages.0.content.0.type"),
        ),
        (
            user(json!([{"type": "text"}])),
            Some("messages.0.content.0.text"),
        ),
        (
            user(json!([{"text": "no type"}])),
            Some("messages.0.content.0.type"),
        ),
        (
            user(json!([{"type": "image", "source": ["base64", "image/png", "AAAA", null]}])),
            Some("messages.0.content.0.source"),
        ),
        (
            user(json!([{"type": "image", "source": {"type": "base64", "data": "AAAA"}}])),
            Some("messages.0.content.0.source.media_type"),
        ),
        (
            user(json!([{"type": "tool_result", "tool_use_id": "t", "content": {"a": 1}}])),
            Some("messages.0.content.0.content"),
        ),
    ] {
        assert_eq!(param(&body).as_deref(), expected, "{body}");
    }
    // Fields a wrong type does not fail: read as absent.
    let t = translate(
        &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "x", "description": 5}]}),
        &config,
    )
    .unwrap();
    let tool = &t.chat.tools.unwrap()[0];
    assert_eq!(tool.function.name, "x");
    assert_eq!(tool.function.description, None);
    let t = translate(
        &user(json!([{"type": "document", "source": {"type": "text", "data": "doc"}}])),
        &config,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&t.chat.messages).unwrap(),
        json!([{"role": "user", "content": "doc"}])
    );
    let t = translate(
        &user(json!([{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}])),
        &config,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&t.chat.messages).unwrap(),
        json!([{"role": "tool", "content": "", "tool_call_id": "t"}])
    );
    // A duplicate of a field the reader reads is a 400 (a `Value` took the last one).
    let body = br#"{"model": "a", "model": "m", "messages": [{"role": "user", "content": "hi"}]}"#;
    let e = to_chat(body, &config).unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("duplicate field `model`"), "{e}");
}
