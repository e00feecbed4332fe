//! What sharing state through Redis adds per request, against the in-process path, in one
//! run against a `redis-server` this bench starts on a free port (loopback, nothing on disk).
//! Without `redis-server` on PATH it prints why and exits.
//!
//! Run with: `cargo bench --bench redis` (not run by CI).
//!
//! - `cache_hit/memory`: a description-cache lookup answered by the in-process level of a
//!   [`TieredStore`].
//! - `cache_hit/redis`: the same lookup with the memory level cold and the entry in Redis (one
//!   `EVALSHA` round trip, the value copied into memory).
//! - `stored_response/memory`, `stored_response/redis`: `GET` of a stored response held in
//!   memory, by the in-process store and by the shared one (which checks for a tombstone of a
//!   delete made through another replica: one `EXISTS` round trip).
//! - `rate_limit/memory`, `rate_limit/redis`: one request through [`RateLimitLayer`] with a
//!   global and a per-key bucket, in process and as the Lua token-bucket script in Redis.
//! - `upstream_cap/memory`, `upstream_cap/redis`: one non-stream chat completion through
//!   [`Upstream`] to the in-repo mock on loopback, with the concurrency cap in process and
//!   shared through Redis (a lease taken by the acquire script before the request and removed
//!   after it): the difference is what a semaphore acquire and release cost.
//!
//! - `budget` (printed only): a budgeted key's admission check ([`Ledger::admit`]), against
//!   the process's own counts and against Redis (one pipelined `HMGET` of the day's and the
//!   month's totals).
//!
//! After criterion's groups the bench times each path call by call and prints p50 and p99,
//! and the p50 Redis adds to the in-process path (target: at most 1 ms on loopback).

use axum::body::Body;
use criterion::{BatchSize, Criterion};
use http::{Request, Response};
use hunyuan_proxy::auth::ClientKey;
use hunyuan_proxy::cache::{Digest, Lookup, MemoryStore, Store, StoreLimits};
use hunyuan_proxy::chat::ChatRequest;
use hunyuan_proxy::ingress::responses::{
    MemoryResponseStore, ResponseContext, ResponseStatus, ResponseStore,
    StoreLimits as ResponseLimits, StoredResponse,
};
use hunyuan_proxy::mock::MockHunyuan;
use hunyuan_proxy::rate_limit::{RateLimit, RateLimitConfig, RateLimitLayer};
use hunyuan_proxy::replica::{Redis, RedisConfig, TieredResponseStore, TieredStore};
use hunyuan_proxy::upstream::{Upstream, UpstreamConfig};
use hunyuan_proxy::usage::{Budget, Ledger, PriceTable};
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tower::{service_fn, Layer, ServiceExt};

/// How long a cache lookup may wait for another loader (never reached here).
const WAIT: Duration = Duration::from_secs(5);
/// Calls timed one by one for the printed percentiles, per path.
const TIMED_CALLS: usize = 5000;

/// A `redis-server` on a free port, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                eprintln!("redis-server did not start");
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn memory() -> MemoryStore<Arc<str>> {
    MemoryStore::new(StoreLimits {
        // Small: a cold store is made for every timed Redis hit, and a large one would add the
        // page faults of its first write (a real replica's store is made once).
        max_entries: 64,
        max_bytes: None,
        ttl: Duration::from_secs(3600),
    })
}

fn tiered(redis: &Redis) -> TieredStore<Arc<str>> {
    TieredStore::new(memory(), redis.clone(), "desc", Duration::from_secs(3600))
}

/// Whether `store` answers `key` with a value.
async fn hit(store: &TieredStore<Arc<str>>, key: Digest) -> bool {
    matches!(store.lookup(key, WAIT).await, Lookup::Found(_))
}

/// A description of typical length (a few hundred bytes).
fn description() -> Arc<str> {
    Arc::from(
        "A dialog titled \"Save changes?\" with three buttons: Save, Don't Save and Cancel. "
            .repeat(6),
    )
}

/// A stored turn of a 10-message conversation.
fn stored_turn() -> StoredResponse {
    let input = (0..10)
        .map(|i| {
            serde_json::json!({"type": "message", "role": if i % 2 == 0 { "user" } else { "assistant" },
                "content": format!("message {i}: {}", "some words of a conversation ".repeat(8))})
        })
        .collect();
    StoredResponse::new(
        input,
        ResponseContext::new("hunyuan-turbos-latest").skeleton(ResponseStatus::Completed),
    )
}

/// Whether `store` has `id`.
async fn read(store: &dyn ResponseStore, id: &str) -> bool {
    store.get(id).await.unwrap().is_some()
}

fn limits() -> RateLimitConfig {
    // Never refusing: the bench measures the check, not the 429.
    RateLimitConfig {
        global: Some(RateLimit::new(1e9, 1_000_000_000)),
        per_key: Some(RateLimit::new(1e9, 1_000_000_000)),
        ..RateLimitConfig::default()
    }
}

fn limited_request() -> Request<Body> {
    let mut req = Request::post("/v1/chat/completions")
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(ClientKey(0));
    req
}

/// One request through `layer` in front of a service that answers at once.
async fn through(layer: &RateLimitLayer) -> u16 {
    let inner = service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let response = layer.layer(inner).oneshot(limited_request()).await.unwrap();
    response.status().as_u16()
}

fn chat() -> ChatRequest {
    serde_json::from_value(serde_json::json!({
        "model": "hunyuan-turbos-latest",
        "messages": [{"role": "user", "content": "hello"}],
    }))
    .unwrap()
}

/// One whole chat completion through `upstream`.
async fn complete(upstream: &Upstream) {
    upstream.complete(chat()).await.expect("the mock answers");
}

/// p50 and p99 of `TIMED_CALLS` calls of `call`, in microseconds.
fn percentiles<F, Fut>(rt: &Runtime, mut call: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    rt.block_on(async {
        let mut times: Vec<f64> = Vec::with_capacity(TIMED_CALLS);
        for _ in 0..TIMED_CALLS {
            let fut = call();
            let started = Instant::now();
            fut.await;
            times.push(started.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(f64::total_cmp);
        (times[times.len() / 2], times[times.len() * 99 / 100])
    })
}

fn report(name: &str, memory: (f64, f64), redis: (f64, f64)) {
    let added = redis.0 - memory.0;
    println!(
        "{name:<12} in-process p50 {:>7.1} µs p99 {:>7.1} µs | redis p50 {:>7.1} µs p99 {:>7.1} µs \
         | added p50 {:>7.1} µs ({:.0}x) target ≤ 1000 µs: {}",
        memory.0,
        memory.1,
        redis.0,
        redis.1,
        added,
        redis.0 / memory.0.max(0.001),
        if added <= 1000.0 { "met" } else { "MISSED" }
    );
}

fn main() {
    if Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        println!(
            "redis bench skipped: redis-server is not on PATH (install the redis-server package)"
        );
        return;
    }
    let Some(server) = RedisServer::start() else {
        println!("redis bench skipped: redis-server did not start");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis = Redis::new(
        RedisConfig::new(format!("redis://127.0.0.1:{}/0", server.port))
            .prefix("bench:")
            .timeout(Duration::from_millis(200)),
    )
    .unwrap();
    let key = Digest([7; 32]);
    rt.block_on(async {
        redis
            .ping()
            .await
            .expect("the bench's redis-server answers");
        // Warm Redis through the store itself, then check a cold store finds it there.
        let loader = tiered(&redis);
        let Lookup::Load(slot) = loader.lookup(key, WAIT).await else {
            panic!("a fresh Redis holds nothing");
        };
        slot.fill(description());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !hit(&tiered(&redis), key).await {
            assert!(Instant::now() < deadline, "the entry reaches Redis");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let warm = tiered(&redis);
    rt.block_on(async { assert!(hit(&warm, key).await) });
    let turn = stored_turn();
    let id = turn.id().to_owned();
    let local_responses = MemoryResponseStore::new(ResponseLimits::default());
    let shared_responses = TieredResponseStore::new(
        MemoryResponseStore::new(ResponseLimits::default()),
        redis.clone(),
        Duration::from_secs(3600),
    );
    rt.block_on(async {
        local_responses.put(turn.clone()).await.unwrap();
        shared_responses.put(turn).await.unwrap();
        assert!(read(&local_responses, &id).await && read(&shared_responses, &id).await);
    });
    let local_limits = RateLimitLayer::new(limits()).unwrap();
    let shared_limits = RateLimitLayer::shared(limits(), redis.clone()).unwrap();
    rt.block_on(async {
        assert_eq!(through(&local_limits).await, 200);
        assert_eq!(through(&shared_limits).await, 200);
    });

    let mock = rt.block_on(MockHunyuan::start());
    let upstream_config = || {
        UpstreamConfig::new(mock.base_url())
            .api_key("sk-bench")
            .concurrency(5)
    };
    let local_cap = Upstream::new(upstream_config()).unwrap();
    let shared_cap =
        Upstream::with_shared_cap(upstream_config(), redis.clone(), Duration::from_secs(10))
            .unwrap();
    rt.block_on(async {
        complete(&local_cap).await;
        complete(&shared_cap).await;
    });

    let mut criterion = Criterion::default().configure_from_args();
    {
        let mut group = criterion.benchmark_group("cache_hit");
        group.bench_function("memory", |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(hit(&warm, key).await) })
        });
        group.bench_function("redis", |b| {
            b.to_async(&rt).iter_batched(
                || tiered(&redis),
                |cold| async move { black_box(hit(&cold, key).await) },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
    {
        let mut group = criterion.benchmark_group("stored_response");
        group.bench_function("memory", |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(read(&local_responses, &id).await) })
        });
        group.bench_function("redis", |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(read(&shared_responses, &id).await) })
        });
        group.finish();
    }
    {
        let mut group = criterion.benchmark_group("rate_limit");
        group.bench_function("memory", |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(through(&local_limits).await) })
        });
        group.bench_function("redis", |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(through(&shared_limits).await) })
        });
        group.finish();
    }
    {
        let mut group = criterion.benchmark_group("upstream_cap");
        group.bench_function("memory", |b| b.to_async(&rt).iter(|| complete(&local_cap)));
        group.bench_function("redis", |b| b.to_async(&rt).iter(|| complete(&shared_cap)));
        group.finish();
    }
    criterion.final_summary();

    // Call by call, for the percentiles (a cold store per Redis call, made outside the timing).
    let cache_memory = percentiles(&rt, || async {
        assert!(hit(&warm, key).await);
    });
    let colds: Vec<_> = (0..TIMED_CALLS).map(|_| tiered(&redis)).collect();
    let mut colds = colds.into_iter();
    let cache_redis = percentiles(&rt, || {
        let cold = colds.next().unwrap();
        async move {
            assert!(hit(&cold, key).await, "the hit comes from Redis");
        }
    });
    let stored_memory = percentiles(&rt, || async {
        assert!(read(&local_responses, &id).await);
    });
    let stored_redis = percentiles(&rt, || async {
        assert!(read(&shared_responses, &id).await);
    });
    let rl_memory = percentiles(&rt, || async {
        assert_eq!(through(&local_limits).await, 200);
    });
    let rl_redis = percentiles(&rt, || async {
        assert_eq!(through(&shared_limits).await, 200);
    });
    let budget = || {
        let budget = Budget {
            tokens_per_day: Some(u64::MAX / 2),
            ..Budget::default()
        };
        Ledger::new(
            PriceTable::new([]),
            std::collections::HashMap::from([("alice".to_owned(), budget)]),
        )
    };
    let local_budget = budget();
    let shared_budget = budget().with_redis(redis.clone());
    let budget_memory = percentiles(&rt, || async {
        assert!(local_budget.admit("alice").await.is_ok());
    });
    let budget_redis = percentiles(&rt, || async {
        assert!(shared_budget.admit("alice").await.is_ok());
    });
    let cap_memory = percentiles(&rt, || complete(&local_cap));
    let cap_redis = percentiles(&rt, || complete(&shared_cap));
    assert_eq!(shared_cap.in_flight(), 0, "every lease given back");
    assert!(redis.is_up(), "no Redis call failed during the run");
    println!("\nRedis on loopback, {TIMED_CALLS} calls per path:");
    report("cache hit", cache_memory, cache_redis);
    report("response", stored_memory, stored_redis);
    report("rate limit", rl_memory, rl_redis);
    report("upstream cap", cap_memory, cap_redis);
    report("budget", budget_memory, budget_redis);
}
