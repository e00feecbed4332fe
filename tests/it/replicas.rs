//! Several replicas sharing one Redis: the description cache, its single flight across
//! replicas, shared rate limits, stored responses, the shared upstream concurrency cap (with leases that come
//! back from a crashed replica), and the failure policy when Redis goes away and comes back.
//! Each test starts its own `redis-server` (skipped, with a printed reason, without one).

use crate::common::TestProxy;
use crate::redis_support::RedisServer;
use base64::Engine;
use hunyuan_proxy::auth::ClientKey;
use hunyuan_proxy::config::{Config, FailureMode, Secret};
use hunyuan_proxy::mock::{Fault, MockConfig, MockHunyuan};
use hunyuan_proxy::rate_limit::RateLimit;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const CLIENT_KEY: &str = "client-key-replicas";

pub(crate) fn image_request(seed: u8) -> Value {
    let bytes: Vec<u8> = (0..2000u32)
        .map(|n| (n as u8).wrapping_mul(17).wrapping_add(seed))
        .collect();
    let url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    );
    json!({
        "model": "hunyuan-vision-1.5-instruct",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": url}}
        ]}],
        // With tools the image goes through the cascade (described, then the text model).
        "tools": [{"type": "function", "function": {
            "name": "click",
            "description": "Click a button",
            "parameters": {"type": "object", "properties": {"label": {"type": "string"}}}
        }}]
    })
}

pub(crate) fn vision_calls(mock: &MockHunyuan) -> usize {
    mock.chat_requests()
        .iter()
        .filter(|r| r["model"].as_str().is_some_and(|m| m.contains("vision")))
        .count()
}

/// `n` proxies in front of one mock, sharing `redis`; `edit` may change each config.
async fn replicas(
    n: usize,
    redis: &RedisServer,
    edit: impl Fn(&mut Config),
) -> (MockHunyuan, Vec<TestProxy>) {
    replicas_on(MockHunyuan::start().await, n, redis, edit).await
}

/// `n` proxies in front of `mock`, sharing `redis`; `edit` may change each config.
pub(crate) async fn replicas_on(
    mock: MockHunyuan,
    n: usize,
    redis: &RedisServer,
    edit: impl Fn(&mut Config),
) -> (MockHunyuan, Vec<TestProxy>) {
    let mut proxies = Vec::new();
    for _ in 0..n {
        let mut config = TestProxy::config_for(&mock);
        config.redis_url = Some(Secret::new(redis.url()));
        // Generous for a loaded test machine; the default is 50 ms.
        config.redis_timeout_ms = 500;
        edit(&mut config);
        proxies.push(TestProxy::start_on(mock.clone(), config).await);
    }
    (mock, proxies)
}

pub(crate) async fn health(proxy: &TestProxy) -> Value {
    proxy.get("/health").await.json().await.unwrap()
}

pub(crate) async fn redis_status(proxy: &TestProxy) -> String {
    health(proxy).await["components"]["redis"]["status"]
        .as_str()
        .unwrap_or("missing")
        .to_owned()
}

#[tokio::test]
async fn one_image_through_three_replicas_costs_one_vision_call() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (mock, proxies) = replicas(3, &redis, |_| {}).await;
    for proxy in &proxies {
        let response = proxy.post("/v1/chat/completions", &image_request(1)).await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(vision_calls(&mock), 1, "the other replicas read Redis");
    // The replica that got it from Redis keeps it in memory: no round trip the next time.
    assert!(proxies[2].proxy.description_cache().stats().entries >= 1);
    assert_eq!(redis_status(&proxies[1]).await, "healthy");
    let metrics = proxies[0].get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("hunyuan_proxy_redis_calls_total"),
        "{metrics}"
    );
    assert!(metrics.contains("hunyuan_proxy_redis_call_duration_seconds"));

    // Clearing through one replica empties its memory and the shared entries.
    let cleared = proxies[0]
        .client
        .delete(proxies[0].url("/cache"))
        .bearer_auth(crate::common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = proxies[0]
            .post("/v1/chat/completions", &image_request(1))
            .await;
        assert_eq!(response.status(), 200);
        if vision_calls(&mock) == 2 {
            break;
        }
        // The Redis side is cleared in the background: the first request may still find it.
        proxies[0].proxy.description_cache().clear();
        assert!(Instant::now() < deadline, "cleared in Redis too");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_same_new_image_sent_to_three_replicas_at_once_costs_one_vision_call() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (mock, proxies) = replicas(3, &redis, |_| {}).await;
    // A slow vision model, so the three requests overlap.
    mock.set_fault(Some(Fault::Delay(Duration::from_millis(400))));
    let request = image_request(2);
    let answers = futures_util::future::join_all(
        proxies
            .iter()
            .map(|p| p.post("/v1/chat/completions", &request)),
    )
    .await;
    assert!(answers.iter().all(|a| a.status() == 200));
    assert_eq!(vision_calls(&mock), 1, "one replica described, two waited");
}

#[tokio::test]
async fn one_client_key_is_limited_across_three_replicas() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (_mock, proxies) = replicas(3, &redis, |c| {
        c.client_api_keys = vec![Secret::new(CLIENT_KEY)];
        c.client_rate_limit = Some(RateLimit::new(0.5, 4));
    })
    .await;
    let started = Instant::now();
    let mut admitted = 0;
    let mut refused = 0;
    for i in 0..12 {
        let response = proxies[i % 3]
            .client
            .post(proxies[i % 3].url("/v1/chat/completions"))
            .bearer_auth(CLIENT_KEY)
            .json(&crate::common::simple_chat(false))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => admitted += 1,
            429 => {
                assert!(response.headers().contains_key("retry-after"));
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let refill = (started.elapsed().as_secs_f64() * 0.5).ceil() as usize;
    assert!(admitted >= 4, "the burst is admitted: {admitted}");
    assert!(
        admitted <= 4 + refill,
        "burst 4 shared by three replicas, not 4 each: {admitted} admitted"
    );
    assert_eq!(admitted + refused, 12);
}

#[tokio::test]
async fn a_client_key_keeps_its_shared_bucket_and_usage_when_the_list_is_reordered() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // Two replicas (or one before and after a restart) whose `client_api_keys` list the same
    // keys in another order: each key has one bucket, found by the key, not by its position.
    let (first, second) = ("client-key-first-0001", "client-key-second-002");
    let keys = |order: [&'static str; 2]| {
        move |c: &mut Config| {
            c.client_api_keys = order.iter().map(|k| Secret::new(*k)).collect();
            c.client_rate_limit = Some(RateLimit::new(0.001, 1));
        }
    };
    let (mock, mut proxies) = replicas(1, &redis, keys([first, second])).await;
    let (_, reordered) = replicas_on(mock, 1, &redis, keys([second, first])).await;
    proxies.extend(reordered);
    let status = |proxy: usize, key: &'static str| {
        let proxy = &proxies[proxy];
        async move {
            proxy
                .client
                .post(proxy.url("/v1/chat/completions"))
                .bearer_auth(key)
                .json(&crate::common::simple_chat(false))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(0, first).await, 200, "the first key's burst of 1");
    assert_eq!(
        status(1, second).await,
        200,
        "the second key, first in the other replica's list, has a bucket of its own"
    );
    assert_eq!(
        status(1, first).await,
        429,
        "the first key's bucket is shared"
    );
    assert_eq!(status(0, second).await, 429, "the second key's too");
    // Each key's usage is under one name on both replicas (a hash prefix, not the position),
    // one admitted request each.
    let names = [first, second].map(|k| ClientKey::of(k).plain_name());
    for proxy in &proxies {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status: Value = proxy
                .client
                .get(proxy.url("/status"))
                .bearer_auth(crate::common::ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let by_key = &status["usage"]["today"]["by_key"];
            let mut shown: Vec<&String> = by_key.as_object().unwrap().keys().collect();
            shown.sort();
            let mut want: Vec<&String> = names.iter().collect();
            want.sort();
            if shown == want && names.iter().all(|n| by_key[n]["requests"] == 1) {
                break;
            }
            assert!(Instant::now() < deadline, "{by_key}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn traffic_continues_while_redis_is_down_and_sharing_resumes_when_it_returns() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let (mock, proxies) = replicas(2, &redis, |c| {
        c.client_api_keys = vec![Secret::new(CLIENT_KEY)];
        c.client_rate_limit = Some(RateLimit::new(100.0, 100));
    })
    .await;
    let chat = |proxy: &TestProxy, body: Value| {
        proxy
            .client
            .post(proxy.url("/v1/chat/completions"))
            .bearer_auth(CLIENT_KEY)
            .json(&body)
            .send()
    };
    assert_eq!(
        chat(&proxies[0], image_request(3)).await.unwrap().status(),
        200
    );
    redis.stop();
    for seed in 4..8 {
        let response = chat(&proxies[(seed % 2) as usize], image_request(seed))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "local mode keeps serving");
    }
    let report = health(&proxies[0]).await;
    assert_eq!(report["components"]["redis"]["status"], "degraded");
    assert_eq!(report["components"]["redis"]["critical"], false);

    redis.restart();
    let back = Instant::now();
    while redis_status(&proxies[0]).await != "healthy"
        || redis_status(&proxies[1]).await != "healthy"
    {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "shared again within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = vision_calls(&mock);
    for proxy in &proxies {
        assert_eq!(chat(proxy, image_request(9)).await.unwrap().status(), 200);
    }
    assert_eq!(vision_calls(&mock) - before, 1, "the cache is shared again");
}

#[tokio::test]
async fn closed_mode_refuses_with_503_while_redis_is_down() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let (_mock, proxies) = replicas(1, &redis, |c| c.redis_failure = FailureMode::Closed).await;
    let proxy = &proxies[0];
    let ok = proxy
        .post("/v1/chat/completions", &crate::common::simple_chat(false))
        .await;
    assert_eq!(ok.status(), 200);
    redis.stop();
    // The first request after the loss may be the one that finds out.
    let _ = proxy.post("/v1/chat/completions", &image_request(10)).await;
    let refused = proxy
        .post("/v1/chat/completions", &crate::common::simple_chat(false))
        .await;
    let envelope = crate::common::expect_envelope(refused, 503).await;
    assert!(
        envelope["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Redis"),
        "{envelope}"
    );
    assert_eq!(redis_status(proxy).await, "unhealthy");
    redis.restart();
    let back = Instant::now();
    loop {
        let response = proxy
            .post("/v1/chat/completions", &crate::common::simple_chat(false))
            .await;
        if response.status() == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "served again within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `hunyuan-proxy` processes, killed on drop.
pub(crate) struct Processes(Vec<std::process::Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `n` `hunyuan-proxy` processes with the config file `config`, in front of `mock`
/// and sharing `redis`; returns them (killed on drop) and their ports once each is live.
pub(crate) async fn spawn_processes(
    n: usize,
    config: &std::path::Path,
    mock: &MockHunyuan,
    redis: &RedisServer,
) -> (Processes, Vec<u16>) {
    let ports: Vec<u16> = (0..n)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port()
        })
        .collect();
    let processes = Processes(
        ports
            .iter()
            .map(|port| {
                std::process::Command::new(env!("CARGO_BIN_EXE_hunyuan-proxy"))
                    .args(["--config", config.to_str().unwrap()])
                    .args(["--port", &port.to_string()])
                    .env("HUNYUAN_API_KEY", crate::common::UPSTREAM_KEY)
                    .env("HUNYUAN_API_BASE", mock.base_url())
                    .env("HUNYUAN_REDIS_URL", redis.url())
                    .env("RUST_LOG", "warn")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("hunyuan-proxy starts")
            })
            .collect(),
    );
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    for port in &ports {
        while client
            .get(format!("http://127.0.0.1:{port}/health/live"))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "hunyuan-proxy did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (processes, ports)
}

/// `GET /health` of the process listening on `port`.
pub(crate) async fn process_health(client: &reqwest::Client, port: u16) -> Value {
    client
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The upstream cap of item 7 with real processes: 18 requests at cap 5 through three
/// `hunyuan-proxy` processes never put more than 5 on the upstream and are all served; with
/// Redis killed they are still served and `/health` says `redis` is degraded; with Redis back
/// the replicas share again within 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_proxy_processes_share_the_upstream_cap_and_outlive_redis() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let mock =
        MockHunyuan::start_with(MockConfig::default().with_chunk_delay(Duration::from_millis(20)))
            .await;
    mock.set_fault(Some(Fault::Delay(Duration::from_millis(200))));
    let config = std::env::temp_dir().join(format!("cap-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "upstream = \"hunyuan\"\nupstream_concurrency = 5\nredis_timeout_ms = 500\n",
    )
    .unwrap();
    let (_processes, ports) = spawn_processes(3, &config, &mock, &redis).await;
    let client = reqwest::Client::new();
    let send = |i: usize| {
        let client = client.clone();
        let port = ports[i % ports.len()];
        async move {
            let stream = i % 2 == 0;
            let response = client
                .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
                .json(&crate::common::simple_chat(stream))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            let whole = if stream {
                body.contains("data: [DONE]")
            } else {
                body.contains("\"choices\"")
            };
            (status, whole)
        }
    };
    let answers = futures_util::future::join_all((0..18).map(send)).await;
    assert!(
        answers
            .iter()
            .all(|&(status, whole)| status == 200 && whole),
        "every request is served whole: {answers:?}"
    );
    assert_eq!(
        mock.max_in_flight(),
        5,
        "three processes share the cap of 5 (each alone would let 5 through)"
    );

    redis.stop();
    let answers = futures_util::future::join_all((0..6).map(send)).await;
    assert!(
        answers
            .iter()
            .all(|&(status, whole)| status == 200 && whole),
        "local mode keeps serving with Redis gone: {answers:?}"
    );
    for port in &ports {
        let report = process_health(&client, *port).await;
        assert_eq!(
            report["components"]["redis"]["status"], "degraded",
            "{report}"
        );
    }

    redis.restart();
    let back = Instant::now();
    for port in &ports {
        loop {
            let report = process_health(&client, *port).await;
            if report["components"]["redis"]["status"] == "healthy" {
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(10),
                "shared again within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    mock.reset_max_in_flight();
    let answers = futures_util::future::join_all((0..18).map(send)).await;
    assert!(
        answers.iter().all(|&(status, _)| status == 200),
        "{answers:?}"
    );
    assert!(
        mock.max_in_flight() <= 5,
        "the cap is shared again: {} at once",
        mock.max_in_flight()
    );
    let _ = std::fs::remove_file(&config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_proxy_processes_share_the_cache_and_the_limits() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = MockHunyuan::start().await;
    mock.set_fault(Some(Fault::Delay(Duration::from_millis(300))));
    let config = std::env::temp_dir().join(format!("replicas-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "upstream = \"hunyuan\"\nclient_api_keys = [\"{CLIENT_KEY}\"]\n\
             client_rate_limit = {{ per_second = 0.5, burst = 4 }}\n\
             redis_timeout_ms = 500\n"
        ),
    )
    .unwrap();
    let (_processes, ports) = spawn_processes(3, &config, &mock, &redis).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let request = image_request(20);
    let answers = futures_util::future::join_all(ports.iter().map(|port| {
        client
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .bearer_auth(CLIENT_KEY)
            .json(&request)
            .send()
    }))
    .await;
    assert!(answers.iter().all(|a| a.as_ref().unwrap().status() == 200));
    assert_eq!(
        vision_calls(&mock),
        1,
        "one image, three processes, one vision call"
    );
    // Three of the key's burst of 4 are spent: across the processes, about one more fits.
    let mut admitted = 3;
    for i in 0..9 {
        let status = client
            .post(format!(
                "http://127.0.0.1:{}/v1/chat/completions",
                ports[i % 3]
            ))
            .bearer_auth(CLIENT_KEY)
            .json(&crate::common::simple_chat(false))
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            admitted += 1;
        } else {
            assert_eq!(status, 429);
        }
    }
    let refill = (started.elapsed().as_secs_f64() * 0.5).ceil() as usize;
    assert!(
        admitted <= 4 + refill,
        "burst 4 shared by three processes: {admitted} admitted in {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_file(&config);
}

/// Sends `n` chat requests spread over `proxies` at once (every other one streamed) and
/// returns, for each, its status and whether its answer was whole (a streamed one ends with
/// `[DONE]`).
async fn burst(proxies: &[TestProxy], n: usize) -> Vec<(u16, bool)> {
    futures_util::future::join_all((0..n).map(|i| async move {
        let stream = i % 2 == 0;
        let response = proxies[i % proxies.len()]
            .post("/v1/chat/completions", &crate::common::simple_chat(stream))
            .await;
        let status = response.status().as_u16();
        let whole = if stream {
            crate::common::sse_data(response)
                .await
                .last()
                .map(String::as_str)
                == Some("[DONE]")
        } else {
            response
                .json::<Value>()
                .await
                .is_ok_and(|v| v["choices"].is_array())
        };
        (status, whole)
    }))
    .await
}

/// The most chat requests the mock served at once while `work` ran, sampled every 2 ms.
async fn peak_in_flight<T>(
    mock: &MockHunyuan,
    work: impl std::future::Future<Output = T>,
) -> (T, usize) {
    let done = std::sync::atomic::AtomicBool::new(false);
    let sample = async {
        let mut peak = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            peak = peak.max(mock.in_flight());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        peak
    };
    let work = async {
        let out = work.await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        out
    };
    tokio::join!(work, sample)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eighteen_requests_at_cap_five_through_three_replicas_never_exceed_five_upstream() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // A slow upstream: 200 ms before each answer, 20 ms between stream events.
    let mock =
        MockHunyuan::start_with(MockConfig::default().with_chunk_delay(Duration::from_millis(20)))
            .await;
    mock.set_fault(Some(Fault::Delay(Duration::from_millis(200))));
    let (mock, proxies) = replicas_on(mock, 3, &redis, |c| c.upstream_concurrency = 5).await;
    let answers = burst(&proxies, 18).await;
    assert!(
        answers
            .iter()
            .all(|&(status, whole)| status == 200 && whole),
        "every request is served whole: {answers:?}"
    );
    assert_eq!(
        mock.max_in_flight(),
        5,
        "the cap of 5 is shared by the three replicas (each alone would let 5 through)"
    );
    for proxy in &proxies {
        assert_eq!(
            proxy.proxy.upstream().in_flight(),
            0,
            "every lease given back"
        );
    }
    let metrics = proxies[0].get("/metrics").await.text().await.unwrap();
    for op in ["sem_acquire", "sem_release"] {
        assert!(
            metrics.contains(&format!("hunyuan_proxy_redis_calls_total{{op=\"{op}\"}}")),
            "{op} counted: {metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_stream_keeps_its_lease_past_the_lease_time() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // About 3 s of stream (six events): longer than the 1 s lease, renewed every third of it.
    let mock =
        MockHunyuan::start_with(MockConfig::default().with_chunk_delay(Duration::from_millis(500)))
            .await;
    let (_mock, proxies) = replicas_on(mock, 2, &redis, |c| {
        c.upstream_concurrency = 1;
        c.upstream_queue_size = 0;
        c.redis_lease_secs = 1;
    })
    .await;
    let stream = proxies[0]
        .post("/v1/chat/completions", &crate::common::simple_chat(true))
        .await;
    assert_eq!(stream.status(), 200);
    let reading = tokio::spawn(crate::common::sse_data(stream));
    let started = Instant::now();
    while !reading.is_finished() {
        let refused = proxies[1]
            .post("/v1/chat/completions", &crate::common::simple_chat(false))
            .await;
        if reading.is_finished() {
            break;
        }
        assert_eq!(
            refused.status(),
            429,
            "the other replica is refused while the stream is open ({:?} in)",
            started.elapsed()
        );
        assert!(refused.headers().contains_key("retry-after"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "the stream outlived the lease: {:?}",
        started.elapsed()
    );
    assert_eq!(
        reading.await.unwrap().last().map(String::as_str),
        Some("[DONE]")
    );
    let after = proxies[1]
        .post("/v1/chat/completions", &crate::common::simple_chat(false))
        .await;
    assert_eq!(
        after.status(),
        200,
        "the lease is given back when the stream ends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_s_permits_come_back_after_the_lease() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = MockHunyuan::start().await;
    // The killed replica's two requests hang at the upstream.
    mock.set_fault(Some(Fault::Delay(Duration::from_secs(60))));
    let config = std::env::temp_dir().join(format!("lease-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "upstream = \"hunyuan\"\nupstream_concurrency = 2\nredis_lease_secs = 2\nredis_timeout_ms = 500\n",
    )
    .unwrap();
    let (mut process, ports) = spawn_processes(1, &config, &mock, &redis).await;
    let port = ports[0];
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    for _ in 0..2 {
        let request = client
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .json(&crate::common::simple_chat(false))
            .send();
        tokio::spawn(request);
    }
    while mock.in_flight() < 2 {
        assert!(
            Instant::now() < deadline,
            "the two requests reach the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mock.set_fault(None);
    let (_mock, proxies) = replicas_on(mock, 1, &redis, |c| {
        c.upstream_concurrency = 2;
        c.upstream_queue_size = 0;
        c.redis_lease_secs = 2;
    })
    .await;
    let survivor = &proxies[0];
    let body = crate::common::simple_chat(false);
    let chat = || survivor.post("/v1/chat/completions", &body);
    crate::common::expect_envelope(chat().await, 429).await;

    // Killed: no release, no renewal. Its leases run out within the lease time.
    let mut child = process.0.pop().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    let first = chat().await;
    assert_eq!(first.status(), 429, "the permits are not back at once");
    loop {
        let response = chat().await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 429);
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the permits came back within the 2 s lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(killed.elapsed() > Duration::from_millis(500));
    // Both permits come back: two at once are served. (The two leases were renewed a few
    // milliseconds apart, so the second may run out just after the first.)
    loop {
        let (a, b) = tokio::join!(chat(), chat());
        let statuses = (a.status().as_u16(), b.status().as_u16());
        if statuses == (200, 200) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "both permits came back within the 2 s lease: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_file(&config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_falls_back_per_replica_while_redis_is_down_and_is_shared_again_after() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let mock =
        MockHunyuan::start_with(MockConfig::default().with_chunk_delay(Duration::from_millis(20)))
            .await;
    mock.set_fault(Some(Fault::Delay(Duration::from_millis(200))));
    let (mock, proxies) = replicas_on(mock, 3, &redis, |c| c.upstream_concurrency = 5).await;
    // Redis goes away while the requests are queued and in flight.
    let (answers, ()) = tokio::join!(burst(&proxies, 18), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        redis.stop();
    });
    assert!(
        answers
            .iter()
            .all(|&(status, whole)| status == 200 && whole),
        "local mode: traffic continues: {answers:?}"
    );
    assert_eq!(redis_status(&proxies[0]).await, "degraded");
    let metrics = proxies[0].get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("user=\"upstream_cap\""),
        "the fallback is counted: {metrics}"
    );

    redis.restart();
    let back = Instant::now();
    while redis_status(&proxies[0]).await != "healthy"
        || redis_status(&proxies[1]).await != "healthy"
        || redis_status(&proxies[2]).await != "healthy"
    {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "shared again within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (answers, peak) = peak_in_flight(&mock, burst(&proxies, 18)).await;
    assert!(answers
        .iter()
        .all(|&(status, whole)| status == 200 && whole));
    assert!(
        peak <= 5,
        "the cap is shared again: {peak} at once upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_upstream_key_has_its_own_shared_cap_whatever_order_replicas_list_them_in() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = MockHunyuan::start().await;
    mock.set_fault(Some(Fault::Delay(Duration::from_millis(200))));
    let replica = std::sync::atomic::AtomicUsize::new(0);
    let (mock, proxies) = replicas_on(mock, 3, &redis, |c| {
        let mut keys = vec![Secret::new("upstream-key-a"), Secret::new("upstream-key-b")];
        if replica.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 2 == 1 {
            keys.reverse();
        }
        c.api_key = None;
        c.api_keys = keys;
        c.upstream_concurrency = 2;
    })
    .await;
    let answers = burst(&proxies, 12).await;
    assert!(
        answers
            .iter()
            .all(|&(status, whole)| status == 200 && whole),
        "{answers:?}"
    );
    assert_eq!(
        mock.max_in_flight(),
        4,
        "2 per key on 2 keys, shared by the three replicas"
    );
    let keys: std::collections::BTreeSet<String> = mock
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .filter_map(|r| {
            r.headers
                .get("authorization")?
                .to_str()
                .ok()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(keys.len(), 2, "both keys were used: {keys:?}");
}

/// `POST /v1/responses` with `body`; the response object (status 200 asserted).
async fn respond(proxy: &TestProxy, body: &Value) -> Value {
    let response = proxy.post("/v1/responses", body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_response_stored_through_one_replica_is_continued_read_and_deleted_through_another() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (mock, proxies) = replicas(3, &redis, |_| {}).await;
    let (a, b, c) = (&proxies[0], &proxies[1], &proxies[2]);
    let model = "hunyuan-turbos-latest";
    let first = respond(a, &json!({"model": model, "input": "My name is Ada."})).await;
    let id = first["id"].as_str().unwrap().to_owned();

    // Replica B continues the turn stored by A: the earlier turn reaches the model.
    let second = respond(
        b,
        &json!({"model": model, "previous_response_id": id, "input": "What is my name?"}),
    )
    .await;
    assert_eq!(second["previous_response_id"], id.as_str());
    let sent = mock.chat_requests().pop().unwrap();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(messages[0]["content"], "My name is Ada.");
    assert_eq!(messages[1]["content"], "Echo: My name is Ada.");

    // A streamed turn on C is stored too, and A continues it.
    let streamed = c
        .post(
            "/v1/responses",
            &json!({"model": model, "stream": true, "previous_response_id": second["id"],
                    "input": "Again?"}),
        )
        .await;
    assert_eq!(streamed.status(), 200);
    let text = streamed.text().await.unwrap();
    let third = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|e| e["type"] == "response.completed")
        .expect("a completed event")["response"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(2);
    while a.get(&format!("/v1/responses/{third}")).await.status() != 200 {
        // A streamed turn is written to Redis just after its last event.
        assert!(Instant::now() < deadline, "the streamed turn reaches Redis");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    respond(
        a,
        &json!({"model": model, "previous_response_id": third, "input": "Once more"}),
    )
    .await;
    let history = mock.chat_requests().pop().unwrap()["messages"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(history, 7, "three earlier turns and the new input");

    // GET on B reads A's response.
    let read = b.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(read.status(), 200);
    let read: Value = read.json().await.unwrap();
    assert_eq!(read["id"], id.as_str());
    assert_eq!(read["output"], first["output"]);

    // DELETE on B removes it for A, which holds it in memory.
    let deleted = b
        .client
        .delete(b.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    crate::common::expect_envelope(a.get(&format!("/v1/responses/{id}")).await, 404).await;
    let continued = a
        .post(
            "/v1/responses",
            &json!({"model": model, "previous_response_id": id, "input": "x"}),
        )
        .await;
    let body = crate::common::expect_envelope(continued, 404).await;
    assert_eq!(body["error"]["code"], "previous_response_not_found");
    let again = c
        .client
        .delete(c.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    crate::common::expect_envelope(again, 404).await;
}

#[tokio::test]
async fn stored_responses_are_served_from_memory_while_redis_is_down() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let (mock, proxies) = replicas(2, &redis, |_| {}).await;
    let (a, b) = (&proxies[0], &proxies[1]);
    let model = "hunyuan-turbos-latest";
    let first = respond(a, &json!({"model": model, "input": "My name is Ada."})).await;
    let id = first["id"].as_str().unwrap().to_owned();
    redis.stop();

    // A still has its own turn: read and continued from memory.
    let read = a.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(read.status(), 200, "served from A's memory");
    respond(
        a,
        &json!({"model": model, "previous_response_id": id, "input": "What is my name?"}),
    )
    .await;
    let sent = mock.chat_requests().pop().unwrap();
    assert_eq!(sent["messages"].as_array().unwrap().len(), 3);
    // B never had it: not found, in OpenAI's envelope (never a 500).
    crate::common::expect_envelope(b.get(&format!("/v1/responses/{id}")).await, 404).await;
    // New turns are still stored and served, per replica.
    let local = respond(b, &json!({"model": model, "input": "Hello"})).await;
    let local_id = local["id"].as_str().unwrap();
    assert_eq!(
        b.get(&format!("/v1/responses/{local_id}")).await.status(),
        200
    );
    assert_eq!(redis_status(a).await, "degraded");
}

#[tokio::test]
async fn closed_mode_refuses_stored_responses_with_503_while_redis_is_down() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let (_mock, proxies) = replicas(1, &redis, |c| c.redis_failure = FailureMode::Closed).await;
    let proxy = &proxies[0];
    let first = respond(
        proxy,
        &json!({"model": "hunyuan-turbos-latest", "input": "Hi"}),
    )
    .await;
    let id = first["id"].as_str().unwrap().to_owned();
    redis.stop();
    // The first call after the loss finds out; from then on every call is refused.
    let _ = proxy.get(&format!("/v1/responses/{id}")).await;
    let refused = proxy.get(&format!("/v1/responses/{id}")).await;
    let envelope = crate::common::expect_envelope(refused, 503).await;
    assert!(envelope["error"]["message"].is_string(), "{envelope}");
}
