//! The `hunyuan-proxy` binary as a user runs it: `hunyuan-proxy --demo` answers a chat with no
//! key and no config, a bad config file is refused with exit code 2 and the key named, and both runtimes serve.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_hunyuan-proxy");

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_answers_a_chat_and_stops_on_sigterm() {
    let port = free_port();
    let mut child = Command::new(BINARY)
        .args(["--demo", "--port", &port.to_string()])
        .env_remove("HUNYUAN_API_KEY")
        .env_remove("HUNYUAN_API_BASE")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let sent = client
            .post(format!("{base}/v1/chat/completions"))
            .json(&crate::common::simple_chat(false))
            .send()
            .await;
        if let Ok(response) = sent {
            assert_eq!(response.status(), 200);
            break response.json::<serde_json::Value>().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "hunyuan-proxy --demo did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer["object"], "chat.completion");
    assert!(answer["choices"][0]["message"]["content"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    #[cfg(unix)]
    {
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
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
    #[cfg(not(unix))]
    child.kill().unwrap();
}

#[test]
fn a_bad_config_file_exits_2_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("hunyuan-proxy-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bad.toml");
    std::fs::write(&config, "port = 0\n").unwrap();
    let output = Command::new(BINARY)
        .arg("--config")
        .arg(&config)
        .env_remove("HUNYUAN_API_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`port`"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_runtimes_serve_and_bad_worker_counts_are_refused() {
    for flags in [
        &["--runtime", "current-thread"][..],
        &["--runtime", "multi-thread", "--worker-threads", "2"][..],
    ] {
        let port = free_port();
        let mut child = Command::new(BINARY)
            .args(["--demo", "--port", &port.to_string()])
            .args(flags)
            .env_remove("HUNYUAN_API_KEY")
            .env_remove("HUNYUAN_API_BASE")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            let sent = client
                .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
                .json(&crate::common::simple_chat(true))
                .send()
                .await;
            if let Ok(response) = sent {
                let status = response.status();
                let body = response.text().await.unwrap();
                assert!(body.contains("data: [DONE]"), "{flags:?}: {body}");
                break status;
            }
            assert!(Instant::now() < deadline, "{flags:?}: did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status, 200, "{flags:?}");
        let _ = child.kill();
        let _ = child.wait();
    }
    let output = Command::new(BINARY)
        .args(["--demo", "--worker-threads", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--worker-threads"));
    // Workers with the current-thread runtime would be ignored: refused, naming both.
    let output = Command::new(BINARY)
        .args([
            "--demo",
            "--runtime",
            "current-thread",
            "--worker-threads",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--worker-threads") && stderr.contains("multi-thread"),
        "{stderr}"
    );
}
