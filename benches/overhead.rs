//! The proxy's overhead against the direct upstream and a raw pass-through floor, in one run.
//!
//! Run with:
//!
//! ```sh
//! cargo bench --bench overhead                 # full run (~1 minute)
//! cargo bench --bench overhead -- --quick      # smoke run (CI): a few hundred requests
//! cargo bench --bench overhead -- --duration 20 --concurrency 64
//! cargo bench --bench overhead -- --count 1000  # fixed work, for callgrind instruction counts
//! cargo bench --bench overhead -- --streams 2000  # hold 2,000 streams open (default 1,000)
//! ```
//!
//! In one process, each on its own thread with its own single-threaded runtime:
//! - a canned upstream (hyper; fixed Hunyuan-shaped JSON and SSE bodies, no validation),
//! - the **floor**: a raw hyper pass-through that forwards bytes unparsed (keep-alive pool),
//! - the **proxy**: the full ready-made router (`Proxy::router()`, every layer the config turns
//!   on) served by axum,
//! - a load generator (hyper client, keep-alive).
//!
//! Then the proxy alone, in a child process (this binary started again with `--serve-proxy
//! <upstream>`, a multi-thread runtime as in `examples/proxy.rs`), for what one process cannot
//! show: start to ready (spawn to the first 200 on `/health/ready`), its RSS idle, and its RSS
//! with 1,000 streams held open at once (the canned upstream holds a stream whose request
//! carries a marker after its first event, until the bench releases it).
//!
//! It measures latency at concurrency 1 (non-stream and stream: time to first and last byte),
//! throughput at concurrency N, CPU time per request of the floor's and the proxy's threads (from
//! `/proc/self/task/*/stat`), and a request carrying a 1 MiB image whose description is cached.
//! Every figure is printed next to its target as a ratio to the floor measured in the same run.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hunyuan_proxy::config::{Config, Secret};
use hunyuan_proxy::Proxy;
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// The whole bench process (upstream, floor, proxy, load generator) runs on the example server's
// allocator, so the floor and the proxy are measured on the allocator a deployment uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHAT_JSON: &str = r#"{"id":"3a3f0c1e0f8b4d6f9a2b7c5d1e4f6a8b","object":"chat.completion","created":1764200000,"model":"hunyuan-turbos-latest","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! I am Hunyuan. How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":42,"completion_tokens":13,"total_tokens":55},"note":"以上内容为AI生成，不代表开发者立场，请勿删除或修改本标记"}"#;

fn sse_body() -> Bytes {
    let mut out = String::new();
    for (i, word) in ["Hello", "! I", " am", " Hunyuan", "."].iter().enumerate() {
        out.push_str(&format!(
            "data: {{\"id\":\"3a3f0c1e\",\"object\":\"chat.completion.chunk\",\"created\":1764200000,\"model\":\"hunyuan-turbos-latest\",\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"{word}\",\"reasoning_content\":\"\"}},\"finish_reason\":{}}}],\"note\":\"以上内容为AI生成\"}}\n\n",
            if i == 4 { "\"stop\"" } else { "null" }
        ));
    }
    out.push_str("data: [DONE]\n\n");
    Bytes::from(out)
}

/// The same 10-message tool conversation (a system prompt, two tool calls and their results,
/// three user turns) in each client dialect: chat, Anthropic Messages and Responses; each
/// non-stream, ending in a user turn. The bodies are in `benches/data/`, shared with
/// `examples/dialect_instructions.rs` and `scripts/bench-nginx.sh`.
fn tool_conversation(dialect: &str) -> Bytes {
    Bytes::from_static(match dialect {
        "chat" => include_bytes!("data/tool-conversation-chat.json"),
        "messages" => include_bytes!("data/tool-conversation-messages.json"),
        "responses" => include_bytes!("data/tool-conversation-responses.json"),
        other => panic!("no tool conversation in the {other} dialect"),
    })
}

/// The dialect routes the bench compares, with the body each gets.
const DIALECTS: &[(&str, &str)] = &[
    ("chat", CHAT_PATH),
    ("messages", "/v1/messages"),
    ("responses", "/v1/responses"),
];

/// A ~1 KB two-message chat request.
fn chat_request(stream: bool) -> Bytes {
    let system = "You are a helpful assistant. ".repeat(12);
    let user = "Summarise the attached meeting notes in three bullet points, please. ".repeat(8);
    Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "model": "hunyuan-turbos-latest",
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user}
            ],
            "stream": stream,
            "temperature": 0.7
        }))
        .unwrap(),
    )
}

fn image_request() -> Bytes {
    use base64::Engine;
    // 1 MiB of deterministic bytes behind a PNG signature.
    let mut image = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    image.extend((0..(1 << 20) - 8).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&image)
    );
    Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "model": "hunyuan-turbos-latest",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in this screenshot?"},
                {"type": "image_url", "image_url": {"url": url}}
            ]}]
        }))
        .unwrap(),
    )
}

struct Options {
    quick: bool,
    duration: Duration,
    concurrency: usize,
    /// `--count N`: send exactly N non-stream and N stream requests at concurrency 1 through the
    /// floor and through the proxy, print nothing else and exit; for instruction counts under
    /// callgrind (see `docs/performance.md`), which the noise of a shared machine leaves alone.
    count: Option<usize>,
    /// Pin the hop (floor or proxy) to CPU 1 and the upstream and load generator to CPU 0, as
    /// `docs/performance.md` describes; `--no-pin` leaves placement to the scheduler.
    pin: bool,
    /// `--streams N`: streams held open at once through the proxy in its own process (1,000,
    /// the target's figure, in full and quick runs).
    streams: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let quick = args.iter().any(|a| a == "--quick");
    Options {
        quick,
        duration: Duration::from_secs(value("--duration").unwrap_or(if quick { 1 } else { 10 })),
        concurrency: value("--concurrency").unwrap_or(32) as usize,
        count: value("--count").map(|n| n as usize),
        pin: !args.iter().any(|a| a == "--no-pin"),
        streams: value("--streams").unwrap_or(1000) as usize,
    }
}

/// The CPU the hops (floor and proxy) run on; the upstream and the load generator use CPU 0.
const HOP_CPU: usize = 1;

static PIN: AtomicBool = AtomicBool::new(false);

/// Pins the calling thread to `cpu` when pinning is on and the machine has that CPU.
fn pin_to(cpu: usize) {
    if !PIN.load(Ordering::Relaxed) {
        return;
    }
    // SAFETY: `set` is a plain bit set initialised by `CPU_ZERO`; the call only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Lets the calling thread run on every CPU again.
fn unpin() {
    // SAFETY: as in `pin_to`; CPUs the machine lacks are ignored by the kernel.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for cpu in 0..libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Runs `make` on a new named thread, pinned to `cpu`, with a current-thread runtime; returns
/// the bound address.
fn spawn_server<F, Fut>(name: &str, cpu: usize, make: F) -> SocketAddr
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            pin_to(cpu);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                make(listener).await;
            });
        })
        .unwrap();
    rx.recv().unwrap()
}

async fn serve_hyper<S, B>(listener: tokio::net::TcpListener, service: S)
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + 'static,
    S::Future: 'static,
    B: http_body::Body<Data = Bytes> + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let service = service.clone();
        tokio::task::spawn_local(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Marks a stream request whose answer the canned upstream holds open after the first event,
/// until the bench releases it (the open-streams scenario). The proxy forwards message text
/// unchanged, so the marker reaches the upstream inside the user message.
const HOLD_MARKER: &str = "[bench: hold this stream open]";

/// The canned upstream. A stream request carrying [`HOLD_MARKER`] gets its first event at once
/// and the rest once `release` turns true.
fn canned_upstream(release: tokio::sync::watch::Receiver<bool>) -> SocketAddr {
    let sse = sse_body();
    spawn_server("bench-upstream", 0, move |listener| async move {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let sse = sse.clone();
                    let release = release.clone();
                    async move {
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let stream = memchr_stream(&body);
                        let hold =
                            stream && memchr::memmem::find(&body, HOLD_MARKER.as_bytes()).is_some();
                        let response = if hold {
                            Response::builder()
                                .header("content-type", "text/event-stream")
                                .body(Either::Right(held_sse(&sse, release)))
                        } else if stream {
                            Response::builder()
                                .header("content-type", "text/event-stream")
                                .body(Either::Left(Full::new(sse)))
                        } else {
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Either::Left(Full::new(Bytes::from_static(
                                    CHAT_JSON.as_bytes(),
                                ))))
                        };
                        Ok::<_, Infallible>(response.unwrap())
                    }
                });
                serve_hyper(listener, service).await;
            })
            .await
    })
}

/// The canned SSE answer split after its first event: that event at once, the rest when
/// `release` turns true.
fn held_sse(
    sse: &Bytes,
    mut release: tokio::sync::watch::Receiver<bool>,
) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>>> {
    use futures_util::StreamExt;
    let first_end = memchr::memmem::find(sse, b"\n\n").expect("an SSE event") + 2;
    let (first, rest) = (sse.slice(..first_end), sse.slice(first_end..));
    let first = futures_util::stream::once(async move { Ok(Frame::data(first)) });
    let rest = futures_util::stream::once(async move {
        // A closed channel (the bench is ending) releases the stream too.
        let _ = release.wait_for(|released| *released).await;
        Ok(Frame::data(rest))
    });
    StreamBody::new(first.chain(rest))
}

fn memchr_stream(body: &[u8]) -> bool {
    body.windows(13).any(|w| w == b"\"stream\":true")
}

fn floor_passthrough(upstream: SocketAddr) -> SocketAddr {
    spawn_server("bench-floor", HOP_CPU, move |listener| async move {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                let client: Client<HttpConnector, Incoming> =
                    Client::builder(TokioExecutor::new()).build(connector);
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let client = client.clone();
                    async move {
                        let (mut parts, body) = req.into_parts();
                        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                        parts.uri = format!("http://{upstream}{path}").parse().unwrap();
                        let response = match client.request(Request::from_parts(parts, body)).await
                        {
                            Ok(response) => response.map(|b| b.boxed()),
                            Err(_) => Response::builder()
                                .status(StatusCode::BAD_GATEWAY)
                                .body(Full::new(Bytes::new()).map_err(|e| match e {}).boxed())
                                .unwrap(),
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                serve_hyper(listener, service).await;
            })
            .await
    })
}

/// The proxy's config, one function for the in-process proxy and the child (`--serve-proxy`)
/// so the two cannot drift: the defaults (every layer on) against the canned upstream.
///
/// Upstream concurrency and queue are raised from the defaults (5 and 256), which would queue
/// the throughput run's requests and refuse most of the open-streams scenario's 1,000
/// (`--streams`); rate limits stay off, as by default.
fn bench_config(upstream: SocketAddr) -> Config {
    Config {
        api_base: Some(format!("http://{upstream}/v1")),
        api_key: Some(Secret::new("bench-key")),
        // The in-repo mock speaks the legacy rules.
        upstream: hunyuan_proxy::config::Preset::Hunyuan,
        admin_token: Some(Secret::new("bench-admin-token")),
        upstream_concurrency: 4096,
        upstream_queue_size: 4096,
        ..Config::default()
    }
}

fn proxy(upstream: SocketAddr) -> SocketAddr {
    let config = bench_config(upstream);
    spawn_server("bench-proxy", HOP_CPU, move |listener| async move {
        let proxy = Proxy::new(config).expect("valid bench config");
        proxy.serve(listener, std::future::pending()).await.unwrap();
    })
}

/// CPU seconds (user + system) used so far by this process's threads named `name`.
fn thread_cpu(name: &str) -> Cpu {
    let ticks = 100.0; // USER_HZ on Linux
    let mut total = Cpu::default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Cpu {
            user: f64::NAN,
            system: f64::NAN,
        };
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the `(comm)`; utime and stime are the 12th and 13th of those.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            total.user += utime / ticks;
            total.system += stime / ticks;
        }
    }
    total
}

/// CPU seconds of a thread, split as the kernel counts them.
#[derive(Debug, Default, Clone, Copy)]
struct Cpu {
    user: f64,
    system: f64,
}

impl Cpu {
    /// Microseconds per request of the time spent between `self` (start) and `end`:
    /// (user, system, total).
    fn per_request(self, end: Cpu, requests: u64) -> (f64, f64, f64) {
        let n = requests.max(1) as f64;
        let user = (end.user - self.user) * 1e6 / n;
        let system = (end.system - self.system) * 1e6 / n;
        (user, system, user + system)
    }
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

type LoadClient = Client<HttpConnector, Full<Bytes>>;

fn load_client() -> LoadClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(connector)
}

/// Sends one chat request; returns (time to first body byte, time to last byte).
async fn one(client: &LoadClient, addr: SocketAddr, body: &Bytes) -> (Duration, Duration) {
    one_at(client, addr, CHAT_PATH, body).await
}

/// The chat route.
const CHAT_PATH: &str = "/v1/chat/completions";

/// Sends one request to `path`; returns (time to first body byte, time to last byte).
async fn one_at(
    client: &LoadClient,
    addr: SocketAddr,
    path: &str,
    body: &Bytes,
) -> (Duration, Duration) {
    let started = Instant::now();
    let request = Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .unwrap();
    let response = client.request(request).await.expect("request answered");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{addr} answered {}",
        response.status()
    );
    let mut body = response.into_body();
    let mut first = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("body frame");
        if first.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
            first = Some(started.elapsed());
        }
    }
    let last = started.elapsed();
    (first.unwrap_or(last), last)
}

struct Latency {
    ttfb: Vec<Duration>,
    total: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

impl Latency {
    fn p(&self, which: &str, p: f64) -> Duration {
        let mut v = if which == "ttfb" {
            self.ttfb.clone()
        } else {
            self.total.clone()
        };
        v.sort();
        percentile(&v, p)
    }
}

async fn latency(client: &LoadClient, addr: SocketAddr, body: &Bytes, n: usize) -> Latency {
    for _ in 0..(n / 10).max(20) {
        one(client, addr, body).await;
    }
    let mut out = Latency {
        ttfb: Vec::with_capacity(n),
        total: Vec::with_capacity(n),
    };
    for _ in 0..n {
        let (first, last) = one(client, addr, body).await;
        out.ttfb.push(first);
        out.total.push(last);
    }
    out
}

/// Chat requests per second over `duration` with `concurrency` workers.
async fn throughput(
    addr: SocketAddr,
    body: &Bytes,
    concurrency: usize,
    duration: Duration,
) -> (f64, u64) {
    throughput_at(addr, CHAT_PATH, body, concurrency, duration).await
}

/// Requests to `path` per second over `duration` with `concurrency` workers.
async fn throughput_at(
    addr: SocketAddr,
    path: &'static str,
    body: &Bytes,
    concurrency: usize,
    duration: Duration,
) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let client = load_client();
        let body = body.clone();
        let done = done.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                one_at(&client, addr, path, &body).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    for w in workers {
        let _ = w.await;
    }
    let n = done.load(Ordering::Relaxed);
    (n as f64 / elapsed.as_secs_f64(), n)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "meets"
    } else {
        "MISSES"
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy in its own process: start-up time and resident memory (RSS), which the in-process
// scenarios above cannot tell apart from the upstream's, the floor's and the load generator's.
// The bench binary starts itself again with `--serve-proxy <upstream>` (child mode: only the
// proxy) and reads the child's `/proc/<pid>/status`.
// ---------------------------------------------------------------------------------------------

use std::io::{BufRead, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::AtomicUsize;

/// Starts the bench binary in child mode: `--serve-proxy <upstream address>`.
const SERVE_PROXY_FLAG: &str = "--serve-proxy";

/// The child's only line on stdout, followed by its address.
const LISTENING_PREFIX: &str = "bench proxy listening on ";

/// The route whose first 200 ends "start to ready". Readiness runs the registered checks: the
/// upstream probe (`GET {api_base}/models`, answered at once by the canned upstream on
/// loopback) is the only critical one, so the figure is start-up plus one local round trip,
/// not a wait on something outside the proxy.
const READY_ROUTE: &str = "/health/ready";

/// How long the child may take to answer 200 on [`READY_ROUTE`] before the bench gives up.
const READY_DEADLINE: Duration = Duration::from_secs(10);

/// Pause between readiness attempts: short, so polling adds at most ~1 ms to the figure.
const READY_POLL: Duration = Duration::from_millis(1);

/// Time between the readiness answer and the idle RSS reading.
const SETTLE: Duration = Duration::from_millis(200);

/// Descriptors kept free for everything but the held streams (pools, listeners, stdio).
const FD_HEADROOM: u64 = 256;

/// The upstream address after `--serve-proxy`, when this process is the child.
fn serve_proxy_arg() -> Option<SocketAddr> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == SERVE_PROXY_FLAG)?;
    let addr = args.get(at + 1).and_then(|v| v.parse().ok());
    Some(addr.expect("--serve-proxy takes the upstream's address, e.g. 127.0.0.1:8080"))
}

/// Child mode: runs only the full proxy (the [`bench_config`] every in-process scenario uses)
/// until killed, started the way `examples/proxy.rs` starts its server: a multi-thread runtime
/// (what `#[tokio::main]` builds), the same tracing subscriber on stderr, `Proxy::new`, bind,
/// then `Proxy::serve` (TCP_NODELAY, graceful shutdown on SIGINT/SIGTERM).
///
/// Differences from the example: no clap, config file or environment (`HUNYUAN_API_BASE` must
/// not send the bench elsewhere); port 0, with the address printed on stdout; no forced
/// shutdown deadline; one extra thread that exits when stdin closes, so a parent that dies
/// without running its `Drop` (SIGKILL, abort) cannot leave the child behind. The allocator is
/// the bench binary's.
fn serve_proxy_child(upstream: SocketAddr) {
    // The parent's main thread is pinned to CPU 0 and a child inherits that: undo it, so the
    // runtime sizes itself and runs like the example server's.
    unpin();
    exit_when_stdin_closes();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(serve_proxy(upstream));
}

/// Exits the process when stdin reaches end of file (the parent closed it or died).
fn exit_when_stdin_closes() {
    std::thread::Builder::new()
        .name("stdin-watch".to_owned())
        .stack_size(64 * 1024)
        .spawn(|| {
            let mut buf = [0u8; 64];
            while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
            std::process::exit(0);
        })
        .expect("stdin watcher thread");
}

async fn serve_proxy(upstream: SocketAddr) {
    let config = bench_config(upstream);
    init_child_tracing(&config.log_level);
    let proxy = Proxy::new(config).expect("valid bench config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound address");
    tracing::info!(address = %addr, upstream = %proxy.config().api_base(), "hunyuan-proxy listening");
    // Stdout is line-buffered: the parent sees the line at once.
    println!("{LISTENING_PREFIX}{addr}");
    proxy
        .serve(listener, hunyuan_proxy::server::shutdown_signal())
        .await
        .expect("serve");
}

/// The example server's logging: `RUST_LOG`, else the config's level (info: one line per
/// request), on stderr (which the parent drains).
fn init_child_tracing(log_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The last lines the child wrote on stderr, drained by a thread so the child never blocks on
/// a full pipe (it logs every request at info); shown when the child fails.
struct StderrTail {
    lines: Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl StderrTail {
    const KEPT: usize = 20;

    fn drain(stderr: std::process::ChildStderr) -> Self {
        let lines = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let kept = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut kept = kept.lock().unwrap();
                if kept.len() == Self::KEPT {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        StderrTail {
            lines,
            reader: Some(reader),
        }
    }

    /// Everything kept, once the child has exited and the pipe is empty.
    fn after_exit(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let lines = self.lines.lock().unwrap();
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// The child proxy process. Dropping it kills the child (SIGKILL) and reaps it, so a bench
/// that panics does not leave it running.
struct ChildProxy {
    child: Child,
    stdout: std::io::BufReader<ChildStdout>,
    stderr: StderrTail,
    /// Kept open: the child exits when it closes ([`exit_when_stdin_closes`]).
    _stdin: ChildStdin,
}

impl ChildProxy {
    /// Starts this binary in child mode against `upstream`.
    fn spawn(upstream: SocketAddr) -> Self {
        let exe = std::env::current_exe().expect("the bench binary's path");
        let mut child = Command::new(exe)
            .arg(SERVE_PROXY_FLAG)
            .arg(upstream.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the child proxy");
        let take = "piped above";
        ChildProxy {
            stdout: std::io::BufReader::new(child.stdout.take().expect(take)),
            stderr: StderrTail::drain(child.stderr.take().expect(take)),
            _stdin: child.stdin.take().expect(take),
            child,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address from the child's line on stdout.
    fn read_address(&mut self) -> SocketAddr {
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        match line.trim_end().strip_prefix(LISTENING_PREFIX) {
            Some(addr) => addr.parse().expect("the child's address"),
            None => self.fail(&format!("printed {line:?} instead of its address")),
        }
    }

    /// Kills the child and panics with what it wrote on stderr.
    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let status = self.child.wait();
        let tail = self.stderr.after_exit();
        panic!("the child proxy {what} (exit: {status:?}); its stderr ends with:\n{tail}");
    }
}

impl Drop for ChildProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child, ready, and how long that took.
struct Startup {
    child: ChildProxy,
    addr: SocketAddr,
    /// From `Command::spawn` to the address line on stdout (the listener is bound).
    to_address: Duration,
    /// From `Command::spawn` to the first 200 on [`READY_ROUTE`].
    to_ready: Duration,
}

/// Starts the child and polls [`READY_ROUTE`] every [`READY_POLL`] until it answers 200
/// (blocking: run it off the async workers).
fn start_child_proxy(upstream: SocketAddr) -> Startup {
    let started = Instant::now();
    let mut child = ChildProxy::spawn(upstream);
    let addr = child.read_address();
    let to_address = started.elapsed();
    loop {
        if ready_status(addr) == Some(200) {
            break;
        }
        if started.elapsed() > READY_DEADLINE {
            child.fail(&format!(
                "did not answer 200 on {READY_ROUTE} within {READY_DEADLINE:?}"
            ));
        }
        std::thread::sleep(READY_POLL);
    }
    Startup {
        to_ready: started.elapsed(),
        child,
        addr,
        to_address,
    }
}

/// One `GET` [`READY_ROUTE`] on a new connection: the status code, or `None` when the
/// connection or the answer fails.
fn ready_status(addr: SocketAddr) -> Option<u16> {
    let mut tcp = std::net::TcpStream::connect(addr).ok()?;
    tcp.set_nodelay(true).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request =
        format!("GET {READY_ROUTE} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).ok()?;
    // Read to the end (the server closes): closing with unread bytes would reset the
    // connection instead of ending it.
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).ok()?;
    let status = answer.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    std::str::from_utf8(status).ok()?.parse().ok()
}

/// A process's memory from `/proc/<pid>/status`, in MiB (NaN where it cannot be read).
#[derive(Clone, Copy)]
struct Memory {
    rss: f64,
    anon: f64,
    file: f64,
    threads: u64,
}

impl Memory {
    fn of(pid: u32) -> Self {
        let mib = |key| proc_status(pid, key).map_or(f64::NAN, |kib| kib as f64 / 1024.0);
        Memory {
            rss: mib("VmRSS"),
            anon: mib("RssAnon"),
            file: mib("RssFile"),
            threads: proc_status(pid, "Threads").unwrap_or(0),
        }
    }

    /// The highest of `samples` readings `every` apart.
    async fn peak(pid: u32, samples: usize, every: Duration) -> Self {
        let mut peak = Memory::of(pid);
        for _ in 1..samples {
            tokio::time::sleep(every).await;
            let now = Memory::of(pid);
            if now.rss > peak.rss {
                peak = now;
            }
        }
        peak
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} MiB (anonymous {:.1}, file-backed {:.1}; {} threads)",
            self.rss, self.anon, self.file, self.threads
        )
    }
}

/// The first number of the `key:` line of `/proc/<pid>/status` (kB for the memory lines).
fn proc_status(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// This process's soft open-files limit, which the child inherits (`None`: unlimited or
/// unreadable).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `wanted`, or fewer if the open-files limit is too low: each held stream takes two
/// descriptors in this process (the client's and the canned upstream's) and two in the child.
fn streams_within_fd_limit(wanted: usize) -> usize {
    match open_files_limit() {
        Some(limit) => wanted.min((limit.saturating_sub(FD_HEADROOM) / 2) as usize),
        None => wanted,
    }
}

/// A stream request the canned upstream holds open ([`HOLD_MARKER`]).
fn held_stream_request() -> Bytes {
    let text = format!("Count to three, slowly. {}", HOLD_MARKER);
    Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "model": "hunyuan-turbos-latest",
            "messages": [{"role": "user", "content": text}],
            "stream": true
        }))
        .unwrap(),
    )
}

/// Streams connecting at once (each holds a permit until its first event). Opening all 1,000
/// together overflowed the listeners' accept queues (backlog 1,024, with the proxy's upstream
/// connections arriving too; ~330 ListenOverflows per run): dropped handshakes are retried by
/// the kernel after a second, so opening took 1–2 s. All the streams are open together anyway.
const OPENING_AT_ONCE: usize = 64;

/// Where the held streams are, counted by their tasks.
struct StreamProgress {
    /// Streams that received their first event.
    opened: AtomicUsize,
    /// Streams that ended, cleanly or not.
    ended: AtomicUsize,
    /// One permit per stream once it opened or failed before opening.
    settled: tokio::sync::Semaphore,
    /// [`OPENING_AT_ONCE`] permits.
    opening: tokio::sync::Semaphore,
}

/// One held stream on its own connection: waits for the first event (counted in `progress`),
/// then reads to the end and checks the stream finished with `data: [DONE]`.
async fn held_stream(
    addr: SocketAddr,
    body: Bytes,
    progress: Arc<StreamProgress>,
) -> Result<(), String> {
    let mut opened = false;
    let result = read_held_stream(addr, body, &progress, &mut opened).await;
    if !opened {
        progress.settled.add_permits(1);
    }
    progress.ended.fetch_add(1, Ordering::SeqCst);
    result
}

async fn read_held_stream(
    addr: SocketAddr,
    body: Bytes,
    progress: &StreamProgress,
    opened: &mut bool,
) -> Result<(), String> {
    let mut opening = Some(progress.opening.acquire().await.expect("never closed"));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    let request = Request::post("/v1/chat/completions")
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    if response.status() != StatusCode::OK {
        return Err(format!("answered {}", response.status()));
    }
    let mut body = response.into_body();
    let mut received = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        if let Some(data) = frame.data_ref() {
            received.extend_from_slice(data);
        }
        if !*opened && memchr::memmem::find(&received, b"data: ").is_some() {
            *opened = true;
            opening.take();
            progress.opened.fetch_add(1, Ordering::SeqCst);
            progress.settled.add_permits(1);
        }
    }
    if memchr::memmem::find(&received, b"data: [DONE]").is_none() {
        return Err("the stream ended without `data: [DONE]`".to_owned());
    }
    Ok(())
}

/// What holding the streams open showed.
struct HeldStreams {
    requested: usize,
    /// Streams that received their first event in time.
    opened: usize,
    /// Time until every stream had its first event (or failed, or the wait gave up).
    opened_in: Duration,
    /// Streams that ended before the release: the hold did not work, or they failed.
    ended_early: usize,
    /// The child with every stream open: the highest of a few readings, and its VmHWM.
    peak: Memory,
    high_water: f64,
    /// Streams that ended with `data: [DONE]` after the release.
    clean: usize,
    /// Failures by message.
    failures: std::collections::BTreeMap<String, usize>,
    /// The child 200 ms after the streams ended.
    after: Memory,
}

/// How long the streams may take to open, and to end once released.
const STREAMS_DEADLINE: Duration = Duration::from_secs(60);

/// Opens `n` streams through the child at once, each on its own connection, reads the child's
/// memory once all have their first event, then releases them and checks how they ended.
async fn hold_streams(
    pid: u32,
    addr: SocketAddr,
    n: usize,
    release: &tokio::sync::watch::Sender<bool>,
) -> HeldStreams {
    let progress = Arc::new(StreamProgress {
        opened: AtomicUsize::new(0),
        ended: AtomicUsize::new(0),
        settled: tokio::sync::Semaphore::new(0),
        opening: tokio::sync::Semaphore::new(OPENING_AT_ONCE),
    });
    let body = held_stream_request();
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(held_stream(addr, body.clone(), progress.clone())))
        .collect();
    let all = u32::try_from(n).expect("streams fit in u32");
    let _ = tokio::time::timeout(STREAMS_DEADLINE, progress.settled.acquire_many(all)).await;
    let opened_in = started.elapsed();
    let peak = Memory::peak(pid, 5, Duration::from_millis(20)).await;
    let high_water = proc_status(pid, "VmHWM").map_or(f64::NAN, |kib| kib as f64 / 1024.0);
    let opened = progress.opened.load(Ordering::SeqCst);
    let ended_early = progress.ended.load(Ordering::SeqCst);
    release.send_replace(true);

    let mut clean = 0;
    let mut failures = std::collections::BTreeMap::new();
    let deadline = tokio::time::Instant::now() + STREAMS_DEADLINE;
    for task in tasks {
        let outcome = match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(format!("task failed: {join}")),
            Err(_) => Err(format!("not ended {STREAMS_DEADLINE:?} after the release")),
        };
        match outcome {
            Ok(()) => clean += 1,
            Err(message) => *failures.entry(message).or_insert(0) += 1,
        }
    }
    tokio::time::sleep(SETTLE).await;
    HeldStreams {
        requested: n,
        opened,
        opened_in,
        ended_early,
        peak,
        high_water,
        clean,
        failures,
        after: Memory::of(pid),
    }
}

/// The figures of the proxy in its own process.
struct OwnProcess {
    to_address: Duration,
    to_ready: Duration,
    idle: Memory,
    streams: HeldStreams,
    /// Set when the open-files limit lowered `--streams`.
    capped_from: Option<usize>,
}

/// Starts the child, reads its start-up time and idle memory, holds `streams` streams open
/// through it, and kills it.
async fn own_process(
    upstream: SocketAddr,
    streams: usize,
    release: &tokio::sync::watch::Sender<bool>,
) -> OwnProcess {
    let Startup {
        child,
        addr,
        to_address,
        to_ready,
    } = tokio::task::spawn_blocking(move || start_child_proxy(upstream))
        .await
        // Its own panic message (with the child's stderr), not a JoinError around it.
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
    tokio::time::sleep(SETTLE).await;
    let idle = Memory::of(child.pid());
    let allowed = streams_within_fd_limit(streams);
    let held = hold_streams(child.pid(), addr, allowed, release).await;
    drop(child);
    OwnProcess {
        to_address,
        to_ready,
        idle,
        streams: held,
        capped_from: (allowed < streams).then_some(streams),
    }
}

/// `1000` as `1,000`.
fn with_commas(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl OwnProcess {
    fn print(&self) {
        let s = &self.streams;
        let n = with_commas(s.requested);
        let defaults = Config::default();
        println!("\n## The proxy in its own process (`{SERVE_PROXY_FLAG}`: multi-thread runtime, started as examples/proxy.rs starts it)");
        println!("| figure | value |");
        println!("|---|---|");
        println!(
            "| spawn → address on stdout (listener bound) | {:.1} ms |",
            ms(self.to_address)
        );
        println!("| spawn → first 200 on `GET {READY_ROUTE}` (one upstream probe; polled every {} ms) | {:.1} ms |", READY_POLL.as_millis(), ms(self.to_ready));
        println!(
            "| RSS idle, {} ms after ready | {} |",
            SETTLE.as_millis(),
            self.idle
        );
        println!(
            "| RSS with {n} streams open (highest of 5 readings) | {} |",
            s.peak
        );
        println!("| peak RSS so far (VmHWM) | {:.1} MiB |", s.high_water);
        println!(
            "| added per open stream | {:.1} KiB |",
            (s.peak.rss - self.idle.rss) * 1024.0 / s.requested.max(1) as f64
        );
        println!(
            "| RSS {} ms after the streams ended | {} |",
            SETTLE.as_millis(),
            s.after
        );
        println!(
            "\nstreams: {} of {n} had their first event after {:.0} ms; {} ended before the release; {} ended cleanly with [DONE] after it, {} failed",
            with_commas(s.opened), ms(s.opened_in), s.ended_early, with_commas(s.clean), s.failures.values().sum::<usize>()
        );
        for (message, count) in &s.failures {
            println!("  failed ×{count}: {message}");
        }
        if let Some(wanted) = self.capped_from {
            println!(
                "  (--streams {wanted} lowered to {} by the open-files limit; raise `ulimit -n`)",
                s.requested
            );
        }
        let config = bench_config(SocketAddr::from(([127, 0, 0, 1], 0)));
        println!(
            "config for this scenario (as for the rest of the bench): upstream_concurrency {} and upstream_queue_size {} (defaults {} and {} would queue or refuse most of the streams), rate limits {}",
            config.upstream_concurrency, config.upstream_queue_size, defaults.upstream_concurrency, defaults.upstream_queue_size,
            if config.rate_limit.is_none() && config.client_rate_limit.is_none() { "off" } else { "on" }
        );
    }

    /// The rows of the "Targets" table.
    fn print_targets(&self) {
        let s = &self.streams;
        let all_open = s.opened == s.requested && s.ended_early == 0;
        let streams_verdict = if all_open {
            verdict(s.peak.rss <= 100.0)
        } else {
            "n/a (not every stream was open)"
        };
        println!(
            "| RSS idle after start | {:.1} MiB | ≤ 20 MiB | {} |",
            self.idle.rss,
            verdict(self.idle.rss <= 20.0)
        );
        println!(
            "| RSS with {} open streams | {:.1} MiB | ≤ 100 MiB | {streams_verdict} |",
            with_commas(s.requested),
            s.peak.rss
        );
        println!(
            "| start to ready | {:.0} ms | ≤ 100 ms | {} |",
            ms(self.to_ready),
            verdict(self.to_ready <= Duration::from_millis(100))
        );
    }
}

fn main() {
    if let Some(upstream) = serve_proxy_arg() {
        serve_proxy_child(upstream);
        return;
    }
    let opts = options();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    PIN.store(opts.pin && cpus > HOP_CPU, Ordering::Relaxed);
    pin_to(0);
    // Kept until the end: the held streams wait on it, and a dropped sender would release them.
    let (release_held, held_release) = tokio::sync::watch::channel(false);
    let upstream = canned_upstream(held_release);
    let floor = floor_passthrough(upstream);
    let rss_before_proxy = rss_mib();
    let proxy = proxy(upstream);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-load")
        .on_thread_start(|| pin_to(0))
        .enable_all()
        .build()
        .unwrap();
    let n = if opts.quick { 200 } else { 5000 };
    if let Some(count) = opts.count {
        rt.block_on(async move {
            let client = load_client();
            for addr in [floor, proxy] {
                for body in [chat_request(false), chat_request(true)] {
                    for _ in 0..count {
                        one(&client, addr, &body).await;
                    }
                }
            }
            println!("sent {count} non-stream and {count} stream requests through the floor and the proxy");
        });
        return;
    }
    rt.block_on(async move {
        let client = load_client();
        let body = chat_request(false);
        let stream_body = chat_request(true);
        println!("overhead bench: {} requests per latency series, {} s throughput at c={}{}",
            n, opts.duration.as_secs(), opts.concurrency, if opts.quick { " (quick: smoke only)" } else { "" });
        println!("request body {} bytes", body.len());
        if PIN.load(Ordering::Relaxed) {
            println!("floor and proxy pinned to CPU {HOP_CPU}; upstream and load generator to CPU 0 (--no-pin to turn off)");
        } else {
            println!("threads not pinned");
        }

        let direct = latency(&client, upstream, &body, n).await;
        let via_floor = latency(&client, floor, &body, n).await;
        let via_proxy = latency(&client, proxy, &body, n).await;
        let s_direct = latency(&client, upstream, &stream_body, n).await;
        let s_floor = latency(&client, floor, &stream_body, n).await;
        let s_proxy = latency(&client, proxy, &stream_body, n).await;

        println!("\n## Latency at concurrency 1 (µs)");
        println!("| scenario | direct p50 | direct p99 | floor p50 | floor p99 | proxy p50 | proxy p99 | floor added p50/p99 | proxy added p50/p99 |");
        println!("|---|---|---|---|---|---|---|---|---|");
        let row = |name: &str, which: &str, d: &Latency, f: &Latency, p: &Latency| {
            println!(
                "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} / {:.0} | {:.0} / {:.0} |",
                us(d.p(which, 50.0)), us(d.p(which, 99.0)),
                us(f.p(which, 50.0)), us(f.p(which, 99.0)),
                us(p.p(which, 50.0)), us(p.p(which, 99.0)),
                us(f.p(which, 50.0)) - us(d.p(which, 50.0)), us(f.p(which, 99.0)) - us(d.p(which, 99.0)),
                us(p.p(which, 50.0)) - us(d.p(which, 50.0)), us(p.p(which, 99.0)) - us(d.p(which, 99.0)),
            );
        };
        row("non-stream", "total", &direct, &via_floor, &via_proxy);
        row("stream, last byte", "total", &s_direct, &s_floor, &s_proxy);
        row("stream, first byte", "ttfb", &s_direct, &s_floor, &s_proxy);

        let p50_gap = us(via_proxy.p("total", 50.0)) - us(via_floor.p("total", 50.0));
        let p99_ratio = us(via_proxy.p("total", 99.0)) / us(via_floor.p("total", 99.0));
        let ttfb_gap = us(s_proxy.p("ttfb", 50.0)) - us(s_floor.p("ttfb", 50.0));

        let cpu_floor_0 = thread_cpu("bench-floor");
        let (rps_floor, n_floor) = throughput(floor, &body, opts.concurrency, opts.duration).await;
        let (floor_user, floor_sys, cpu_per_floor) = cpu_floor_0.per_request(thread_cpu("bench-floor"), n_floor);
        let cpu_proxy_0 = thread_cpu("bench-proxy");
        let (rps_proxy, n_proxy) = throughput(proxy, &body, opts.concurrency, opts.duration).await;
        let (proxy_user, proxy_sys, cpu_per_proxy) = cpu_proxy_0.per_request(thread_cpu("bench-proxy"), n_proxy);
        let (rps_direct, _) = throughput(upstream, &body, opts.concurrency, opts.duration).await;

        println!("\n## Throughput at concurrency {} (req/s)", opts.concurrency);
        println!("| direct | floor | proxy | proxy / floor |");
        println!("|---|---|---|---|");
        println!("| {rps_direct:.0} | {rps_floor:.0} | {rps_proxy:.0} | {:.0} % |", 100.0 * rps_proxy / rps_floor);

        println!("\n## CPU per request at concurrency {} (µs, the hop's own thread)", opts.concurrency);
        println!("| floor | proxy | proxy / floor | floor user / system | proxy user / system |");
        println!("|---|---|---|---|---|");
        println!(
            "| {cpu_per_floor:.1} | {cpu_per_proxy:.1} | {:.2}× | {floor_user:.1} / {floor_sys:.1} | {proxy_user:.1} / {proxy_sys:.1} |",
            cpu_per_proxy / cpu_per_floor
        );

        // The image scenario: the first request describes the image (the canned upstream answers
        // the vision call too); later ones hit the description cache.
        let image = image_request();
        let image_n = if opts.quick { 10 } else { 200 };
        let _ = one(&client, proxy, &image).await;
        let with_image = latency(&client, proxy, &image, image_n).await;
        let mut plain = latency(&client, proxy, &body, image_n).await;
        plain.total.sort();
        let image_added = us(with_image.p("total", 50.0)) - us(percentile(&plain.total, 50.0));

        println!("\n## Request with a 1 MiB image (description cached), concurrency 1");
        println!("| proxy p50 | proxy p99 | added over a plain request p50 |");
        println!("|---|---|---|");
        println!("| {:.0} µs | {:.0} µs | {:.0} µs |", us(with_image.p("total", 50.0)), us(with_image.p("total", 99.0)), image_added);

        // The same tool conversation through each dialect's route: CPU per request of the
        // proxy's thread, and throughput, at the same concurrency.
        let mut dialects = Vec::new();
        for (dialect, path) in DIALECTS {
            let body = tool_conversation(dialect);
            let _ = one_at(&client, proxy, path, &body).await;
            let cpu_0 = thread_cpu("bench-proxy");
            let (rps, n) = throughput_at(proxy, path, &body, opts.concurrency, opts.duration).await;
            let (_, _, cpu) = cpu_0.per_request(thread_cpu("bench-proxy"), n);
            dialects.push((*dialect, *path, body.len(), rps, cpu));
        }
        let (chat_rps, chat_cpu) = (dialects[0].3, dialects[0].4);
        println!("\n## A 10-message tool conversation per dialect, concurrency {}", opts.concurrency);
        println!("| dialect | route | body bytes | req/s | / chat | CPU µs per request | added over chat |");
        println!("|---|---|---|---|---|---|---|");
        for (dialect, path, bytes, rps, cpu) in &dialects {
            println!(
                "| {dialect} | `{path}` | {bytes} | {rps:.0} | {:.0} % | {cpu:.1} | {:+.1} µs |",
                100.0 * rps / chat_rps,
                cpu - chat_cpu
            );
        }

        let rss = rss_mib();
        println!("\n## Memory");
        println!("process RSS {rss:.1} MiB (bench process: upstream, floor, proxy and load generator together; {rss_before_proxy:.1} MiB before the proxy started)");

        let own = own_process(upstream, opts.streams, &release_held).await;
        own.print();

        println!("\n## Targets (ratios to the floor, same run; memory and start-up of the proxy in its own process)");
        println!("| figure | measured | target | |");
        println!("|---|---|---|---|");
        println!("| added p50 over the floor, non-stream | {p50_gap:.0} µs | ≤ 20 µs | {} |", verdict(p50_gap <= 20.0));
        println!("| p99 / floor p99, non-stream | {p99_ratio:.2}× | ≤ 1.5× | {} |", verdict(p99_ratio <= 1.5));
        println!("| added first-byte p50 over the floor, stream | {ttfb_gap:.0} µs | ≤ 20 µs | {} |", verdict(ttfb_gap <= 20.0));
        println!("| throughput / floor | {:.0} % | ≥ 60 % | {} |", 100.0 * rps_proxy / rps_floor, verdict(rps_proxy / rps_floor >= 0.6));
        println!("| CPU per request / floor | {:.2}× | ≤ 1.6× | {} |", cpu_per_proxy / cpu_per_floor, verdict(cpu_per_proxy / cpu_per_floor <= 1.6));
        println!("| 1 MiB cached image, added | {:.2} ms | ≤ 2 ms | {} |", image_added / 1000.0, verdict(image_added <= 2000.0));
        for (dialect, _, _, rps, cpu) in &dialects[1..] {
            println!("| {dialect}: CPU per request added over chat | {:+.1} µs | ≤ 5 µs | {} |", cpu - chat_cpu, verdict(cpu - chat_cpu <= 5.0));
            println!("| {dialect}: throughput / chat's | {:.0} % | ≥ 90 % | {} |", 100.0 * rps / chat_rps, verdict(rps / chat_rps >= 0.9));
        }
        own.print_targets();
        if opts.quick {
            println!("\n(quick mode: too few samples for the latency, throughput and CPU figures to mean anything; this run checks that the bench works)");
        }
    });
}
