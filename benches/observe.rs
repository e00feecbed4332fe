//! What MetricsLayer plus HealthLayer add to a request, in process.
//!
//! Run with:
//!
//! ```sh
//! cargo bench --bench observe
//! ```
//!
//! Both benches call the same trivial inner service (answering at once with a 1.5 KB chat
//! completion and the extensions the upstream would leave) and read the whole response body,
//! so the difference between their medians is the layers' cost per request: the metrics
//! recorded into the installed Prometheus recorder and the monitor's window, the body wrapper
//! with its scan for `usage`, and the health layer's route check.

use axum::body::Body;
use criterion::{criterion_group, Criterion};
use http::{Request, Response};
use http_body_util::BodyExt;
use hunyuan_proxy::extensions::{ResolvedModel, UpstreamTiming};
use hunyuan_proxy::health::{check_fn, CheckResult, HealthLayer, HealthRegistry};
use hunyuan_proxy::metrics::{MetricsConfig, MetricsLayer, Monitor, MonitorConfig};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// A chat completion of about 1.5 KB with `usage` at the end, like Hunyuan's.
fn completion() -> bytes::Bytes {
    static BODY: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    BODY.get_or_init(|| {
        let content = "The quick brown fox jumps over the lazy dog. ".repeat(30);
        let body = serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
            "model": "hunyuan-turbos-latest", "note": "以上内容为AI生成",
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 25, "completion_tokens": 300, "total_tokens": 325}
        });
        bytes::Bytes::from(serde_json::to_vec(&body).unwrap())
    })
    .clone()
}

async fn answer(_req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let mut response = Response::new(Body::from(completion()));
    response.extensions_mut().insert(UpstreamTiming {
        time_to_headers: Duration::from_millis(1),
    });
    response
        .extensions_mut()
        .insert(ResolvedModel("hunyuan-turbos-latest".into()));
    Ok(response)
}

fn request() -> Request<Body> {
    Request::post("/v1/chat/completions")
        .body(Body::empty())
        .unwrap()
}

async fn run<S, B>(service: &mut S)
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let response = service
        .ready()
        .await
        .unwrap()
        .call(request())
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap();
    std::hint::black_box(body);
}

type Bare = tower::util::ServiceFn<fn(Request<Body>) -> Answer>;
type Answer =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

fn boxed_answer(req: Request<Body>) -> Answer {
    Box::pin(answer(req))
}

/// The inner service alone, and wrapped in both layers.
fn services() -> (
    Bare,
    impl Service<
        Request<Body>,
        Response = Response<impl http_body::Body<Error = impl std::fmt::Debug>>,
        Error = Infallible,
    >,
) {
    let _ = hunyuan_proxy::server::prometheus_handle();
    let monitor = Arc::new(Monitor::new(MonitorConfig::default()));
    let registry = HealthRegistry::new();
    registry.register(
        "upstream",
        check_fn(|| async { CheckResult::healthy("ok") }),
    );
    let metrics = MetricsLayer::new(
        MetricsConfig::default()
            .route("/v1/chat/completions")
            .route("/health")
            .monitor_routes(["/v1/chat/completions"]),
    )
    .with_monitor(monitor);
    let bare: Bare = service_fn(boxed_answer as fn(Request<Body>) -> Answer);
    let layered = ServiceBuilder::new()
        .layer(metrics)
        .layer(HealthLayer::new(registry))
        .service(bare);
    (bare, layered)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn layers(c: &mut Criterion) {
    let runtime = runtime();
    let (mut bare, mut layered) = services();
    let mut group = c.benchmark_group("observe");
    group.bench_function("bare", |b| {
        b.iter(|| runtime.block_on(run(&mut bare)));
    });
    group.bench_function("metrics+health", |b| {
        b.iter(|| runtime.block_on(run(&mut layered)));
    });
    group.finish();
}

/// Per-request p50 and p99 of both services, timed one request at a time, and their ratio.
fn percentiles() {
    const N: usize = 200_000;
    let runtime = runtime();
    let (mut bare, mut layered) = services();
    let mut time = |layered_run: bool| {
        let mut samples = Vec::with_capacity(N);
        runtime.block_on(async {
            for _ in 0..N {
                let started = std::time::Instant::now();
                if layered_run {
                    run(&mut layered).await;
                } else {
                    run(&mut bare).await;
                }
                samples.push(started.elapsed().as_nanos() as f64);
            }
        });
        samples.sort_by(f64::total_cmp);
        (samples[N / 2], samples[N * 99 / 100])
    };
    let _warm = (time(false), time(true));
    let (bare_p50, bare_p99) = time(false);
    let (layered_p50, layered_p99) = time(true);
    println!(
        "per request, {N} sequential: bare p50 {bare_p50:.0} ns p99 {bare_p99:.0} ns; \
         metrics+health p50 {layered_p50:.0} ns p99 {layered_p99:.0} ns; \
         added p50 {:.0} ns p99 {:.0} ns; throughput ratio {:.2}",
        layered_p50 - bare_p50,
        layered_p99 - bare_p99,
        bare_p50 / layered_p50
    );
}

criterion_group!(benches, layers);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        percentiles();
    }
}
