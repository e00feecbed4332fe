//! Replicas through Redis faults: Redis killed and restarted empty (replicas idle or under
//! load), Redis answering slowly, connections reset in the middle of lease renewals, and
//! `redis_failure = "closed"` in every dialect. A replica killed with SIGKILL while holding
//! leases is `replicas::a_killed_replica_s_permits_come_back_after_the_lease`.
//!
//! Each test starts its own `redis-server` (skipped, with a printed reason, without one);
//! the slow and reset cases put [`FaultyLink`], a TCP relay the test steers, in front of it.

use crate::common::simple_chat;
use crate::redis_support::RedisServer;
use crate::replicas::{
    image_request, process_health, redis_status, replicas_on, spawn_processes, vision_calls,
};
use hunyuan_proxy::config::{FailureMode, Secret};
use hunyuan_proxy::mock::{MockConfig, MockHunyuan};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP relay in front of Redis: every chunk a client sends waits `delay` first, and
/// [`reset`](Self::reset) cuts every open connection with a TCP reset.
struct FaultyLink {
    port: u16,
    delay_ms: Arc<AtomicU64>,
    resets: tokio::sync::watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultyLink {
    async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (resets, _) = tokio::sync::watch::channel(0u64);
        let accept = tokio::spawn({
            let (delay_ms, resets) = (delay_ms.clone(), resets.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        continue;
                    };
                    tokio::spawn(relay(client, server, delay_ms.clone(), resets.subscribe()));
                }
            }
        });
        FaultyLink {
            port,
            delay_ms,
            resets,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    fn reset(&self) {
        self.resets.send_modify(|n| *n += 1);
    }
}

impl Drop for FaultyLink {
    fn drop(&mut self) {
        self.accept.abort();
        self.reset();
    }
}

async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    delay_ms: Arc<AtomicU64>,
    mut resets: tokio::sync::watch::Receiver<u64>,
) {
    let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let cut = |client: &TcpStream, server: &TcpStream| {
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    };
    loop {
        tokio::select! {
            _ = resets.changed() => return cut(&client, &server),
            read = client.read(&mut up) => {
                let Ok(n @ 1..) = read else { return };
                let delay = Duration::from_millis(delay_ms.load(Ordering::SeqCst));
                tokio::select! {
                    _ = resets.changed() => return cut(&client, &server),
                    () = tokio::time::sleep(delay) => {}
                }
                if server.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            read = server.read(&mut down) => {
                let Ok(n @ 1..) = read else { return };
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Posts `body` to `path` on the process at `port`.
async fn post_to(
    client: &reqwest::Client,
    port: u16,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    client
        .post(format!("http://127.0.0.1:{port}{path}"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The headline of issue 23: three `hunyuan-proxy` processes on one Redis; Redis killed and
/// restarted empty; one new image through each replica in turn costs exactly one vision
/// call, the two replicas that saw no traffic while Redis was away included; an image
/// described alone while Redis was away costs nothing more on the other replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_restarts_empty_one_new_image_through_three_processes_costs_one_vision_call() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let mock = MockHunyuan::start().await;
    let config = std::env::temp_dir().join(format!("faults-{}.toml", std::process::id()));
    // Generous for a loaded test machine: what is tested is that the first call after the
    // restart is not lost to the broken connection, not how fast Redis answers.
    std::fs::write(&config, "upstream = \"hunyuan\"\nredis_timeout_ms = 2000\n").unwrap();
    let (_processes, ports) = spawn_processes(3, &config, &mock, &redis).await;
    let client = reqwest::Client::new();
    for &port in &ports {
        let answer = post_to(&client, port, "/v1/chat/completions", &image_request(60)).await;
        assert_eq!(answer.status(), 200);
    }
    assert_eq!(vision_calls(&mock), 1, "shared before the outage");

    redis.stop();
    // Only the first replica sees traffic while Redis is away: it describes image 61 alone.
    let answer = post_to(
        &client,
        ports[0],
        "/v1/chat/completions",
        &image_request(61),
    )
    .await;
    assert_eq!(answer.status(), 200, "local mode keeps serving");
    assert_eq!(
        process_health(&client, ports[0]).await["components"]["redis"]["status"],
        "degraded"
    );
    assert_eq!(vision_calls(&mock), 2);

    redis.restart();
    let back = Instant::now();
    while process_health(&client, ports[0]).await["components"]["redis"]["status"] != "healthy" {
        assert!(back.elapsed() < Duration::from_secs(3), "healthy again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let recovery = back.elapsed();
    eprintln!("redis back -> /health healthy: {recovery:?}");
    assert!(recovery < Duration::from_millis(1500), "{recovery:?}");

    // A new image through each replica in turn, the idle ones first.
    let before = vision_calls(&mock);
    for &port in [ports[1], ports[2], ports[0]].iter() {
        let answer = post_to(&client, port, "/v1/chat/completions", &image_request(62)).await;
        assert_eq!(answer.status(), 200);
    }
    assert_eq!(
        vision_calls(&mock) - before,
        1,
        "one vision call across three replicas"
    );

    // Image 61, described by the first replica alone, was written to Redis on its return.
    let before = vision_calls(&mock);
    for &port in &ports[1..] {
        let answer = post_to(&client, port, "/v1/chat/completions", &image_request(61)).await;
        assert_eq!(answer.status(), 200);
    }
    assert_eq!(
        vision_calls(&mock) - before,
        0,
        "reconciled on Redis's return"
    );
    let _ = std::fs::remove_file(&config);
}

/// Redis killed and restarted empty while three replicas are under load: no request fails,
/// and once Redis is back a new image costs one vision call across the three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_loses_no_request() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let (mock, proxies) = replicas_on(MockHunyuan::start().await, 3, &redis, |c| {
        c.redis_timeout_ms = 2000;
    })
    .await;
    let proxies = Arc::new(proxies);
    let load = tokio::spawn({
        let proxies = proxies.clone();
        async move {
            let mut statuses = Vec::new();
            let started = Instant::now();
            let mut n = 0u8;
            while started.elapsed() < Duration::from_millis(2500) {
                let sends = (0..3).map(|i| {
                    let body = image_request(70 + (n % 10));
                    let proxy = &proxies[i];
                    async move { proxy.post("/v1/chat/completions", &body).await.status() }
                });
                statuses.extend(futures_util::future::join_all(sends).await);
                n = n.wrapping_add(1);
            }
            statuses
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.stop();
    tokio::time::sleep(Duration::from_millis(800)).await;
    redis.restart();
    let back = Instant::now();
    let statuses = load.await.unwrap();
    assert!(statuses.len() >= 9, "{} requests", statuses.len());
    assert!(
        statuses.iter().all(|s| s.as_u16() == 200),
        "local mode: nothing lost through the outage: {statuses:?}"
    );
    for proxy in proxies.iter() {
        while redis_status(proxy).await != "healthy" {
            assert!(back.elapsed() < Duration::from_secs(3), "healthy again");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let before = vision_calls(&mock);
    for proxy in proxies.iter() {
        let answer = proxy.post("/v1/chat/completions", &image_request(90)).await;
        assert_eq!(answer.status(), 200);
    }
    assert_eq!(
        vision_calls(&mock) - before,
        1,
        "shared again after the restart"
    );
}

/// Redis answering in 200 ms (under the 800 ms timeout): shared, just slower. In 2 s (over
/// it): requests still complete, on the replica's own state, each within a bounded time;
/// `/health` says degraded; back to normal once Redis is fast again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_is_used_within_the_timeout_and_bypassed_past_it() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let link = FaultyLink::start(redis.port()).await;
    let url = link.url();
    let (mock, proxies) = replicas_on(MockHunyuan::start().await, 2, &redis, |c| {
        c.redis_url = Some(Secret::new(url.clone()));
        c.redis_timeout_ms = 800;
    })
    .await;
    // Loads the scripts into Redis (a first `EVALSHA` costs three round trips).
    for proxy in &proxies {
        let answer = proxy.post("/v1/chat/completions", &image_request(99)).await;
        assert_eq!(answer.status(), 200);
    }
    let before = vision_calls(&mock);
    link.set_delay(Duration::from_millis(200));
    for proxy in &proxies {
        let started = Instant::now();
        let answer = proxy
            .post("/v1/chat/completions", &image_request(100))
            .await;
        assert_eq!(answer.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(vision_calls(&mock) - before, 1, "200 ms: still shared");
    assert_eq!(redis_status(&proxies[0]).await, "healthy");

    link.set_delay(Duration::from_secs(2));
    for (i, proxy) in proxies.iter().enumerate() {
        let started = Instant::now();
        let answer = proxy
            .post("/v1/chat/completions", &image_request(101 + i as u8))
            .await;
        assert_eq!(answer.status(), 200, "local mode completes the request");
        assert!(
            started.elapsed() < Duration::from_millis(1900),
            "the 800 ms Redis timeout decides, not Redis's 2 s: {:?}",
            started.elapsed()
        );
    }
    assert_eq!(redis_status(&proxies[0]).await, "degraded");

    link.set_delay(Duration::ZERO);
    let fast = Instant::now();
    for proxy in &proxies {
        while redis_status(proxy).await != "healthy" {
            assert!(fast.elapsed() < Duration::from_secs(6), "healthy again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let before = vision_calls(&mock);
    for proxy in &proxies {
        assert_eq!(
            proxy
                .post("/v1/chat/completions", &image_request(110))
                .await
                .status(),
            200
        );
    }
    assert_eq!(vision_calls(&mock) - before, 1, "shared again");
}

/// Connections to Redis reset again and again while a stream holds the only permit (its
/// lease renewed every third of a second): the stream completes, the other replica is kept
/// out the whole time (never two requests upstream), and gets in once the stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_during_lease_renewals_keep_the_cap_and_the_stream() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let link = FaultyLink::start(redis.port()).await;
    let url = link.url();
    // About 3 s of stream (six events), three lease times of 1 s.
    let mock =
        MockHunyuan::start_with(MockConfig::default().with_chunk_delay(Duration::from_millis(500)))
            .await;
    let (mock, proxies) = replicas_on(mock, 2, &redis, |c| {
        c.redis_url = Some(Secret::new(url.clone()));
        c.upstream_concurrency = 1;
        c.upstream_queue_size = 0;
        c.redis_lease_secs = 1;
    })
    .await;
    let stream = proxies[0]
        .post("/v1/chat/completions", &simple_chat(true))
        .await;
    assert_eq!(stream.status(), 200);
    let reading = tokio::spawn(crate::common::sse_data(stream));
    let mut refused = 0;
    while !reading.is_finished() {
        tokio::time::sleep(Duration::from_millis(150)).await;
        link.reset();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let other = proxies[1]
            .post("/v1/chat/completions", &simple_chat(false))
            .await;
        if reading.is_finished() {
            break;
        }
        assert_eq!(
            other.status(),
            429,
            "the other replica waits for the permit"
        );
        refused += 1;
    }
    assert!(refused >= 4, "{refused} refusals during the stream");
    assert_eq!(
        reading.await.unwrap().last().map(String::as_str),
        Some("[DONE]"),
        "the stream completes through the resets"
    );
    assert_eq!(mock.max_in_flight(), 1, "never more than the cap upstream");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let after = proxies[1]
            .post("/v1/chat/completions", &simple_chat(false))
            .await;
        if after.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the permit comes back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `redis_failure = "closed"`: while Redis is away every dialect answers 503 in its own
/// envelope; within a second of Redis's return every dialect serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_mode_answers_503_in_every_dialect_and_serves_within_a_second_of_return() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let (_mock, proxies) = replicas_on(MockHunyuan::start().await, 1, &redis, |c| {
        c.redis_failure = FailureMode::Closed;
    })
    .await;
    let proxy = &proxies[0];
    let model = "hunyuan-2.0-thinking-20251109";
    let routes: [(&str, Value, bool); 4] = [
        ("/v1/chat/completions", simple_chat(false), false),
        (
            "/v1/completions",
            json!({"model": model, "prompt": "Hello"}),
            false,
        ),
        (
            "/v1/messages",
            json!({"model": model, "max_tokens": 64,
                   "messages": [{"role": "user", "content": "Hello"}]}),
            true,
        ),
        (
            "/v1/responses",
            json!({"model": model, "input": "Hello"}),
            false,
        ),
    ];
    for (path, body, _) in &routes {
        assert_eq!(proxy.post(path, body).await.status(), 200, "{path} before");
    }
    redis.stop();
    // The first call after the loss finds out (the health check makes one).
    assert_eq!(redis_status(proxy).await, "unhealthy");
    for (path, body, anthropic) in &routes {
        let refused = proxy.post(path, body).await;
        assert_eq!(refused.status(), 503, "{path}");
        let envelope: Value = refused.json().await.unwrap();
        if *anthropic {
            assert_eq!(envelope["type"], "error", "{path}: {envelope}");
            assert!(envelope["error"]["type"].is_string(), "{path}: {envelope}");
            assert!(envelope["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Redis"));
        } else {
            assert!(envelope["error"]["type"].is_string(), "{path}: {envelope}");
            assert!(
                envelope["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("Redis"),
                "{path}: {envelope}"
            );
        }
    }
    redis.restart();
    let back = Instant::now();
    while proxy.post(routes[0].0, &routes[0].1).await.status() != 200 {
        assert!(back.elapsed() < Duration::from_secs(3), "serving again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let serving = back.elapsed();
    eprintln!("redis back -> closed mode serving: {serving:?}");
    assert!(
        serving < Duration::from_secs(1),
        "within a second: {serving:?}"
    );
    for (path, body, _) in &routes {
        assert_eq!(proxy.post(path, body).await.status(), 200, "{path} after");
    }
}
