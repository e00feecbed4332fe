//! Unit tests of the cascade with a stub describer and a stub inner service.

use super::*;
use crate::extensions::VisionReport;
use axum::body::Body;
use http::{Request, Response, StatusCode};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{service_fn, Layer, ServiceExt};

/// What the stub inner service saw.
type Seen = Arc<Mutex<Vec<Value>>>;

#[derive(Clone)]
struct Stub {
    calls: Arc<AtomicUsize>,
    fail: bool,
    delay: Duration,
}

impl Stub {
    fn new() -> Self {
        Stub {
            calls: Arc::new(AtomicUsize::new(0)),
            fail: false,
            delay: Duration::ZERO,
        }
    }
}

impl tower_service::Service<DescribeRequest> for Stub {
    type Response = Description;
    type Error = DescribeError;
    type Future = futures_util::future::BoxFuture<'static, Result<Description, DescribeError>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), DescribeError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: DescribeRequest) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let (fail, delay) = (self.fail, self.delay);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if fail {
                return Err(DescribeError::Upstream("bad_gateway"));
            }
            let tail = req.url.rsplit('/').next().unwrap_or("").to_owned();
            Ok(Description(format!("picture {tail}").into()))
        })
    }
}

fn app(
    config: CascadeConfig,
    stub: Stub,
) -> (
    impl tower_service::Service<
            Request<Body>,
            Response = Response<Body>,
            Error = Infallible,
            Future = impl Send,
        > + Clone,
    Seen,
) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let inner = service_fn(move |req: Request<Body>| {
        let log = log.clone();
        async move {
            let chat = req
                .extensions()
                .get::<crate::chat::ParsedChat>()
                .map(|c| c.get().clone())
                .unwrap();
            log.lock()
                .unwrap()
                .push(serde_json::to_value(&chat).unwrap());
            let body = if chat.is_stream() {
                "data: {\"choices\":[]}\n\ndata: [DONE]\n\n".to_owned()
            } else {
                "{}".to_owned()
            };
            Ok::<_, Infallible>(Response::new(Body::from(body)))
        }
    });
    let layer = CascadeLayer::new(config.models("eyes-vision", "talker"), stub).unwrap();
    (layer.layer(inner), seen)
}

fn request(body: &Value) -> Request<Body> {
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn text(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn image(url: &str) -> Value {
    json!({"type": "image_url", "image_url": {"url": url}})
}

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "click"}}])
}

#[tokio::test]
async fn images_become_descriptions_in_place_and_the_model_switches() {
    let stub = Stub::new();
    let (svc, seen) = app(CascadeConfig::default(), stub.clone());
    let body = json!({
        "model": "eyes-vision",
        "tools": tools(),
        "messages": [
            {"role": "user", "content": [
                image("https://x/a.png"),
                {"type": "text", "text": "compare"},
                image("https://x/b.png"),
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "click", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": [
                {"type": "text", "text": "clicked"}, image("https://x/a.png"),
            ]},
        ]
    });
    let response = svc.oneshot(request(&body)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let report = *response.extensions().get::<VisionReport>().unwrap();
    assert_eq!(
        (report.images, report.cache_misses, report.cache_hits),
        (3, 2, 0)
    );
    let sent = seen.lock().unwrap()[0].clone();
    assert_eq!(sent["model"], "talker");
    assert_eq!(
        sent["messages"][0]["content"],
        json!([
            {"type": "text", "text": "[Image 1: picture a.png]"},
            {"type": "text", "text": "compare"},
            {"type": "text", "text": "[Image 2: picture b.png]"},
        ])
    );
    assert_eq!(
        sent["messages"][2]["content"][1]["text"],
        "[Image 3: picture a.png]"
    );
    assert!(!sent.to_string().contains("image_url"));
    // The same image twice in one request is described once.
    assert_eq!(stub.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn requests_without_images_pass_untouched() {
    let (svc, seen) = app(CascadeConfig::default(), Stub::new());
    let body = json!({"model": "whatever", "messages": [{"role": "user", "content": "hi"}]});
    let response = svc.oneshot(request(&body)).await.unwrap();
    assert!(response.extensions().get::<VisionReport>().is_none());
    assert_eq!(seen.lock().unwrap()[0], body);
}

#[tokio::test]
async fn vision_model_without_tools_passes_through() {
    let stub = Stub::new();
    let (svc, seen) = app(CascadeConfig::default(), stub.clone());
    let body = json!({"model": "eyes-vision", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what?"}, image("https://x/a.png")
    ]}]});
    svc.oneshot(request(&body)).await.unwrap();
    assert_eq!(seen.lock().unwrap()[0], body);
    assert_eq!(stub.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn switch_model_modes() {
    let body = |model: &str| {
        json!({"model": model, "tools": tools(), "messages": [{"role": "user", "content": [
            {"type": "text", "text": "?"}, image("https://x/a.png")
        ]}]})
    };
    let config = CascadeConfig::default().switch_model(SwitchModel::WhenNotVision);
    let (svc, seen) = app(config, Stub::new());
    svc.clone()
        .oneshot(request(&body("eyes-vision")))
        .await
        .unwrap();
    svc.oneshot(request(&body("hunyuan-turbos-latest")))
        .await
        .unwrap();
    let models: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|v| v["model"].clone())
        .collect();
    assert_eq!(models, [json!("eyes-vision"), json!("talker")]);

    let (svc, seen) = app(
        CascadeConfig::default().switch_model(SwitchModel::Never),
        Stub::new(),
    );
    svc.oneshot(request(&body("my-own-text"))).await.unwrap();
    assert_eq!(seen.lock().unwrap()[0]["model"], "my-own-text");
}

#[tokio::test]
async fn a_failed_description_is_a_502_without_upstream_text() {
    let stub = Stub {
        fail: true,
        ..Stub::new()
    };
    let (svc, seen) = app(CascadeConfig::default(), stub);
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "?"}, image("https://x/a.png")
    ]}]});
    let response = svc.oneshot(request(&body)).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let envelope: Value = serde_json::from_str(&text(response).await).unwrap();
    assert!(envelope["error"]["message"]
        .as_str()
        .unwrap()
        .contains("could not be described"));
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn degrade_mode_puts_a_placeholder_and_marks_the_response() {
    let stub = Stub {
        fail: true,
        ..Stub::new()
    };
    let config = CascadeConfig::default().on_failure(OnVisionFailure::Degrade);
    let (svc, seen) = app(config, stub);
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "?"}, image("https://x/a.png")
    ]}]});
    let response = svc.oneshot(request(&body)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[VISION_HEADER], "degraded");
    let sent = seen.lock().unwrap()[0].clone();
    let placeholder = sent["messages"][0]["content"][1]["text"].as_str().unwrap();
    assert_eq!(
        placeholder,
        "[Image 1: (this image could not be described)]"
    );
}

#[tokio::test]
async fn bad_data_urls_are_400s_naming_the_part() {
    let (svc, _) = app(CascadeConfig::default().max_images(2), Stub::new());
    for (url, needle) in [
        ("data:image/png;base64,###", "invalid base64"),
        ("data:application/pdf;base64,aGVsbG8=", "not an image"),
        ("ftp://x/y.png", "http(s)"),
    ] {
        let body = json!({"model": "m", "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "?"}, image(url)]}
        ]});
        let response = svc.clone().oneshot(request(&body)).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let envelope: Value = serde_json::from_str(&text(response).await).unwrap();
        assert_eq!(
            envelope["error"]["param"], "messages[2].content[1]",
            "{url}"
        );
        assert!(
            envelope["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{envelope}"
        );
    }
    let three = json!({"model": "m", "messages": [{"role": "user", "content": [
        image("https://x/1"), image("https://x/2"), image("https://x/3")
    ]}]});
    let response = svc.oneshot(request(&three)).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(start_paused = true)]
async fn slow_descriptions_commit_a_stream_early_with_keepalives() {
    let stub = Stub {
        delay: Duration::from_secs(12),
        ..Stub::new()
    };
    let (svc, seen) = app(CascadeConfig::default(), stub);
    let body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "?"}, image("https://x/a.png")
    ]}]});
    let response = svc.oneshot(request(&body)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let pending = response
        .extensions()
        .get::<PendingVisionReport>()
        .cloned()
        .unwrap();
    let text = text(response).await;
    // One comment at the commit, then one every 5 s until the description is ready at 12 s.
    assert_eq!(text.matches(": keep-alive").count(), 3, "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(pending.0.get().unwrap().images, 1);
    assert_eq!(seen.lock().unwrap()[0]["model"], "talker");
}

#[tokio::test(start_paused = true)]
async fn a_vision_failure_after_an_early_commit_is_an_sse_error_event() {
    let stub = Stub {
        delay: Duration::from_secs(3),
        fail: true,
        ..Stub::new()
    };
    let (svc, seen) = app(CascadeConfig::default(), stub);
    let body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "?"}, image("https://x/a.png")
    ]}]});
    let response = svc.oneshot(request(&body)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = text(response).await;
    assert!(text.starts_with(": keep-alive\n\n"), "{text}");
    assert!(text.contains("data: {\"error\""), "{text}");
    assert!(text.contains("could not be described"), "{text}");
    assert!(!text.contains("[DONE]"));
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn fast_descriptions_do_not_commit_a_stream_early() {
    let (svc, _) = app(CascadeConfig::default(), Stub::new());
    let body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "?"}, image("https://x/a.png")
    ]}]});
    let response = svc.oneshot(request(&body)).await.unwrap();
    assert!(response.extensions().get::<VisionReport>().is_some());
    assert!(!text(response).await.contains("keep-alive"));
}

#[tokio::test(start_paused = true)]
async fn a_degraded_committed_stream_says_so_in_a_comment() {
    let stub = Stub {
        delay: Duration::from_secs(2),
        fail: true,
        ..Stub::new()
    };
    let config = CascadeConfig::default().on_failure(OnVisionFailure::Degrade);
    let (svc, seen) = app(config, stub);
    let body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "?"}, image("https://x/a.png")
    ]}]});
    let response = svc.oneshot(request(&body)).await.unwrap();
    assert_eq!(response.headers()[VISION_HEADER], "committed-early");
    let text = text(response).await;
    assert!(
        text.contains(": x-hunyuan-proxy-vision: degraded\n\n"),
        "{text}"
    );
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

/// The cascade with TokenHub's model table: what the upstream gets for `model`.
async fn with_table(model: &str) -> (Value, usize, Response<Body>) {
    let stub = Stub::new();
    let config = CascadeConfig::default()
        .model_table(Arc::new(crate::models::ModelTable::builtin()))
        .image_types(Some(vec!["png".into(), "jpeg".into()]));
    let (svc, seen) = app(config, stub.clone());
    let body = json!({"model": model, "tools": tools(), "messages": [
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                     image("https://x/shot.png")]}]});
    let response = svc.oneshot(request(&body)).await.unwrap();
    let sent = seen.lock().unwrap().first().cloned().unwrap_or_default();
    (sent, stub.calls.load(Ordering::SeqCst), response)
}

#[tokio::test]
async fn a_model_that_sees_gets_its_images_natively_with_tools() {
    let (sent, vision_calls, response) = with_table("hy4").await;
    assert_eq!(vision_calls, 0, "no describe call for a model that sees");
    assert_eq!(sent["model"], "hy4");
    assert_eq!(
        sent["messages"][0]["content"][1]["image_url"]["url"],
        "https://x/shot.png"
    );
    let report = *response.extensions().get::<VisionReport>().unwrap();
    assert_eq!((report.images, report.cache_misses), (1, 0));
}

/// A tool result with an image (Claude Code's Read of a PNG, Codex's `view_image`) sent to
/// `model`, with its text or without.
async fn tool_image_to(model: &str, with_text: bool) -> (Value, usize) {
    let stub = Stub::new();
    let config =
        CascadeConfig::default().model_table(Arc::new(crate::models::ModelTable::builtin()));
    let (svc, seen) = app(config, stub.clone());
    let mut parts = vec![image("https://x/shot.png")];
    if with_text {
        parts.insert(0, json!({"type": "text", "text": "read 1 file"}));
    }
    let body = json!({"model": model, "tools": tools(), "messages": [
        {"role": "user", "content": "look at shot.png"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "Read", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": parts}]});
    svc.oneshot(request(&body)).await.unwrap();
    let sent = seen.lock().unwrap().first().cloned().unwrap_or_default();
    (sent, stub.calls.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_tool_result_image_moves_to_a_user_turn_for_a_model_that_sees() {
    for with_text in [true, false] {
        let (sent, vision_calls) = tool_image_to("hy4", with_text).await;
        assert_eq!(vision_calls, 0);
        let messages = sent["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 4, "{sent:#}");
        let tool = &messages[2];
        assert_eq!(tool["role"], "tool");
        assert!(!tool.to_string().contains("image_url"), "{tool}");
        let text = if with_text {
            "read 1 file"
        } else {
            super::image::TOOL_IMAGES_MOVED
        };
        assert_eq!(tool["content"][0]["text"], text);
        assert_eq!(messages[3]["role"], "user");
        assert_eq!(
            messages[3]["content"][0]["text"],
            "[Image from tool call call_1]"
        );
        assert_eq!(
            messages[3]["content"][1]["image_url"]["url"],
            "https://x/shot.png"
        );
    }
    // A model that cannot see still gets the description in the tool result itself.
    let (sent, vision_calls) = tool_image_to("hy3", true).await;
    assert_eq!(vision_calls, 1);
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{sent:#}");
    assert!(messages[2]
        .to_string()
        .contains("[Image 1: picture shot.png]"));
}

#[tokio::test]
async fn a_model_that_cannot_see_gets_descriptions_and_keeps_its_model() {
    for model in [
        "hy3",
        "deepseek-v4-flash",
        "kimi-k3",
        "minimax-m3",
        "glm-5.2",
    ] {
        let (sent, vision_calls, _) = with_table(model).await;
        assert_eq!(vision_calls, 1, "{model}");
        assert_eq!(sent["model"], model, "the client's model is called");
        assert_eq!(
            sent["messages"][0]["content"][1]["text"],
            "[Image 1: picture shot.png]"
        );
    }
}

#[tokio::test]
async fn an_image_type_the_upstream_refuses_is_a_400_before_any_call() {
    let stub = Stub::new();
    let config = CascadeConfig::default()
        .model_table(Arc::new(crate::models::ModelTable::builtin()))
        .image_types(Some(vec!["png".into()]));
    let (svc, seen) = app(config, stub.clone());
    let body = json!({"model": "hy4", "messages": [{"role": "user", "content": [
        image("data:image/gif;base64,R0lGODlhAQABAAAAACw=")]}]});
    let response = svc.oneshot(request(&body)).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(answer["error"]["param"], "messages[0].content[0]");
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(stub.calls.load(Ordering::SeqCst), 0);
}
