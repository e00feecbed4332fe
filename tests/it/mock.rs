//! The mock Hunyuan over HTTP: routes, auth, rules, answer shapes, faults and accounting.

use hunyuan_proxy::chat::SseParser;
use hunyuan_proxy::mock::{
    Fault, MockConfig, MockHunyuan, MockPolicy, MSG_BAD_FORMAT, MSG_EMPTY_CONTENT, MSG_ROLE_ORDER,
    MSG_SYSTEM_FIRST,
};
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "sk-test";

/// reqwest is built without its `json` feature here.
trait JsonBody {
    fn json_body(self, body: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, body: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }
}

async fn read_json(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.expect("a complete body");
    serde_json::from_slice(&bytes).expect("a JSON body")
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(mock: &MockHunyuan, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth(KEY)
        .json_body(body)
        .send()
        .await
        .expect("the mock answers")
}

async fn post_json(mock: &MockHunyuan, body: &Value) -> (u16, Value) {
    let response = post(mock, body).await;
    let status = response.status().as_u16();
    (status, read_json(response).await)
}

/// The SSE events' data, in order (`[DONE]` included), and whether the body ended cleanly.
async fn events(response: reqwest::Response) -> (Vec<String>, bool) {
    let mut response = response;
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    let clean = loop {
        match response.chunk().await {
            Ok(Some(bytes)) => {
                parser.push(&bytes);
                while let Some(event) = parser.next_event() {
                    out.push(event.data.into());
                }
            }
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    (out, clean)
}

fn chunks(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.as_str() != "[DONE]")
        .map(|e| serde_json::from_str(e).expect("each chunk is JSON"))
        .collect()
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn chat(model: &str, messages: Value) -> Value {
    json!({"model": model, "messages": messages})
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }}])
}

async fn eventually(mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 2 s");
}

#[tokio::test]
async fn valid_conversation_gets_a_hunyuan_shaped_completion() {
    let mock = MockHunyuan::start().await;
    let body = json!({
        "model": "hunyuan-turbos-latest",
        "messages": [
            {"role": "system", "content": "be brief"},
            user("hi"),
            {"role": "assistant", "content": "hello"},
            user("how are you?"),
        ],
    });
    let (status, answer) = post_json(&mock, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["id"].as_str().unwrap().len(), 32);
    assert!(answer["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(answer["model"], "hunyuan-turbos-latest");
    let message = &answer["choices"][0]["message"];
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["content"], "Echo: how are you?");
    assert!(message.get("reasoning_content").is_none());
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert!(answer["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert!(!answer["note"].as_str().unwrap().is_empty());

    // Deterministic: the same request, the same answer (apart from `created`).
    let (_, again) = post_json(&mock, &body).await;
    assert_eq!(again["id"], answer["id"]);
    assert_eq!(again["choices"], answer["choices"]);

    // Reasoning models add reasoning_content.
    let (_, thinking) = post_json(
        &mock,
        &chat("hunyuan-2.0-thinking-20251109", json!([user("why?")])),
    )
    .await;
    let message = &thinking["choices"][0]["message"];
    assert_eq!(message["content"], "Echo: why?");
    assert!(!message["reasoning_content"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn every_rule_is_refused_with_hunyuans_envelope() {
    let mock = MockHunyuan::start().await;
    let text_model = "hunyuan-2.0-instruct-20251111";
    let image_message = json!({"role": "user", "content": [
        {"type": "text", "text": "what is it"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]});
    let many: Vec<Value> = (0..41)
        .map(|i| {
            if i % 2 == 0 {
                user("q")
            } else {
                json!({"role": "assistant", "content": "a"})
            }
        })
        .collect();
    let cases: Vec<(&str, Value, &str, Option<&str>)> = vec![
        (
            "R1",
            chat(text_model, json!([user("a"), user("b")])),
            "1001",
            Some(MSG_ROLE_ORDER),
        ),
        (
            "R1 prefill",
            chat(
                text_model,
                json!([user("a"), {"role": "assistant", "content": "b"}]),
            ),
            "1001",
            Some(MSG_ROLE_ORDER),
        ),
        (
            "R2",
            chat(
                text_model,
                json!([user("a"), {"role": "system", "content": "s"}]),
            ),
            "1001",
            Some(MSG_SYSTEM_FIRST),
        ),
        (
            "R3",
            chat(text_model, json!([user("")])),
            "1001",
            Some(MSG_EMPTY_CONTENT),
        ),
        (
            "R4",
            chat(
                text_model,
                json!([user("a"), {"role": "assistant", "content": "b", "reasoning_content": "r"}, user("c")]),
            ),
            "1001",
            None,
        ),
        (
            "R5",
            json!({"model": text_model, "messages": [user("a")], "presence_penalty": 0}),
            "4003",
            Some(MSG_BAD_FORMAT),
        ),
        (
            "R6",
            json!({"model": text_model, "messages": [user("a")], "parallel_tool_calls": true}),
            "1001",
            None,
        ),
        ("R7", chat(text_model, Value::Array(many)), "1001", None),
        (
            "R8 images",
            chat(text_model, json!([image_message.clone()])),
            "1001",
            None,
        ),
        (
            "R8 tools",
            json!({"model": "hunyuan-vision", "messages": [user("a")], "tools": weather_tool()}),
            "1001",
            None,
        ),
        (
            "R9",
            chat(
                "hunyuan-vision",
                json!([{"role": "user", "content": [
                    {"type": "text", "text": "what is it"},
                    {"type": "image_url", "image_url": {"url": "cat.png"}},
                ]}]),
            ),
            "1001",
            None,
        ),
        (
            "R10",
            chat(
                text_model,
                json!([{"role": "developer", "content": "d"}, user("a")]),
            ),
            "1001",
            None,
        ),
        (
            "R11",
            json!({"model": text_model, "messages": [user("a")],
                   "tools": [{"type": "function", "function": {"name": "get weather"}}]}),
            "1001",
            None,
        ),
        (
            "R12",
            json!({"model": text_model, "messages": [user("a")], "temperature": 3}),
            "1001",
            None,
        ),
        (
            "n",
            json!({"model": text_model, "messages": [user("a")], "n": 2}),
            "1001",
            None,
        ),
        (
            "unknown model",
            chat("gpt-4o", json!([user("a")])),
            "1001",
            None,
        ),
    ];
    for (rule, body, code, message) in cases {
        let (status, answer) = post_json(&mock, &body).await;
        assert_eq!(status, 400, "{rule}: {answer}");
        let error = &answer["error"];
        assert_eq!(error["code"], code, "{rule}: {answer}");
        assert!(error["param"].is_null(), "{rule}");
        assert_eq!(error["id"].as_str().unwrap().len(), 32, "{rule}");
        let kind = error["type"].as_str().unwrap();
        assert!(
            kind == "invalid_request_error" || kind == "runtime_error",
            "{rule}"
        );
        if let Some(message) = message {
            assert_eq!(error["message"], message, "{rule}");
        } else {
            assert!(!error["message"].as_str().unwrap().is_empty(), "{rule}");
        }
    }
    assert_eq!(mock.chat_requests().len(), 16);
}

#[tokio::test]
async fn invalid_json_and_auth() {
    let mock = MockHunyuan::start_with(MockConfig::default().with_api_key(KEY)).await;
    let url = format!("{}/chat/completions", mock.base_url());
    let response = client()
        .post(&url)
        .bearer_auth(KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = read_json(response).await;
    assert_eq!(body["error"]["code"], "4003");

    let ok = chat("hunyuan-turbos-latest", json!([user("a")]));
    let missing = client().post(&url).json_body(&ok).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = read_json(missing).await;
    assert_eq!(body["error"]["code"], "401");
    let wrong = client()
        .post(&url)
        .bearer_auth("sk-other")
        .json_body(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(post(&mock, &ok).await.status(), 200);

    // Without a configured key any non-empty bearer passes.
    let open = MockHunyuan::start().await;
    let response = client()
        .post(format!("{}/chat/completions", open.base_url()))
        .bearer_auth("anything")
        .json_body(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn models_lists_the_configured_models() {
    let mock =
        MockHunyuan::start_with(MockConfig::default().with_models(["hy3", "hunyuan-vision"])).await;
    let list: Value = read_json(
        client()
            .get(format!("{}/models", mock.base_url()))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["hy3", "hunyuan-vision"]);
    assert_eq!(list["data"][0]["object"], "model");

    // The default list has the legacy and the TokenHub models.
    let defaults = MockHunyuan::start().await;
    let (status, _) = post_json(&defaults, &chat("hy3-preview", json!([user("a")]))).await;
    assert_eq!(status, 200);
    let (status, _) = post_json(
        &defaults,
        &chat("hunyuan-vision-1.5-instruct", json!([user("a")])),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn stream_repeats_role_has_note_and_no_usage() {
    let mock = MockHunyuan::start().await;
    let body = json!({
        "model": "hunyuan-turbos-latest",
        "messages": [user("one two three four")],
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let response = post(&mock, &body).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (events, clean) = events(response).await;
    assert!(clean);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks = chunks(&events);
    assert!(chunks.len() > 3, "text comes in several chunks");
    let mut text = String::new();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert!(chunk.get("usage").is_none(), "{chunk}");
        assert!(!chunk["note"].as_str().unwrap().is_empty());
        let delta = &chunk["choices"][0]["delta"];
        assert_eq!(delta["role"], "assistant", "{chunk}");
        assert_eq!(delta["reasoning_content"], "", "{chunk}");
        text.push_str(delta["content"].as_str().unwrap());
    }
    assert_eq!(text, "Echo: one two three four");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn stream_reasoning_model_carries_reasoning_content() {
    let mock = MockHunyuan::start().await;
    let mut body = chat("hunyuan-t1-latest", json!([user("why sky blue")]));
    body["stream"] = json!(true);
    let (events, _) = events(post(&mock, &body).await).await;
    let reasoning: String = chunks(&events)
        .iter()
        .map(|c| {
            c["choices"][0]["delta"]["reasoning_content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(reasoning, "Thinking about: why sky blue");
}

#[tokio::test]
async fn tool_call_non_stream_and_stream_with_repeated_id() {
    let mock = MockHunyuan::start().await;
    let mut body = json!({
        "model": "hunyuan-2.0-instruct-20251111",
        "messages": [user("Paris")],
        "tools": weather_tool(),
    });
    let (status, answer) = post_json(&mock, &body).await;
    assert_eq!(status, 200, "{answer}");
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(!choice["message"]["content"].as_str().unwrap().is_empty());
    let call = &choice["message"]["tool_calls"][0];
    let id = call["id"].as_str().unwrap();
    assert!(id.starts_with("call_") && id.len() == 25, "{id}");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));

    body["stream"] = json!(true);
    let (events, clean) = events(post(&mock, &body).await).await;
    assert!(clean);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks = chunks(&events);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0][0]["id"], id, "streamed or not, the same id");
    assert_eq!(calls[1][0]["id"], id, "the id is repeated");
    assert_eq!(calls[0][0]["type"], "function");
    assert_eq!(calls[1][0]["type"], "function");
    assert_eq!(calls[0][0]["function"]["name"], "get_weather");
    assert_eq!(calls[0][0]["function"]["arguments"], "");
    assert_eq!(calls[1][0]["function"]["name"], "");
    assert_eq!(calls[1][0]["function"]["arguments"], r#"{"city":"Paris"}"#);
    for chunk in &chunks {
        assert_eq!(chunk["choices"][0]["delta"]["role"], "assistant");
    }
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // After the tool answered, the mock echoes the tool's text.
    let follow_up = json!({
        "model": "hunyuan-2.0-instruct-20251111",
        "tools": weather_tool(),
        "messages": [
            user("Paris"),
            {"role": "assistant", "content": " ", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": id, "content": "sunny"},
        ],
    });
    let (status, answer) = post_json(&mock, &follow_up).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], "Echo: sunny");
}

#[tokio::test]
async fn stop_string_is_kept() {
    let mock = MockHunyuan::start().await;
    let mut body = chat("hunyuan-turbos-latest", json!([user("alpha beta gamma")]));
    body["stop"] = json!("beta");
    let (_, answer) = post_json(&mock, &body).await;
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Echo: alpha beta"
    );
    body["stream"] = json!(true);
    let (events, _) = events(post(&mock, &body).await).await;
    let text: String = chunks(&events)
        .iter()
        .map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "Echo: alpha beta");
}

#[tokio::test]
async fn vision_describes_images_by_digest() {
    let mock = MockHunyuan::start().await;
    let body = chat(
        "hunyuan-vision",
        json!([{"role": "user", "content": [
            {"type": "text", "text": "what are these"},
            // "hello"
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/b.jpg"}},
        ]}]),
    );
    let (status, answer) = post_json(&mock, &body).await;
    assert_eq!(status, 200, "{answer}");
    let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
    let lines: Vec<&str> = content.lines().collect();
    assert_eq!(lines.len(), 2);
    // sha256("hello") = 2cf24dba5fb0…
    assert!(
        lines[0].starts_with("Description of image 2cf24dba5fb0: "),
        "{content}"
    );
    assert!(lines[1].starts_with("Description of image "));
    assert_ne!(lines[0][..33], lines[1][..33]);

    // Large inline images are read whole (no 2 MB extractor limit).
    let big = vec![7u8; 3 * 1024 * 1024];
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &big);
    let body = chat(
        "hunyuan-vision",
        json!([{"role": "user", "content": [
            {"type": "text", "text": "and this"},
            {"type": "image_url", "image_url": {"url": format!("data:image/jpeg;base64,{encoded}")}},
        ]}]),
    );
    let (status, answer) = post_json(&mock, &body).await;
    assert_eq!(status, 200, "{answer}");
    let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains("3145728 bytes"), "{content}");
}

#[tokio::test]
async fn tokenhub_policy_relaxes_rules_and_cuts_before_stop() {
    let mock =
        MockHunyuan::start_with(MockConfig::default().with_policy(MockPolicy::TokenHub)).await;
    let body = json!({
        "model": "hy3",
        "reasoning_effort": "high",
        "stop": "beta",
        "messages": [
            user("a"), {"role": "assistant", "content": "b", "reasoning_content": "r"},
            user("alpha"), user("beta gamma"),
        ],
    });
    let (status, answer) = post_json(&mock, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], "Echo: ");
    // TokenHub sends a usage chunk when asked (legacy never does).
    let streamed = json!({
        "model": "hy3", "messages": [user("a")], "stream": true,
        "stream_options": {"include_usage": true},
    });
    let (events, clean) = events(post(&mock, &streamed).await).await;
    assert!(clean);
    let chunks = chunks(&events);
    let usage: Vec<&Value> = chunks.iter().filter_map(|c| c.get("usage")).collect();
    assert_eq!(usage.len(), 1);
    assert!(usage[0]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(chunks.last().unwrap()["choices"], json!([]));

    let mut penalties = chat("hy3", json!([user("a")]));
    penalties["frequency_penalty"] = json!(0.5);
    let (status, answer) = post_json(&mock, &penalties).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], "4003");
}

#[tokio::test]
async fn requests_are_recorded_in_order() {
    let mock = MockHunyuan::start().await;
    post(&mock, &chat("hunyuan-turbos-latest", json!([user("one")]))).await;
    client()
        .get(format!("{}/models", mock.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    post(&mock, &chat("hunyuan-turbos-latest", json!([user("two")]))).await;
    assert_eq!(mock.request_count(), 3);
    let requests = mock.requests();
    assert_eq!(requests[0].method, http::Method::POST);
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[0].headers["authorization"], "Bearer sk-test");
    assert_eq!(requests[1].path, "/v1/models");
    assert!(requests[1].body.is_none());
    let chats = mock.chat_requests();
    assert_eq!(chats.len(), 2);
    assert_eq!(chats[1]["messages"][0]["content"], "two");

    // Other routes are recorded too: Hunyuan has no `/v1/responses`.
    let missing = client()
        .post(format!("{}/responses", mock.base_url()))
        .bearer_auth(KEY)
        .json_body(&json!({"model": "hy3", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(read_json(missing).await["error"]["code"], "404");
    assert_eq!(mock.requests()[3].path, "/v1/responses");
    assert_eq!(mock.requests()[3].body.as_ref().unwrap()["input"], "hi");
    mock.clear_requests();
    assert_eq!(mock.request_count(), 0);
}

#[tokio::test]
async fn faults_rate_limit_server_error_status_then_normal() {
    let mock = MockHunyuan::start().await;
    let body = chat("hunyuan-turbos-latest", json!([user("a")]));
    mock.fail_next(
        1,
        Fault::RateLimited {
            retry_after_secs: 7,
        },
    );
    mock.fail_next(1, Fault::ServerError);
    mock.fail_next(1, Fault::Status(503));

    let limited = post(&mock, &body).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    let envelope: Value = read_json(limited).await;
    assert_eq!(envelope["error"]["code"], "429");
    assert_eq!(envelope["error"]["id"].as_str().unwrap().len(), 32);

    let (status, envelope) = post_json(&mock, &body).await;
    assert_eq!(status, 500);
    assert_eq!(envelope["error"]["code"], "500");
    let (status, _) = post_json(&mock, &body).await;
    assert_eq!(status, 503);
    let (status, _) = post_json(&mock, &body).await;
    assert_eq!(status, 200);

    // A standing fault applies until cleared; faults are recorded requests too.
    mock.set_fault(Some(Fault::ServerError));
    assert_eq!(post(&mock, &body).await.status(), 500);
    assert_eq!(post(&mock, &body).await.status(), 500);
    mock.set_fault(None);
    assert_eq!(post(&mock, &body).await.status(), 200);
    assert_eq!(mock.chat_requests().len(), 7);
    // Faults don't touch other routes.
    mock.set_fault(Some(Fault::ServerError));
    let models = client()
        .get(format!("{}/models", mock.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
}

#[tokio::test]
async fn drop_mid_stream_ends_without_done() {
    let mock = MockHunyuan::start().await;
    let mut body = chat(
        "hunyuan-turbos-latest",
        json!([user("one two three four five")]),
    );
    body["stream"] = json!(true);
    mock.fail_next(1, Fault::DropMidStream { after_events: 2 });
    let response = post(&mock, &body).await;
    assert_eq!(response.status(), 200);
    let (events, clean) = events(response).await;
    assert!(!clean, "the body ends with an error");
    assert_eq!(events.len(), 2);
    assert!(!events.iter().any(|e| e == "[DONE]"));

    // Non-streamed: the body is cut short.
    body["stream"] = json!(false);
    mock.fail_next(1, Fault::DropMidStream { after_events: 0 });
    let response = post(&mock, &body).await;
    assert!(response.bytes().await.is_err());

    // Then normal again, and the aborts are not counted as client cancellations.
    let (status, _) = post_json(&mock, &body).await;
    assert_eq!(status, 200);
    eventually(|| mock.in_flight() == 0).await;
    assert_eq!(mock.cancelled(), 0);
}

#[tokio::test]
async fn hang_until_the_client_gives_up() {
    let mock = MockHunyuan::start().await;
    let body = chat("hunyuan-turbos-latest", json!([user("a")]));
    mock.fail_next(1, Fault::Hang);
    let started = std::time::Instant::now();
    let result = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth(KEY)
        .timeout(Duration::from_millis(300))
        .json_body(&body)
        .send()
        .await;
    let err = result.expect_err("the mock never answers");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    eventually(|| mock.cancelled() == 1 && mock.in_flight() == 0).await;
    assert_eq!(post(&mock, &body).await.status(), 200);
}

#[tokio::test]
async fn delay_then_normal_answer() {
    let mock = MockHunyuan::start().await;
    mock.fail_next(1, Fault::Delay(Duration::from_millis(200)));
    let started = std::time::Instant::now();
    let (status, answer) =
        post_json(&mock, &chat("hunyuan-turbos-latest", json!([user("late")]))).await;
    assert_eq!(status, 200);
    assert_eq!(answer["choices"][0]["message"]["content"], "Echo: late");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn max_in_flight_counts_concurrent_requests() {
    let mock = MockHunyuan::start().await;
    mock.set_fault(Some(Fault::Delay(Duration::from_millis(500))));
    let body = chat("hunyuan-turbos-latest", json!([user("a")]));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mock = mock.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(
            async move { post(&mock, &body).await.status() },
        ));
    }
    eventually(|| mock.in_flight() == 4).await;
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(mock.max_in_flight(), 4);
    eventually(|| mock.in_flight() == 0).await;
    assert_eq!(mock.cancelled(), 0);
}

#[tokio::test]
async fn a_stream_counts_until_its_body_ends_or_is_dropped() {
    let mock =
        MockHunyuan::start_with(MockConfig::default().with_chunk_delay(Duration::from_millis(50)))
            .await;
    let mut body = chat("hunyuan-turbos-latest", json!([user("a b c d e f g h")]));
    body["stream"] = json!(true);

    // Headers are back, the body is still flowing: in flight.
    let response = post(&mock, &body).await;
    assert_eq!(mock.in_flight(), 1);
    let (events, clean) = events(response).await;
    assert!(clean && events.last().unwrap() == "[DONE]");
    eventually(|| mock.in_flight() == 0).await;
    assert_eq!(mock.cancelled(), 0);

    // The client walks away mid-stream: cancelled.
    let mut response = post(&mock, &body).await;
    response.chunk().await.unwrap();
    drop(response);
    eventually(|| mock.cancelled() == 1 && mock.in_flight() == 0).await;
}

#[tokio::test]
async fn stop_then_start_on_the_same_port() {
    let mock = MockHunyuan::start().await;
    let addr = mock.addr();
    assert_eq!(
        mock.base_url(),
        format!("http://127.0.0.1:{}/v1", addr.port())
    );
    let body = chat("hunyuan-turbos-latest", json!([user("a")]));
    let http = client();
    let url = format!("{}/chat/completions", mock.base_url());
    let send = || http.post(&url).bearer_auth(KEY).json_body(&body).send();
    assert_eq!(send().await.unwrap().status(), 200);

    // A connection left open (a hanging request) does not keep the server alive.
    mock.set_fault(Some(Fault::Hang));
    let hanging = tokio::spawn({
        let request = http.post(&url).bearer_auth(KEY).json_body(&body);
        async move { request.send().await }
    });
    eventually(|| mock.in_flight() == 1).await;
    mock.stop().await;
    assert!(hanging.await.unwrap().is_err());
    assert!(send().await.is_err(), "nothing listens any more");

    let back = MockHunyuan::start_on(addr, MockConfig::default())
        .await
        .expect("the port is free again");
    assert_eq!(back.addr(), addr);
    assert_eq!(send().await.unwrap().status(), 200);
    assert_eq!(back.request_count(), 1);
}
