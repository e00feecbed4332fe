//! The bad-input suite: hostile and malformed requests, each with its expected status and the
//! OpenAI envelope. None may produce a 5xx, a panic, a hang, or harm a request in flight.

use crate::common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::Duration;

/// What a case must get back.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Exactly this status with the envelope.
    Status(u16),
    /// Any 2xx or 4xx, decided by the upstream's own rules, never a 5xx.
    NotServerError,
}

struct Case {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    expect: Expect,
    param: Option<&'static str>,
}

fn case(name: &'static str, body: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        path: "/v1/chat/completions",
        content_type: "application/json",
        body: body.into(),
        expect,
        param: None,
    }
}

fn with_param(mut c: Case, param: &'static str) -> Case {
    c.param = Some(param);
    c
}

fn chat_with(field: &str, value: Value) -> Vec<u8> {
    let mut body = json!({
        "model": "hunyuan-turbos-latest",
        "messages": [{"role": "user", "content": "hi"}]
    });
    body[field] = value;
    serde_json::to_vec(&body).unwrap()
}

fn chat_with_message(message: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"model": "hunyuan-turbos-latest", "messages": [message]})).unwrap()
}

fn image_message(url: &str) -> Value {
    json!({"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": url}}
    ]})
}

fn cases() -> Vec<Case> {
    use Expect::*;
    let big = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(30 * 1024 * 1024)
    );
    let deep = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"a"}}],"x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let many_messages: Vec<Value> = (0..10_000)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            json!({"role": role, "content": format!("turn {i}")})
        })
        .collect();
    let many_images: Vec<Value> = std::iter::once(json!({"type": "text", "text": "look"}))
        .chain((0..10_000).map(|i| {
            json!({"type": "image_url", "image_url": {"url": format!("https://img.example/{i}.png")}})
        }))
        .collect();
    vec![
        case("invalid JSON", "{", Status(400)),
        case(
            "truncated JSON",
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}"#,
            Status(400),
        ),
        case("empty body", "", Status(400)),
        case("JSON string", r#""hello""#, Status(400)),
        Case {
            content_type: "text/plain",
            ..case("text/plain", chat_with("stream", json!(false)), Status(415))
        },
        Case {
            content_type: "application/x-www-form-urlencoded",
            ..case("form content type", "model=m&messages=hi", Status(415))
        },
        case("30 MB body", big, Status(413)),
        case("100,000-deep nesting", deep, Status(400)),
        case(
            "lone UTF-16 surrogate",
            r#"{"model":"m","messages":[{"role":"user","content":"\ud800"}]}"#,
            Status(400),
        ),
        case(
            "NaN",
            r#"{"model":"m","messages":[{"role":"user","content":"a"}],"temperature":NaN}"#,
            Status(400),
        ),
        case(
            "Infinity",
            r#"{"model":"m","messages":[{"role":"user","content":"a"}],"top_p":Infinity}"#,
            Status(400),
        ),
        case(
            "huge integer",
            r#"{"model":"hunyuan-turbos-latest","messages":[{"role":"user","content":"a"}],"max_tokens":123456789012345678901234567890}"#,
            NotServerError,
        ),
        case(
            "duplicate keys",
            r#"{"model":"a","model":"b","messages":[{"role":"user","content":"a"}]}"#,
            Status(400),
        ),
        with_param(
            case(
                "messages null",
                chat_with("messages", Value::Null),
                Status(400),
            ),
            "messages",
        ),
        with_param(
            case(
                "messages number",
                chat_with("messages", json!(42)),
                Status(400),
            ),
            "messages",
        ),
        with_param(
            case(
                "messages string",
                chat_with("messages", json!("hi")),
                Status(400),
            ),
            "messages",
        ),
        with_param(
            case(
                "messages object",
                chat_with("messages", json!({"role": "user"})),
                Status(400),
            ),
            "messages",
        ),
        with_param(
            case(
                "message not an object",
                chat_with("messages", json!([42])),
                Status(400),
            ),
            "messages[0]",
        ),
        with_param(
            case(
                "content number",
                chat_with_message(json!({"role": "user", "content": 42})),
                Status(400),
            ),
            "messages[0].content",
        ),
        with_param(
            case(
                "content object",
                chat_with_message(json!({"role": "user", "content": {"x": 1}})),
                Status(400),
            ),
            "messages[0].content",
        ),
        with_param(
            case(
                "content bool",
                chat_with_message(json!({"role": "user", "content": true})),
                Status(400),
            ),
            "messages[0].content",
        ),
        with_param(
            case(
                "role number",
                chat_with_message(json!({"role": 42, "content": "a"})),
                Status(400),
            ),
            "messages[0].role",
        ),
        with_param(
            case(
                "unknown role",
                chat_with_message(json!({"role": "wizard", "content": "a"})),
                Status(400),
            ),
            "messages[0].role",
        ),
        with_param(
            case(
                "missing role",
                chat_with_message(json!({"content": "a"})),
                Status(400),
            ),
            "messages[0].role",
        ),
        with_param(
            case("tools string", chat_with("tools", json!("x")), Status(400)),
            "tools",
        ),
        with_param(
            case(
                "tool without function",
                chat_with("tools", json!([{"type": "function"}])),
                Status(400),
            ),
            "tools[0].function.name",
        ),
        with_param(
            case(
                "stream string",
                chat_with("stream", json!("yes")),
                Status(400),
            ),
            "stream",
        ),
        with_param(
            case("stream number", chat_with("stream", json!(1)), Status(400)),
            "stream",
        ),
        with_param(
            case(
                "stream_options string",
                chat_with("stream_options", json!("x")),
                Status(400),
            ),
            "stream_options",
        ),
        with_param(
            case(
                "include_usage string",
                chat_with("stream_options", json!({"include_usage": "yes"})),
                Status(400),
            ),
            "stream_options.include_usage",
        ),
        with_param(
            case("stop number", chat_with("stop", json!(42)), Status(400)),
            "stop",
        ),
        with_param(
            case(
                "unknown content part",
                chat_with_message(
                    json!({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}),
                ),
                Status(400),
            ),
            "messages[0].content[0].type",
        ),
        with_param(
            case(
                "image_url without url",
                chat_with_message(
                    json!({"role": "user", "content": [{"type": "image_url", "image_url": {}}]}),
                ),
                Status(400),
            ),
            "messages[0].content[0].image_url.url",
        ),
        case(
            "bad base64 image",
            chat_with_message(image_message("data:image/png;base64,!!!not-base64!!!")),
            Status(400),
        ),
        case(
            "non-image MIME",
            chat_with_message(image_message("data:text/html;base64,PGgxPmhpPC9oMT4=")),
            Status(400),
        ),
        with_param(
            case("empty model", chat_with("model", json!("")), Status(400)),
            "model",
        ),
        with_param(
            case("model number", chat_with("model", json!(7)), Status(400)),
            "model",
        ),
        case(
            "unknown model",
            chat_with("model", json!("gpt-99-turbo")),
            Status(400),
        ),
        case("n = 2", chat_with("n", json!(2)), Status(400)),
        case(
            "10,000 messages",
            serde_json::to_vec(
                &json!({"model": "hunyuan-turbos-latest", "messages": many_messages}),
            )
            .unwrap(),
            NotServerError,
        ),
        case(
            "10,000 images",
            chat_with_message(json!({"role": "user", "content": many_images})),
            Status(400),
        ),
        case(
            "1 MB tool name",
            chat_with(
                "tools",
                json!([{"type": "function", "function": {"name": "a".repeat(1 << 20), "parameters": {"type": "object"}}}]),
            ),
            NotServerError,
        ),
        case(
            "header injection in model",
            chat_with("model", json!("m\r\nX-Injected: 1")),
            Status(400),
        ),
        Case {
            path: "/v1/completions",
            ..with_param(
                case(
                    "completions prompt number",
                    r#"{"model":"m","prompt":42}"#,
                    Status(400),
                ),
                "prompt",
            )
        },
        Case {
            path: "/v1/completions",
            ..with_param(
                case(
                    "completions without prompt",
                    r#"{"model":"m"}"#,
                    Status(400),
                ),
                "prompt",
            )
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_4xx_envelopes_and_harm_nothing_in_flight() {
    let t = TestProxy::start().await;
    // A slow stream in flight all along: it must finish intact whatever the others send.
    let mut slow_body = simple_chat(true);
    slow_body["messages"][1]["content"] =
        json!("please stay in flight while hostile requests pass");
    let slow = t.post("/v1/chat/completions", &slow_body);

    let hostile = async {
        let cases = cases();
        assert!(cases.len() >= 35, "the suite shrank to {}", cases.len());
        for c in cases {
            let sent = t
                .client
                .post(t.url(c.path))
                .header("content-type", c.content_type)
                .body(c.body)
                .send();
            let response = match tokio::time::timeout(Duration::from_secs(20), sent)
                .await
                .unwrap_or_else(|_| panic!("case `{}` hung", c.name))
            {
                Ok(response) => response,
                // The proxy answers 413 from Content-Length without reading the body and
                // closes; a client still writing may see the closed connection instead.
                Err(err) if matches!(c.expect, Expect::Status(413)) && !err.is_timeout() => {
                    continue
                }
                Err(err) => panic!("case `{}`: {err}", c.name),
            };
            let status = response.status().as_u16();
            assert!(
                !response.headers().contains_key("x-injected"),
                "case `{}` injected a header",
                c.name
            );
            match c.expect {
                Expect::Status(expected) => {
                    assert_eq!(status, expected, "case `{}`", c.name);
                    let envelope = expect_envelope(response, expected).await;
                    if let Some(param) = c.param {
                        assert_eq!(
                            envelope["error"]["param"],
                            json!(param),
                            "case `{}`",
                            c.name
                        );
                    }
                }
                Expect::NotServerError => {
                    assert!(status < 500, "case `{}` got {status}", c.name);
                    if status >= 400 {
                        expect_envelope(response, status).await;
                    }
                }
            }
        }
    };
    let (slow, ()) = tokio::join!(slow, hostile);
    assert_eq!(slow.status(), 200);
    let events = sse_data(slow).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn a_30_mb_chunked_body_is_413() {
    let t = TestProxy::start().await;
    let chunks = std::iter::once(Ok::<_, std::io::Error>(
        br#"{"model":"m","messages":[{"role":"user","content":""#.to_vec(),
    ))
    .chain((0..30).map(|_| Ok(vec![b'a'; 1024 * 1024])));
    let response = t
        .client
        .post(t.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    // The proxy may answer 413 and close before the client finished sending; either the client
    // sees the 413, or the connection is closed on it. It must never see a 5xx or a 200.
    if let Ok(response) = response {
        expect_envelope(response, 413).await;
    }
    assert_eq!(t.mock.request_count(), 0);
}

#[tokio::test]
async fn http11_pipelining_answers_both_requests_in_order() {
    let t = TestProxy::start().await;
    let addr = t.addr;
    let first = serde_json::to_vec(&json!({"model": "hunyuan-turbos-latest", "messages": [{"role": "user", "content": "first"}]})).unwrap();
    let second = serde_json::to_vec(&json!({"model": "hunyuan-turbos-latest", "messages": [{"role": "user", "content": "second"}]})).unwrap();
    let text = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut wire = Vec::new();
        for (body, close) in [(&first, false), (&second, true)] {
            wire.extend_from_slice(
                format!(
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
                    body.len(),
                    if close { "Connection: close\r\n" } else { "" }
                )
                .as_bytes(),
            );
            wire.extend_from_slice(body);
        }
        stream.write_all(&wire).unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    let first_at = text.find("Echo: first").expect("first answer");
    let second_at = text.find("Echo: second").expect("second answer");
    assert!(first_at < second_at);
}

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    let t = TestProxy::start().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .post(t.url("/v1/chat/completions"))
        .json(&simple_chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
}
