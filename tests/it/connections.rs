//! Connection guards of `Proxy::serve` on real sockets: slow request heads, idle keep-alive
//! connections, `max_connections` and the HTTP/2 stream cap.

use crate::common::TestProxy;
use hunyuan_proxy::config::Config;
use hunyuan_proxy::mock::{Fault, MockHunyuan};
use hunyuan_proxy::Proxy;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy served by `Proxy::serve` in front of a mock; stops with the test's runtime.
struct Served {
    mock: MockHunyuan,
    addr: SocketAddr,
}

async fn serve_with(edit: impl FnOnce(&mut Config)) -> Served {
    let mock = MockHunyuan::start().await;
    let mut config = TestProxy::config_for(&mock);
    edit(&mut config);
    let proxy = Proxy::new(config).expect("valid test config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { proxy.serve(listener, std::future::pending()).await });
    Served { mock, addr }
}

const LIVE: &[u8] = b"GET /health/live HTTP/1.1\r\nhost: proxy\r\n\r\n";

/// Reads one HTTP/1.1 response with a `content-length` body; returns the status line.
async fn read_response(socket: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed before the response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return head.lines().next().unwrap().to_owned();
            }
        }
    }
}

/// Whether the peer closed `socket` (EOF or reset), without waiting.
fn is_closed(socket: &TcpStream) -> bool {
    let mut buf = [0u8; 16];
    match socket.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Waits until the peer closes `socket`; `None` if it is still open after `limit`.
async fn closed_within(socket: &mut TcpStream, limit: Duration) -> Option<Instant> {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(Instant::now()),
            Ok(Ok(_)) => {}
        }
    }
}

/// The soft open-file limit, raised to the hard one.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain integer struct filled by the kernel; the test owns its process limits.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_heads_do_not_starve_a_normal_request_and_are_closed_after_the_header_timeout() {
    // Each connection costs two descriptors in this process (both ends): 5,000 need about
    // 10,000 plus what the other tests hold.
    let limit = raise_open_file_limit();
    let count = if limit >= 14_000 { 5_000 } else { 2_000 };
    // Long enough that opening them all (a few seconds in a debug build beside the other
    // tests) ends before the first one times out.
    let header_timeout = Duration::from_secs(6);
    let served = serve_with(|c| {
        c.client_header_timeout = header_timeout.as_secs();
        c.max_connections = Some(20_000);
    })
    .await;
    let started = Instant::now();
    let mut slow = Vec::with_capacity(count);
    for _ in 0..count {
        let mut socket = TcpStream::connect(served.addr).await.unwrap();
        socket
            .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: proxy\r\ncontent-")
            .await
            .unwrap();
        slow.push(socket);
    }
    let opened = started.elapsed();
    assert!(opened < header_timeout, "opening took {opened:?}");

    // A normal request on a new connection is served at once.
    let asked = Instant::now();
    let mut normal = TcpStream::connect(served.addr).await.unwrap();
    normal.write_all(LIVE).await.unwrap();
    let status = read_response(&mut normal).await;
    let took = asked.elapsed();
    assert!(status.contains(" 200 "), "{status}");
    // Starved, it would wait for the header timeout; served, it takes milliseconds (1 s of
    // slack for a loaded machine).
    assert!(
        took < Duration::from_secs(1),
        "a normal request took {took:?}"
    );
    let open = slow.iter().filter(|s| !is_closed(s)).count();
    assert_eq!(
        open, count,
        "every slow connection is still held while served"
    );

    // Then every slow one is closed, not before the header timeout.
    let mut closed = 0;
    let mut earliest = None::<Instant>;
    for socket in &mut slow {
        if let Some(at) = closed_within(socket, header_timeout + Duration::from_secs(8)).await {
            closed += 1;
            earliest = Some(earliest.map_or(at, |e: Instant| e.min(at)));
        }
    }
    assert_eq!(closed, count, "closed {closed} of {count}");
    let first = earliest.unwrap() - started;
    assert!(
        first >= header_timeout - Duration::from_millis(50),
        "first closed after {first:?}"
    );
    println!(
        "{count} unfinished heads: normal request in {took:?}, all closed (first after {first:?})"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let served = serve_with(|c| {
        c.client_idle_timeout = 1;
        c.client_header_timeout = 30;
    })
    .await;
    let mut socket = TcpStream::connect(served.addr).await.unwrap();
    socket.write_all(LIVE).await.unwrap();
    assert!(read_response(&mut socket).await.contains(" 200 "));
    // Kept alive: a second request on the same connection is served.
    socket.write_all(LIVE).await.unwrap();
    assert!(read_response(&mut socket).await.contains(" 200 "));
    let idle_since = Instant::now();
    let closed = closed_within(&mut socket, Duration::from_secs(5))
        .await
        .expect("the idle connection is closed");
    let after = closed - idle_since;
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn a_request_longer_than_the_idle_timeout_is_not_cut() {
    let served = serve_with(|c| c.client_idle_timeout = 1).await;
    served
        .mock
        .set_fault(Some(Fault::Delay(Duration::from_millis(1_800))));
    let body = crate::common::simple_chat(false).to_string();
    let mut socket = TcpStream::connect(served.addr).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: proxy\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    assert!(read_response(&mut socket).await.contains(" 200 "));
}

#[tokio::test]
async fn past_max_connections_new_ones_are_closed_and_held_ones_served() {
    let served = serve_with(|c| c.max_connections = Some(4)).await;
    // A metrics reader of its own would take a place: the counter is read through a held one.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut socket = TcpStream::connect(served.addr).await.unwrap();
        socket.write_all(LIVE).await.unwrap();
        assert!(read_response(&mut socket).await.contains(" 200 "));
        held.push(socket);
    }
    #[cfg(feature = "prometheus")]
    let before = metrics_through(&mut held[0]).await;
    let mut refused = 0;
    for _ in 0..10 {
        let mut extra = TcpStream::connect(served.addr).await.unwrap();
        let _ = extra.write_all(LIVE).await;
        if closed_within(&mut extra, Duration::from_secs(2))
            .await
            .is_some()
        {
            refused += 1;
        }
    }
    assert_eq!(refused, 10, "every connection past the cap is closed");
    for socket in &mut held {
        socket.write_all(LIVE).await.unwrap();
        assert!(read_response(socket).await.contains(" 200 "));
    }
    #[cfg(feature = "prometheus")]
    {
        let after = metrics_through(&mut held[1]).await;
        assert!(after >= before + 10.0, "before {before}, after {after}");
    }
}

/// Reads `hunyuan_proxy_connections_rejected_total` over an open connection.
#[cfg(feature = "prometheus")]
async fn metrics_through(socket: &mut TcpStream) -> f64 {
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: proxy\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length = head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap())
        });
        if length.is_some_and(|length| body.len() >= length) {
            return body
                .lines()
                .filter(|l| l.starts_with("hunyuan_proxy_connections_rejected_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
        }
    }
}

#[tokio::test]
async fn http2_streams_past_the_cap_wait_their_turn() {
    let served = serve_with(|c| {
        c.http2_max_concurrent_streams = 3;
        c.upstream_concurrency = 20;
    })
    .await;
    served
        .mock
        .set_fault(Some(Fault::Delay(Duration::from_millis(400))));
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("http://{}/v1/chat/completions", served.addr);
    let body = crate::common::simple_chat(false);
    let started = Instant::now();
    let requests = (0..9).map(|_| client.post(&url).json(&body).send());
    let responses = futures_util::future::join_all(requests).await;
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), 200);
    }
    assert_eq!(served.mock.max_in_flight(), 3, "at most 3 streams at once");
    assert!(
        started.elapsed() >= Duration::from_millis(1_150),
        "{:?}",
        started.elapsed()
    );
}

/// One HTTP/2 frame: 9-byte header and payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut frame = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The error code of the first GOAWAY frame in `bytes` (frames as the server sent them).
fn goaway_code(bytes: &[u8]) -> Option<u32> {
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = u32::from_be_bytes([0, bytes[at], bytes[at + 1], bytes[at + 2]]) as usize;
        let kind = bytes[at + 3];
        let payload = bytes.get(at + 9..at + 9 + len)?;
        if kind == 0x7 && len >= 8 {
            return Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
        }
        at += 9 + len;
    }
    None
}

#[tokio::test]
async fn http2_rapid_reset_closes_the_connection_and_others_are_served() {
    let served = serve_with(|_| {}).await;
    let mut socket = TcpStream::connect(served.addr).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(0x4, 0, 0, &[])); // SETTINGS
                                          // GET /health/live, literal header fields without indexing.
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    block.push(0x04);
    block.push(12);
    block.extend_from_slice(b"/health/live");
    block.push(0x01);
    block.push(5);
    block.extend_from_slice(b"proxy");
    // 200 streams opened and cancelled at once (CVE-2023-44487).
    for i in 0..200u32 {
        let stream = 2 * i + 1;
        out.extend(h2_frame(0x1, 0x4 | 0x1, stream, &block)); // HEADERS, END_HEADERS|END_STREAM
        out.extend(h2_frame(0x3, 0, stream, &0x8u32.to_be_bytes())); // RST_STREAM CANCEL
    }
    let _ = socket.write_all(&out).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server closes the abusive connection");
    assert_eq!(goaway_code(&got), Some(0xb), "GOAWAY ENHANCE_YOUR_CALM");

    // Everyone else is still served, over HTTP/2 too.
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .get(format!("http://{}/health/live", served.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn http2_header_lists_past_the_cap_are_refused() {
    let served = serve_with(|c| c.http2_max_header_list_size = 8 * 1024).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("http://{}/health/live", served.addr);
    let small = client
        .get(&url)
        .header("x-pad", "a".repeat(4 * 1024))
        .send()
        .await;
    assert_eq!(small.unwrap().status(), 200);
    let big = client
        .get(&url)
        .header("x-pad", "a".repeat(16 * 1024))
        .send()
        .await;
    match big {
        Ok(response) => assert_eq!(response.status(), 431),
        Err(err) => assert!(!err.is_timeout(), "{err}"),
    }
    // The connection's other streams go on.
    let after = client.get(&url).send().await.unwrap();
    assert_eq!(after.status(), 200);
}

/// The real binary with a config file using this keys: a key pool with a refused key,
/// a fallback model, a short `client_header_timeout` and a small `max_connections`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_applies_the_key_pool_fallbacks_and_connection_guards() {
    use hunyuan_proxy::mock::MockConfig;
    let mock = MockHunyuan::start_with(
        MockConfig::default()
            .with_key_fault("bin-bad-key-401", Fault::Status(401))
            .with_model_fault("hunyuan-turbos-latest", Fault::ServerError),
    )
    .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("hunyuan-proxy-guards-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"hunyuan\"\napi_base = \"{}\"\napi_key = \"bin-bad-key-401\"\napi_keys = [\"bin-good-key-ok\"]\n\
             upstream_retries = 0\nclient_header_timeout = 1\nmax_connections = 3\n\
             [fallback_models]\n\"hunyuan-turbos-latest\" = [\"hunyuan-2.0-instruct-20251111\"]\n",
            mock.base_url()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hunyuan-proxy"))
        .arg("--config")
        .arg(&config)
        .args(["--port", &port.to_string()])
        .env_remove("HUNYUAN_API_KEY")
        .env_remove("HUNYUAN_API_BASE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // No pooled connections: each request's connection is closed after it.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client
        .get(format!("http://{addr}/health/live"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the binary did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = client
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&crate::common::simple_chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-hunyuan-proxy-model"],
        "hunyuan-2.0-instruct-20251111"
    );
    let bad = mock
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .filter(|r| {
            r.headers
                .get("authorization")
                .is_some_and(|v| v == "Bearer bin-bad-key-401")
        })
        .count();
    assert_eq!(bad, 1, "the refused key is asked once, then cooled down");

    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(b"GET /health/live HTTP/1.1\r\nho")
            .await
            .unwrap();
        slow.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_millis(500))
            .await
            .is_some(),
        "the connection past max_connections is closed at once"
    );
    for socket in &mut slow {
        assert!(
            closed_within(socket, Duration::from_secs(3))
                .await
                .is_some(),
            "an unfinished head is closed after client_header_timeout"
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let live = client
        .get(format!("http://{addr}/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "hunyuan-proxy did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn http2_control_frames_between_requests_are_idle_time_not_a_slow_head() {
    let served = serve_with(|c| {
        c.client_header_timeout = 1;
        c.client_idle_timeout = 3;
    })
    .await;
    let mut socket = TcpStream::connect(served.addr).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(0x4, 0, 0, &[])); // SETTINGS
    let mut block = vec![0x82, 0x86, 0x04, 12];
    block.extend_from_slice(b"/health/live");
    block.extend_from_slice(&[0x01, 5]);
    block.extend_from_slice(b"proxy");
    out.extend(h2_frame(0x1, 0x5, 1, &block)); // HEADERS, END_HEADERS|END_STREAM
    socket.write_all(&out).await.unwrap();
    // Read until the response's DATA frame with END_STREAM.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let answered = loop {
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf))
            .await
            .expect("the server answers")
            .unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
        let mut at = 0;
        let mut ended = false;
        while at + 9 <= got.len() {
            let len = u32::from_be_bytes([0, got[at], got[at + 1], got[at + 2]]) as usize;
            if at + 9 + len > got.len() {
                break;
            }
            if got[at + 3] == 0x0 && got[at + 4] & 0x1 == 0x1 {
                ended = true;
            }
            at += 9 + len;
        }
        if ended {
            break Instant::now();
        }
    };
    // A ping now and then, as clients send: the connection is idle, not reading a head.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        socket
            .write_all(&h2_frame(0x6, 0, 0, &[0; 8]))
            .await
            .unwrap();
    }
    let closed = closed_within(&mut socket, Duration::from_secs(6))
        .await
        .expect("the idle HTTP/2 connection is closed");
    let after = closed - answered;
    assert!(
        after >= Duration::from_millis(2_800),
        "closed {after:?} after the answer: the header timeout (1 s) cut an idle connection"
    );
}
