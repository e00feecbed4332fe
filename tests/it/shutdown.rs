//! The example server shuts down gracefully: SIGTERM during a slow request lets that request
//! complete, then the process exits 0. Runs the real `examples/proxy` binary, which
//! `cargo test` builds alongside the tests.

use hunyuan_proxy::mock::{Fault, MockHunyuan};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn example_binary() -> PathBuf {
    // target/debug/deps/it-<hash> → target/debug/examples/proxy
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join("examples").join("proxy");
    assert!(
        path.exists(),
        "{} is missing: run `cargo test` for all targets so the example is built",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_request_finish_then_exits_zero() {
    let mock = MockHunyuan::start().await;
    mock.set_fault(Some(Fault::Delay(Duration::from_secs(2))));
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("hunyuan-proxy-shutdown-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"hunyuan\"\napi_base = \"{}\"\napi_key = \"test-key-123\"\nshutdown_timeout = 10\n",
            mock.base_url()
        ),
    )
    .unwrap();
    let mut child = Command::new(example_binary())
        .arg("--config")
        .arg(&config)
        .arg("--port")
        .arg(port.to_string())
        .env_remove("HUNYUAN_API_KEY")
        .env_remove("HUNYUAN_API_BASE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = client.get(format!("{base}/health/live")).send().await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the proxy did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let slow = tokio::spawn({
        let client = client.clone();
        let url = format!("{base}/v1/chat/completions");
        async move {
            client
                .post(url)
                .json(&crate::common::simple_chat(false))
                .send()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());

    let response = slow.await.unwrap();
    assert_eq!(response.status(), 200, "the in-flight request was cut");
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the proxy did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    let _ = std::fs::remove_dir_all(dir);
}
