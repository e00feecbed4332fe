//! The models layer in front of a stub upstream: what the upstream is sent, and what the
//! client is told.

use super::{ModelsConfig, ModelsLayer};
use crate::chat::ParsedChat;
use crate::ingress::DROPPED_HEADER;
use axum::body::Body;
use http::{Request, Response};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tower::{service_fn, Layer, ServiceExt};

type Seen = Arc<Mutex<Vec<Value>>>;

/// A layer over a stub upstream that logs each request and answers with `answer(request)`
/// (`text/event-stream` when the request streams, JSON otherwise).
fn stack(
    layer: &ModelsLayer,
    answer: fn(&Value) -> String,
) -> (
    impl tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone,
    Seen,
) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let inner = service_fn(move |req: Request<Body>| {
        let log = log.clone();
        async move {
            let sent = serde_json::to_value(req.extensions().get::<ParsedChat>().unwrap()).unwrap();
            let stream = sent["stream"] == true;
            let body = answer(&sent);
            log.lock().unwrap().push(sent);
            let kind = if stream {
                "text/event-stream"
            } else {
                "application/json"
            };
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", kind)
                    .body(Body::from(body))
                    .unwrap(),
            )
        }
    });
    (layer.layer(inner), seen)
}

fn request(body: &Value) -> Request<Body> {
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Sends `body`, reads the whole answer (so the layer sees its end) and returns the dropped
/// header.
async fn send(
    svc: impl tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    body: &Value,
) -> Option<String> {
    let response = svc.oneshot(request(body)).await.unwrap();
    let dropped = response
        .headers()
        .get(DROPPED_HEADER)
        .map(|v| v.to_str().unwrap().to_owned());
    axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    dropped
}

fn tool_answer(_: &Value) -> String {
    json!({"id": "a", "object": "chat.completion", "created": 1, "model": "deepseek-v4-flash",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null, "reasoning_content": "Plan: list the files first.",
            "tool_calls": [{"id": "call_9", "type": "function",
                            "function": {"name": "ls", "arguments": "{}"}}]}}]})
    .to_string()
}

fn tool_stream(_: &Value) -> String {
    let chunk = |delta: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "s", "object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": delta}]})
        )
    };
    [
        chunk(json!({"role": "assistant", "reasoning_content": "Streamed: "})),
        chunk(json!({"reasoning_content": "look around."})),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_s", "type": "function",
            "function": {"name": "ls", "arguments": ""}}]}),
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat()
}

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "ls", "parameters": {"type": "object"}}}])
}

/// The next turn of a tool loop as the OpenAI SDK rebuilds it: no `reasoning_content`.
fn next_turn(call_id: &str, stream: bool) -> Value {
    json!({"model": "deepseek-v4-flash", "stream": stream, "tools": tools(),
    "tool_choice": "required",
    "messages": [
        {"role": "developer", "content": "Use the tools."},
        {"role": "user", "content": "What is here?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "ls", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "a.txt"}
    ]})
}

#[tokio::test]
async fn deepseek_tool_loop_gets_the_reasoning_of_its_own_answer_back() {
    let layer = ModelsLayer::new(ModelsConfig::default()).unwrap();
    for (answer, call_id, stream, reasoning) in [
        (
            tool_answer as fn(&Value) -> String,
            "call_9",
            false,
            "Plan: list the files first.",
        ),
        (tool_stream, "call_s", true, "Streamed: look around."),
    ] {
        let (svc, seen) = stack(&layer, answer);
        let first = json!({"model": "deepseek-v4-flash", "stream": stream, "tools": tools(),
            "messages": [{"role": "user", "content": "What is here?"}]});
        send(svc.clone(), &first).await;
        let dropped = send(svc, &next_turn(call_id, stream)).await;
        let sent = seen.lock().unwrap()[1].clone();
        assert_eq!(sent["messages"][2]["reasoning_content"], reasoning);
        assert_eq!(sent["messages"][0]["role"], "system", "developer → system");
        assert_eq!(sent["tool_choice"], "auto", "forced choice downgraded");
        assert_eq!(dropped.as_deref(), Some("tool_choice"));
    }
}

#[tokio::test]
async fn an_answer_taken_typed_is_parsed_here_once_and_its_reasoning_still_noted() {
    use crate::chat::{ChatAnswer, TypedAnswer};
    let layer = ModelsLayer::new(ModelsConfig::default()).unwrap();
    let (svc, seen) = stack(&layer, tool_answer);
    let first = json!({"model": "deepseek-v4-flash", "tools": tools(),
        "messages": [{"role": "user", "content": "What is here?"}]});
    let mut typed = request(&first);
    typed.extensions_mut().insert(TypedAnswer);
    let (mut parts, body) = svc.clone().oneshot(typed).await.unwrap().into_parts();
    // Handed on parsed: the caller never reads (nor does anything write) the body.
    let answer = ChatAnswer::take(&mut parts, body).expect("the answer, typed");
    let calls = answer.choices[0].message.tool_calls.as_ref().unwrap();
    assert_eq!(calls[0].id, "call_9");
    send(svc, &next_turn("call_9", false)).await;
    assert_eq!(
        seen.lock().unwrap()[1]["messages"][2]["reasoning_content"],
        "Plan: list the files first."
    );
}

#[tokio::test]
async fn without_memory_the_placeholder_is_replayed() {
    let layer = ModelsLayer::new(ModelsConfig {
        memory_bytes: 0,
        reasoning_placeholder: "(not kept)".into(),
        ..ModelsConfig::default()
    })
    .unwrap();
    let (svc, seen) = stack(&layer, tool_answer);
    send(svc, &next_turn("call_unknown", false)).await;
    assert_eq!(
        seen.lock().unwrap()[0]["messages"][2]["reasoning_content"],
        "(not kept)"
    );
}

#[tokio::test]
async fn kimi_k3_loses_temperature_and_gets_effort_max() {
    let layer = ModelsLayer::new(ModelsConfig::default()).unwrap();
    let (svc, seen) = stack(&layer, tool_answer);
    let dropped = send(
        svc,
        &json!({"model": "kimi-k3", "temperature": 0.2, "reasoning_effort": "high",
                "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let sent = seen.lock().unwrap()[0].clone();
    assert!(sent.get("temperature").is_none());
    assert_eq!(sent["reasoning_effort"], "max");
    assert_eq!(sent["max_completion_tokens"], 50);
    assert_eq!(dropped.as_deref(), Some("reasoning_effort, temperature"));
}

#[tokio::test]
async fn minimax_thinking_enabled_becomes_adaptive_and_retired_ids_are_replaced() {
    let layer = ModelsLayer::new(ModelsConfig::default()).unwrap();
    let (svc, seen) = stack(&layer, tool_answer);
    let dropped = send(
        svc.clone(),
        &json!({"model": "minimax-m3", "thinking": {"type": "enabled"},
                "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(
        seen.lock().unwrap()[0]["thinking"],
        json!({"type": "adaptive"})
    );
    assert_eq!(dropped, None, "carried, not dropped");
    send(
        svc,
        &json!({"model": "hy3-preview", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(seen.lock().unwrap()[1]["model"], "hy3");
}

#[tokio::test]
async fn an_unknown_model_goes_untouched() {
    let layer = ModelsLayer::new(ModelsConfig::default()).unwrap();
    let (svc, seen) = stack(&layer, tool_answer);
    let body = json!({"model": "someone-elses-model", "temperature": 0.3,
        "messages": [{"role": "developer", "content": "x"}, {"role": "user", "content": "hi"}]});
    assert_eq!(send(svc, &body).await, None);
    assert_eq!(seen.lock().unwrap()[0], body);
}
