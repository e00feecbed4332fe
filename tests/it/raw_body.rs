//! A request nobody changed is forwarded as the client's own bytes; any change — by a built-in
//! layer or a user's own — reaches the upstream.

use axum::body::{Body, Bytes};
use axum::routing::post;
use axum::Router;
use http::{header, Request};
use hunyuan_proxy::chat::{put_chat, take_chat, Content, ParseLayer, ParsedChat};
use hunyuan_proxy::upstream::{Upstream, UpstreamConfig};
use hunyuan_proxy::ChatStack;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tower::{Layer, Service, ServiceExt};

const ANSWER: &str = r#"{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

/// An upstream that records the exact bytes of every chat request.
async fn recording_upstream() -> (SocketAddr, Arc<Mutex<Vec<Bytes>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let router = Router::new().route(
        "/v1/chat/completions",
        post(move |body: Bytes| {
            record.lock().unwrap().push(body);
            async { ([(header::CONTENT_TYPE, "application/json")], ANSWER) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, seen)
}

fn upstream(addr: SocketAddr) -> Upstream {
    Upstream::new(UpstreamConfig::new(format!("http://{addr}/v1"))).unwrap()
}

fn request(body: &'static str) -> Request<Body> {
    Request::post("/v1/chat/completions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

/// Odd spacing and key order: only the client's own bytes look like this.
const UNTOUCHED: &str = r#"{ "messages" : [ {"role":"user", "content":"Hello"} ],  "model":"hunyuan-turbos-latest", "x_custom": {"b":1,"a":2} }"#;

async fn send<S>(mut service: S, body: &'static str)
where
    S: Service<Request<Body>, Response = http::Response<Body>>,
    S::Error: std::fmt::Debug,
{
    let response = service
        .ready()
        .await
        .unwrap()
        .call(request(body))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

fn last_json(seen: &Mutex<Vec<Bytes>>) -> Value {
    serde_json::from_slice(seen.lock().unwrap().last().unwrap()).unwrap()
}

#[tokio::test]
async fn the_ready_made_stack_forwards_an_unchanged_request_byte_for_byte() {
    let (addr, seen) = recording_upstream().await;
    send(
        ChatStack::builder(upstream(addr))
            .build()
            .unwrap()
            .service(),
        UNTOUCHED,
    )
    .await;
    assert_eq!(seen.lock().unwrap().last().unwrap(), UNTOUCHED.as_bytes());
}

#[tokio::test]
async fn a_request_the_fix_layer_changed_is_serialized() {
    let (addr, seen) = recording_upstream().await;
    // Two user turns in a row: the alternation rule merges them.
    send(
        ChatStack::builder(upstream(addr))
            .build()
            .unwrap()
            .service(),
        r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}"#,
    )
    .await;
    assert_eq!(last_json(&seen)["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn override_fields_are_stripped_from_an_unchanged_request() {
    let (addr, seen) = recording_upstream().await;
    let service = ParseLayer::default().layer(upstream(addr));
    send(
        service,
        r#"{"model":"m","messages":[{"role":"user","content":"a"}],"api_base":"http://evil","keep":1}"#,
    )
    .await;
    let body = last_json(&seen);
    assert!(body.get("api_base").is_none());
    assert_eq!(body["keep"], 1);
}

#[tokio::test]
async fn a_custom_layer_that_takes_and_changes_the_request_is_seen_upstream() {
    let (addr, seen) = recording_upstream().await;
    let upstream = upstream(addr);
    let custom = tower::service_fn(move |mut req: Request<Body>| {
        let upstream = upstream.clone();
        async move {
            let mut chat = take_chat(&mut req).await.unwrap();
            chat.model = "changed-by-take".into();
            put_chat(&mut req, chat);
            upstream.oneshot(req).await
        }
    });
    send(ParseLayer::default().layer(custom), UNTOUCHED).await;
    assert_eq!(last_json(&seen)["model"], "changed-by-take");
}

#[tokio::test]
async fn a_custom_layer_that_replaces_the_request_is_seen_upstream() {
    let (addr, seen) = recording_upstream().await;
    let upstream = upstream(addr);
    // Not through take_chat: a changed copy put in place of the parsed request.
    let custom = tower::service_fn(move |mut req: Request<Body>| {
        let upstream = upstream.clone();
        async move {
            let mut chat = req.extensions().get::<ParsedChat>().unwrap().get().clone();
            chat.model = "changed-by-copy".into();
            req.extensions_mut().insert(ParsedChat::new(chat));
            upstream.oneshot(req).await
        }
    });
    send(ParseLayer::default().layer(custom), UNTOUCHED).await;
    assert_eq!(last_json(&seen)["model"], "changed-by-copy");
}

#[tokio::test]
async fn a_custom_layer_that_edits_in_place_is_seen_upstream() {
    let (addr, seen) = recording_upstream().await;
    let upstream = upstream(addr);
    // Mutable access is the only way to change the request where it lies, and it drops the
    // client's bytes by itself: nothing else to remember.
    let custom = tower::service_fn(move |mut req: Request<Body>| {
        let upstream = upstream.clone();
        async move {
            let parsed = req.extensions_mut().get_mut::<ParsedChat>().unwrap();
            parsed.get_mut().model = "changed-in-place".into();
            upstream.oneshot(req).await
        }
    });
    send(ParseLayer::default().layer(custom), UNTOUCHED).await;
    assert_eq!(last_json(&seen)["model"], "changed-in-place");
}

#[tokio::test]
async fn a_request_put_back_in_the_same_allocation_is_seen_upstream() {
    let (addr, seen) = recording_upstream().await;
    let upstream = upstream(addr);
    // The request is moved out of the extensions, its message list changed without
    // reallocating, and put back: the same addresses as the parsed request, new content. (An
    // identity check by address would forward the client's stale bytes here.)
    let custom = tower::service_fn(move |mut req: Request<Body>| {
        let upstream = upstream.clone();
        async move {
            let mut chat = req
                .extensions_mut()
                .remove::<ParsedChat>()
                .unwrap()
                .into_request();
            let before = chat.messages.as_ptr() as usize;
            chat.messages[0].content = Some(Content::Text("Changed in the same list".into()));
            assert_eq!(chat.messages.as_ptr() as usize, before);
            req.extensions_mut().insert(ParsedChat::from(chat));
            upstream.oneshot(req).await
        }
    });
    send(ParseLayer::default().layer(custom), UNTOUCHED).await;
    assert_eq!(
        last_json(&seen)["messages"][0]["content"],
        "Changed in the same list"
    );
}
