//! What the image cascade costs when the description is cached, and what a cache lookup costs.
//!
//! Run with: `cargo bench --bench cascade`
//!
//! - `cascade_hit/<size>`: a whole request in process: body parse ([`ParseLayer`]), image
//!   check and digest, cache hit, replacement, model switch, and the serialization the upstream
//!   would do. The image is `<size>` of base64 text.
//! - `pass_through/<size>`: the same request through parse and serialization only (no cascade),
//!   the image kept: what the proxy costs without the cascade, for comparison.
//! - `cache_get/contended`: one `MemoryStore::get` hit while another thread does the same in a
//!   loop.

use axum::body::Body;
use base64::Engine as _;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::{Request, Response};
use hunyuan_proxy::cache::{CacheConfig, CacheLayer, Digest, MemoryStore, Store, StoreLimits};
use hunyuan_proxy::cascade::{CascadeConfig, CascadeLayer, DescribeRequest, Description};
use hunyuan_proxy::chat::{self, ParseLayer};
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::{service_fn, Layer, Service, ServiceExt};

/// A chat request carrying one PNG data URL whose base64 text is `base64_len` bytes long.
fn request_body(base64_len: usize) -> Bytes {
    let raw_len = base64_len / 4 * 3;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let raw: Vec<u8> = (0..raw_len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    );
    let body = serde_json::json!({
        "model": "hunyuan-vision-1.5-instruct",
        "tools": [{"type": "function", "function": {"name": "click", "parameters": {"type": "object"}}}],
        "messages": [
            {"role": "system", "content": "You operate a desktop."},
            {"role": "user", "content": [
                {"type": "text", "text": "Which button saves the file?"},
                {"type": "image_url", "image_url": {"url": url}}
            ]}
        ]
    });
    Bytes::from(serde_json::to_vec(&body).unwrap())
}

fn http_request(body: &Bytes) -> Request<Body> {
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.clone()))
        .unwrap()
}

/// The end of the stack: serializes the request as the upstream would, and answers it.
async fn serialize(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let chat = req
        .extensions()
        .get::<hunyuan_proxy::chat::ParsedChat>()
        .expect("parsed");
    let bytes = chat::to_json_bytes(chat.get());
    Ok(Response::new(Body::from(bytes)))
}

fn sizes() -> [(&'static str, usize); 2] {
    [("100KiB", 100 * 1024), ("4MiB", 4 * 1024 * 1024)]
}

fn cascade_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let describer = service_fn(|_: DescribeRequest| async {
        Ok::<_, Infallible>(Description(
            "A save dialog with the buttons Save and Cancel.".into(),
        ))
    });
    let cached = CacheLayer::new(CacheConfig::default())
        .expect("valid cache config")
        .layer(describer);
    let cascade = CascadeLayer::new(CascadeConfig::default(), cached).unwrap();
    let svc = ParseLayer::default().layer(cascade.layer(service_fn(serialize)));

    let mut group = c.benchmark_group("cascade_hit");
    for (name, size) in sizes() {
        let body = request_body(size);
        // Warm the cache, and check the image really is replaced.
        let answer = rt.block_on(async {
            let response = svc.clone().oneshot(http_request(&body)).await.unwrap();
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
        });
        assert!(answer.len() < 2000, "the image was replaced");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| {
                rt.block_on(async {
                    let mut svc = svc.clone();
                    let response = svc.call(http_request(body)).await.unwrap();
                    black_box(response)
                })
            })
        });
    }
    group.finish();

    let plain = ParseLayer::default().layer(service_fn(serialize));
    let mut group = c.benchmark_group("pass_through");
    for (name, size) in sizes() {
        let body = request_body(size);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| {
                rt.block_on(async {
                    let mut svc = plain.clone();
                    black_box(svc.call(http_request(body)).await.unwrap())
                })
            })
        });
    }
    group.finish();
}

fn cache_get(c: &mut Criterion) {
    let store = Arc::new(MemoryStore::new(StoreLimits {
        max_entries: 1000,
        max_bytes: None,
        ttl: Duration::from_secs(3600),
    }));
    for n in 0..=255u8 {
        store.insert(
            Digest([n; 32]),
            Description(format!("description {n}").into()),
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u8;
            while !stop.load(Ordering::Relaxed) {
                black_box(store.get(&Digest([n; 32])));
                n = n.wrapping_add(1);
            }
        })
    };
    c.bench_function("cache_get/contended", |b| {
        let mut n = 0u8;
        b.iter(|| {
            n = n.wrapping_add(1);
            black_box(store.get(&Digest([n; 32])))
        })
    });
    stop.store(true, Ordering::Relaxed);
    other.join().unwrap();
}

/// Inserting a new description (the miss path's last step) while another thread reads and
/// inserts too: 1,000 entries at most, so most inserts also evict.
fn cache_insert(c: &mut Criterion) {
    let store = Arc::new(MemoryStore::new(StoreLimits {
        max_entries: 1000,
        max_bytes: None,
        ttl: Duration::from_secs(3600),
    }));
    let description = Description("A save dialog with the buttons Save and Cancel.".into());
    let key = |n: u64, side: u8| {
        let mut bytes = [side; 32];
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        Digest(bytes)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let (store, stop, description) = (store.clone(), stop.clone(), description.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                store.insert(key(n, 1), description.clone());
                black_box(store.get(&key(n / 2, 0)));
                n += 1;
            }
        })
    };
    c.bench_function("cache_insert/contended", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            store.insert(key(n, 0), description.clone())
        })
    });
    stop.store(true, Ordering::Relaxed);
    other.join().unwrap();
}

criterion_group!(benches, cascade_hit, cache_get, cache_insert);
criterion_main!(benches);
