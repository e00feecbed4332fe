//! Fixed work for counting instructions per request of the dialect ingresses: N requests of
//! the 10-message tool conversation of `benches/overhead.rs` through one route's ingress, the
//! ParseLayer and the FixLayer, in front of a stand-in upstream that serializes the request
//! (as the upstream does when the client's bytes are gone) and answers a canned completion.
//! Wall-clock time on a shared machine says little; callgrind's counts repeat exactly.
//!
//! Run with:
//!
//! ```sh
//! cargo build --release --example dialect_instructions
//! B=target/release/examples/dialect_instructions
//! for n in 100 600; do
//!   valgrind --tool=callgrind --callgrind-out-file=cg-messages-$n $B messages $n
//! done
//! # per request = (total of cg-messages-600 - total of cg-messages-100) / 500
//! ```
//!
//! The dialect is `chat`, `messages` or `responses`; a third argument prints the answers.
use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use hunyuan_proxy::chat::{ParseLayer, ParsedChat};
use hunyuan_proxy::fix::{FixConfig, FixLayer};
use hunyuan_proxy::ingress::messages::{MessagesConfig, MessagesLayer};
use hunyuan_proxy::ingress::responses::{ResponsesConfig, ResponsesLayer};
use tower::util::BoxCloneSyncService;
use tower::{service_fn, Layer, ServiceExt};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHAT_JSON: &str = r#"{"id":"3a3f0c1e0f8b4d6f9a2b7c5d1e4f6a8b","object":"chat.completion","created":1764200000,"model":"hunyuan-turbos-latest","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! I am Hunyuan. How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":42,"completion_tokens":13,"total_tokens":55},"note":"以上内容为AI生成，不代表开发者立场，请勿删除或修改本标记"}"#;

/// The overhead bench's 10-message tool conversation in `dialect` (`benches/data/`).
fn tool_conversation(dialect: &str) -> Bytes {
    Bytes::from_static(match dialect {
        "chat" => include_bytes!("../benches/data/tool-conversation-chat.json"),
        "messages" => include_bytes!("../benches/data/tool-conversation-messages.json"),
        "responses" => include_bytes!("../benches/data/tool-conversation-responses.json"),
        other => panic!("no tool conversation in the {other} dialect"),
    })
}

type Svc = BoxCloneSyncService<Request<Body>, Response<Body>, std::convert::Infallible>;

fn main() {
    let mut args = std::env::args().skip(1);
    let dialect = args.next().unwrap_or_else(|| "chat".into());
    let n: usize = args.next().map_or(100, |s| s.parse().unwrap());
    let print = args.next().is_some();
    // Stand-in upstream: the bytes it would send, then the canned answer.
    let upstream = service_fn(|req: Request<Body>| async move {
        let chat = req.extensions().get::<ParsedChat>().unwrap();
        let bytes = match chat.raw() {
            Some(raw) => raw.clone(),
            None => hunyuan_proxy::chat::to_json_bytes(chat),
        };
        std::hint::black_box(bytes);
        let mut response = Response::new(Body::from(CHAT_JSON));
        response
            .headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        Ok::<_, std::convert::Infallible>(response)
    });
    let fix = FixLayer::new(FixConfig::default()).unwrap();
    let chat: Svc = BoxCloneSyncService::new(ParseLayer::new(20 << 20).layer(fix.layer(upstream)));
    let (service, path): (Svc, &str) = match dialect.as_str() {
        "chat" => (chat, "/v1/chat/completions"),
        "messages" => (
            BoxCloneSyncService::new(
                MessagesLayer::new(MessagesConfig::default())
                    .unwrap()
                    .layer(chat),
            ),
            "/v1/messages",
        ),
        _ => (
            BoxCloneSyncService::new(
                ResponsesLayer::new(ResponsesConfig::default())
                    .unwrap()
                    .layer(chat),
            ),
            "/v1/responses",
        ),
    };
    let body = tool_conversation(&dialect);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        for _ in 0..n {
            let req = Request::post(path)
                .header("content-type", "application/json")
                .header("content-length", body.len())
                .body(Body::from(body.clone()))
                .unwrap();
            let response = service.clone().oneshot(req).await.unwrap();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            if print {
                println!("{}", String::from_utf8_lossy(&bytes));
            }
            std::hint::black_box(bytes);
        }
    });
}
