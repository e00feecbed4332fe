//! What usage accounting, an in-process budget check and the request log add to a request,
//! against the same request without them, in one run.
//!
//! Run with: `cargo bench --bench usage`.
//!
//! - `usage/without`: a non-streamed chat answer (about 1 KB, with `usage`) from a canned
//!   inner service, its body read whole.
//! - `usage/with`: the same behind [`UsageLayer`] (a named key with a budget, so the admission
//!   check runs; the ledger in process; the request log on), with the inner service doing what
//!   [`Upstream`](hunyuan_proxy::upstream::Upstream) does when a [`UsageSlot`] is there: find
//!   the `usage` in the answer and fill the slot.
//!
//! - `usage/accounting only`: behind the layer too, but with no client key, no budget and the
//!   request log off (what every request pays when nothing more is configured).
//!
//! After criterion's groups the bench prints the mean added per request.
//!
//! Instructions per request (repeatable on a loaded machine), one variant (`without`,
//! `accounting`, `with`) per run, counted inside `run_batch` only:
//!
//! ```text
//! cargo bench --bench usage --no-run
//! valgrind --tool=callgrind --toggle-collect='*run_batch*' --callgrind-out-file=/tmp/cg.with \
//!     target/release/deps/usage-<hash> --count with 20000
//! ```
//!
//! then the total of `callgrind_annotate /tmp/cg.with | head` divided by 20,000.

use axum::body::Body;
use axum::response::Response;
use criterion::Criterion;
use http::Request;
use http_body_util::BodyExt;
use hunyuan_proxy::auth::ClientName;
use hunyuan_proxy::extensions::ResolvedModel;
use hunyuan_proxy::usage::{
    find_usage, Budget, Ledger, PriceTable, RequestLog, UsageConfig, UsageLayer, UsageSlot,
};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::{service_fn, Layer, Service, ServiceExt};

const ANSWER: &str = r#"{"id":"chatcmpl-0123456789abcdef","object":"chat.completion","created":1765000000,"model":"hy4","choices":[{"index":0,"message":{"role":"assistant","content":"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum. Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat."},"finish_reason":"stop"}],"usage":{"prompt_tokens":412,"completion_tokens":160,"total_tokens":572,"prompt_tokens_details":{"cached_tokens":256},"completion_tokens_details":{"reasoning_tokens":0}}}"#;

async fn inner(req: Request<Body>) -> Result<Response, Infallible> {
    if let Some(slot) = req.extensions().get::<UsageSlot>() {
        slot.set_model_requested("hy4");
        if let Some(found) = find_usage(ANSWER.as_bytes()) {
            slot.set_usage(found);
        }
    }
    let mut response = Response::new(Body::from(ANSWER));
    response
        .extensions_mut()
        .insert(ResolvedModel("hy4".to_owned()));
    Ok(response)
}

fn request(named: bool) -> Request<Body> {
    let mut req = Request::post("/v1/chat/completions")
        .body(Body::empty())
        .unwrap();
    if named {
        req.extensions_mut().insert(ClientName(Arc::from("alice")));
    }
    req
}

async fn one<S>(service: &mut S)
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    one_as(service, true).await
}

async fn one_as<S>(service: &mut S, named: bool)
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    let response = service
        .ready()
        .await
        .unwrap()
        .call(request(named))
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), ANSWER.len());
}

fn layer() -> UsageLayer {
    let budget = Budget {
        tokens_per_day: Some(u64::MAX / 2),
        ..Budget::default()
    };
    let ledger = Ledger::new(
        PriceTable::new([]),
        std::collections::HashMap::from([("alice".to_owned(), budget)]),
    );
    UsageLayer::new(
        Arc::new(ledger),
        Arc::new(RequestLog::new(1000)),
        &UsageConfig::default(),
    )
}

/// The layer with no budgets and the request log off.
fn accounting_only() -> UsageLayer {
    UsageLayer::new(
        Arc::new(Ledger::new(PriceTable::new([]), Default::default())),
        Arc::new(RequestLog::new(0)),
        &UsageConfig::default(),
    )
}

/// `n` requests (`named`: as the named key), for callgrind's `--toggle-collect`.
#[inline(never)]
fn run_batch<S>(rt: &tokio::runtime::Runtime, service: &mut S, n: u32, named: bool)
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    rt.block_on(async {
        for _ in 0..n {
            one_as(service, named).await;
        }
    })
}

/// `--count <variant> <n>`: runs `n` requests of one variant after 1,000 to warm up, and
/// nothing else.
fn count(rt: &tokio::runtime::Runtime, variant: &str, n: u32) {
    match variant {
        "without" => {
            let mut s = service_fn(inner);
            run_batch(rt, &mut s, 1000, false);
            run_batch(rt, &mut s, n, false);
        }
        "accounting" => {
            let mut s = accounting_only().layer(service_fn(inner));
            run_batch(rt, &mut s, 1000, false);
            run_batch(rt, &mut s, n, false);
        }
        "with" => {
            let mut s = layer().layer(service_fn(inner));
            run_batch(rt, &mut s, 1000, true);
            run_batch(rt, &mut s, n, true);
        }
        other => panic!("--count takes without, accounting or with, not {other}"),
    }
}

/// The mean of `n` calls, in microseconds.
fn mean<S>(rt: &tokio::runtime::Runtime, service: &mut S, n: u32) -> f64
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    rt.block_on(async {
        let started = Instant::now();
        for _ in 0..n {
            one(service).await;
        }
        started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    })
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--count") {
        let variant = args.get(at + 1).map_or("with", String::as_str);
        let n = args
            .get(at + 2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(20_000);
        count(&rt, variant, n);
        return;
    }
    let mut without = service_fn(inner);
    let mut with = layer().layer(service_fn(inner));
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3));
    let mut group = c.benchmark_group("usage");
    group.bench_function("without", |b| {
        b.to_async(&rt).iter(|| {
            let mut s = without;
            async move { one(&mut s).await }
        })
    });
    group.bench_function("with", |b| {
        b.to_async(&rt).iter(|| {
            let mut s = with.clone();
            async move { one(&mut s).await }
        })
    });
    let accounting = accounting_only().layer(service_fn(inner));
    group.bench_function("accounting only", |b| {
        b.to_async(&rt).iter(|| {
            let mut s = accounting.clone();
            async move { one_as(&mut s, false).await }
        })
    });
    group.finish();
    // Alternating rounds, so that the machine's load falls on both alike.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        a.push(mean(&rt, &mut without, 20_000));
        b.push(mean(&rt, &mut with, 20_000));
    }
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (a, b) = (a[3], b[3]);
    println!(
        "\nper request: without {a:.2} µs, with usage + budget + log {b:.2} µs, added {:.2} µs",
        b - a
    );
}
