//! Soak: many mixed requests through the full proxy against the mock Hunyuan, watching memory
//! and counting any 5xx the proxy itself causes. Not part of CI.
//!
//! Run with:
//!
//! ```sh
//! cargo bench --bench soak                        # 200,000 requests, concurrency 16
//! cargo bench --bench soak -- --requests 20000    # shorter
//! ```
//!
//! The mix: non-stream and stream chats, requests carrying one of a small set of images (so the
//! description cache is hit), legacy completions, and injected upstream faults (a 500 that the
//! proxy retries, a 429 with `Retry-After: 0`, a stream cut midway). Every injected fault is
//! recoverable or reported in-band, so any 5xx a client sees is the proxy's own doing.
//! Memory: the process RSS after the warm-up (the first 5 % of requests, at least 12,000 so
//! the monitor's window is full) against the RSS at the
//! end; the target is within 10 %.

use base64::Engine;
use hunyuan_proxy::config::{Config, Secret};
use hunyuan_proxy::mock::{Fault, MockHunyuan};
use hunyuan_proxy::Proxy;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// The process RSS, measured right after the Prometheus recorder's buffers were drained (as
/// its upkeep does every few seconds), so both readings see the recorder in the same state.
fn rss_mib() -> f64 {
    if let Some(handle) = hunyuan_proxy::server::prometheus_handle() {
        handle.run_upkeep();
    }
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

fn images() -> Vec<String> {
    (0..8u8)
        .map(|n| {
            let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
            png.extend(std::iter::repeat_n(n, 16 * 1024));
            format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(&png)
            )
        })
        .collect()
}

fn request_for(i: u64, images: &[String]) -> (&'static str, Value, bool) {
    let text = format!("request {i}: summarise the plan in one line");
    match i % 10 {
        0..=3 => (
            "/v1/chat/completions",
            json!({"model": "hunyuan-turbos-latest", "messages": [{"role": "user", "content": text}]}),
            false,
        ),
        4..=6 => (
            "/v1/chat/completions",
            json!({"model": "hunyuan-turbos-latest", "stream": true,
                   "messages": [{"role": "user", "content": text}]}),
            true,
        ),
        7 | 8 => (
            "/v1/chat/completions",
            json!({"model": "hunyuan-turbos-latest",
            "tools": [{"type": "function", "function": {"name": "click", "parameters": {"type": "object"}}}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": images[(i / 10) as usize % images.len()]}}
            ]}]}),
            false,
        ),
        _ => (
            "/v1/completions",
            json!({"model": "hunyuan-turbos-latest", "prompt": text}),
            false,
        ),
    }
}

fn main() {
    let total = arg("--requests").unwrap_or(200_000);
    let concurrency = arg("--concurrency").unwrap_or(16) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mock = MockHunyuan::start().await;
        let config = Config {
            api_base: Some(mock.base_url()),
            api_key: Some(Secret::new("soak-key")),
            // The in-repo mock speaks the legacy rules.
            upstream: hunyuan_proxy::config::Preset::Hunyuan,
            admin_token: Some(Secret::new("soak-admin-token")),
            upstream_concurrency: 64,
            upstream_retry_backoff_ms: 1,
            ..Config::default()
        };
        let proxy = Proxy::new(config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = proxy.clone();
        tokio::spawn(async move {
            server
                .serve(listener, std::future::pending())
                .await
                .unwrap()
        });

        let images = Arc::new(images());
        let next = Arc::new(AtomicU64::new(0));
        let ok = Arc::new(AtomicU64::new(0));
        let client_errors = Arc::new(AtomicU64::new(0));
        let server_errors = Arc::new(AtomicU64::new(0));
        let cut_streams = Arc::new(AtomicU64::new(0));
        let faults = Arc::new(AtomicUsize::new(0));
        // Past the monitor's window (10,000 samples), so a filled window is not counted as growth.
        let warm_up = (total / 20).max(12_000).min(total - 1);
        let rss_after_warm_up = Arc::new(std::sync::Mutex::new(None::<f64>));
        let checkpoints = Arc::new(std::sync::Mutex::new(Vec::<(u64, f64)>::new()));
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..concurrency {
            let client = reqwest::Client::new();
            let checkpoints = checkpoints.clone();
            let (images, next, ok, client_errors, server_errors, cut_streams, faults, mock, rss) = (
                images.clone(),
                next.clone(),
                ok.clone(),
                client_errors.clone(),
                server_errors.clone(),
                cut_streams.clone(),
                faults.clone(),
                mock.clone(),
                rss_after_warm_up.clone(),
            );
            workers.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    if i == warm_up {
                        *rss.lock().unwrap() = Some(rss_mib());
                        mock.clear_requests();
                    }
                    if i > warm_up && i % (total / 8).max(1) == 0 {
                        checkpoints.lock().unwrap().push((i, rss_mib()));
                    }
                    if i % 500 == 250 {
                        mock.clear_requests();
                    }
                    if i % 97 == 0 {
                        faults.fetch_add(1, Ordering::Relaxed);
                        mock.fail_next(
                            1,
                            match i % 3 {
                                0 => Fault::ServerError,
                                1 => Fault::RateLimited {
                                    retry_after_secs: 0,
                                },
                                _ => Fault::DropMidStream { after_events: 1 },
                            },
                        );
                    }
                    let (path, body, stream) = request_for(i, &images);
                    let response = client
                        .post(format!("http://{addr}{path}"))
                        .json(&body)
                        .send()
                        .await
                        .expect("the proxy answers");
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    match status {
                        200 if stream && !text.contains("data: [DONE]") => {
                            cut_streams.fetch_add(1, Ordering::Relaxed);
                        }
                        200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        500.. => {
                            server_errors.fetch_add(1, Ordering::Relaxed);
                            eprintln!("5xx {status} for request {i}: {text}");
                        }
                        _ => {
                            client_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        let elapsed = started.elapsed();
        let rss_end = rss_mib();
        let rss_warm = rss_after_warm_up.lock().unwrap().unwrap_or(f64::NAN);
        let cache = proxy.description_cache().stats();
        println!("## Soak: {total} requests, concurrency {concurrency}");
        println!("| figure | value |");
        println!("|---|---|");
        println!(
            "| wall time | {:.1} s ({:.0} req/s) |",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64()
        );
        println!("| 200 complete | {} |", ok.load(Ordering::Relaxed));
        println!(
            "| streams cut by an injected fault (error event, no [DONE]) | {} |",
            cut_streams.load(Ordering::Relaxed)
        );
        println!("| 4xx | {} |", client_errors.load(Ordering::Relaxed));
        println!(
            "| 5xx (target 0) | {} |",
            server_errors.load(Ordering::Relaxed)
        );
        println!(
            "| injected upstream faults | {} |",
            faults.load(Ordering::Relaxed)
        );
        println!(
            "| description cache hits / misses | {} / {} |",
            cache.hits, cache.misses
        );
        println!("| RSS after warm-up | {rss_warm:.1} MiB |");
        for (at, rss) in checkpoints.lock().unwrap().iter() {
            println!(
                "| RSS after {at} requests | {rss:.1} MiB ({:+.1} %) |",
                100.0 * (rss - rss_warm) / rss_warm
            );
        }
        println!(
            "| RSS at the end | {rss_end:.1} MiB ({:+.1} %, target within 10 %) |",
            100.0 * (rss_end - rss_warm) / rss_warm
        );
    });
}
