//! The proxy's overhead against the direct upstream and a raw pass-through floor, in one run.
//!
//! Run with:
//!
//! ```sh
//! cargo bench --bench overhead                 # full run (~1 minute)
//! cargo bench --bench overhead -- --quick      # smoke run (CI): a few hundred requests
//! cargo bench --bench overhead -- --duration 20 --concurrency 64
//! cargo bench --bench overhead -- --count 1000  # fixed work, for callgrind instruction counts
//! ```
//!
//! In one process, each on its own thread with its own single-threaded runtime:
//! - a canned upstream (hyper; fixed Hunyuan-shaped JSON and SSE bodies, no validation),
//! - the **floor**: a raw hyper pass-through that forwards bytes unparsed (keep-alive pool),
//! - the **proxy**: the full ready-made router (`Proxy::router()`, every layer the config turns
//!   on) served by axum,
//! - a load generator (hyper client, keep-alive).
//!
//! It measures latency at concurrency 1 (non-stream and stream: time to first and last byte),
//! throughput at concurrency N, CPU time per request of the floor's and the proxy's threads (from
//! `/proc/self/task/*/stat`), and a request carrying a 1 MiB image whose description is cached.
//! Every figure is printed next to its target as a ratio to the floor measured in the same run.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
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
    /// callgrind (see README, "Performance"), which the noise of a shared machine leaves alone.
    count: Option<usize>,
    /// Pin the hop (floor or proxy) to CPU 1 and the upstream and load generator to CPU 0, as
    /// `../shared/spec/benchmarking.md` measures every system; `--no-pin` leaves placement to
    /// the scheduler.
    pin: bool,
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

fn canned_upstream() -> SocketAddr {
    let sse = sse_body();
    spawn_server("bench-upstream", 0, move |listener| async move {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let sse = sse.clone();
                    async move {
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let stream = memchr_stream(&body);
                        let response = if stream {
                            Response::builder()
                                .header("content-type", "text/event-stream")
                                .body(Full::new(sse))
                        } else {
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from_static(CHAT_JSON.as_bytes())))
                        };
                        Ok::<_, Infallible>(response.unwrap())
                    }
                });
                serve_hyper(listener, service).await;
            })
            .await
    })
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

fn proxy(upstream: SocketAddr) -> SocketAddr {
    let config = Config {
        api_base: Some(format!("http://{upstream}/v1")),
        api_key: Some(Secret::new("bench-key")),
        admin_token: Some(Secret::new("bench-admin-token")),
        upstream_concurrency: 4096,
        upstream_queue_size: 4096,
        ..Config::default()
    };
    spawn_server("bench-proxy", HOP_CPU, move |listener| async move {
        let proxy = Proxy::new(config).expect("valid bench config");
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, proxy.router()).await.unwrap();
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

/// Sends one request; returns (time to first body byte, time to last byte).
async fn one(client: &LoadClient, addr: SocketAddr, body: &Bytes) -> (Duration, Duration) {
    let started = Instant::now();
    let request = Request::post(format!("http://{addr}/v1/chat/completions"))
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

/// Requests per second over `duration` with `concurrency` workers.
async fn throughput(
    addr: SocketAddr,
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
                one(&client, addr, &body).await;
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

fn main() {
    let opts = options();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    PIN.store(opts.pin && cpus > HOP_CPU, Ordering::Relaxed);
    pin_to(0);
    let upstream = canned_upstream();
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

        let rss = rss_mib();
        println!("\n## Memory");
        println!("process RSS {rss:.1} MiB (bench process: upstream, floor, proxy and load generator together; {rss_before_proxy:.1} MiB before the proxy started)");

        println!("\n## Targets (ratios to the floor, same run)");
        println!("| figure | measured | target | |");
        println!("|---|---|---|---|");
        println!("| added p50 over the floor, non-stream | {p50_gap:.0} µs | ≤ 20 µs | {} |", verdict(p50_gap <= 20.0));
        println!("| p99 / floor p99, non-stream | {p99_ratio:.2}× | ≤ 1.5× | {} |", verdict(p99_ratio <= 1.5));
        println!("| added first-byte p50 over the floor, stream | {ttfb_gap:.0} µs | ≤ 20 µs | {} |", verdict(ttfb_gap <= 20.0));
        println!("| throughput / floor | {:.0} % | ≥ 60 % | {} |", 100.0 * rps_proxy / rps_floor, verdict(rps_proxy / rps_floor >= 0.6));
        println!("| CPU per request / floor | {:.2}× | ≤ 1.6× | {} |", cpu_per_proxy / cpu_per_floor, verdict(cpu_per_proxy / cpu_per_floor <= 1.6));
        println!("| 1 MiB cached image, added | {:.2} ms | ≤ 2 ms | {} |", image_added / 1000.0, verdict(image_added <= 2000.0));
        if opts.quick {
            println!("\n(quick mode: too few samples for the figures to mean anything; this run checks that the bench works)");
        }
    });
}
