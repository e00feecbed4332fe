//! Shared test harness: the mock Hunyuan and the proxy, both on 127.0.0.1:0, and a way to run
//! a test in a process of its own.
#![allow(dead_code)]

use hunyuan_proxy::config::{Config, Preset, Secret};
use hunyuan_proxy::mock::MockHunyuan;
use hunyuan_proxy::Proxy;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// The upstream key the proxy is configured with in tests.
pub const UPSTREAM_KEY: &str = "upstream-test-key";
/// The admin token the proxy is configured with in tests.
pub const ADMIN_TOKEN: &str = "admin-test-token";

/// A running proxy in front of a running mock.
pub struct TestProxy {
    pub mock: MockHunyuan,
    pub proxy: Proxy,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
}

impl TestProxy {
    /// The default test config pointed at `mock`: the `hunyuan` preset, whose rules the
    /// mock's default (legacy) mode enforces.
    pub fn config_for(mock: &MockHunyuan) -> Config {
        Config {
            upstream: Preset::Hunyuan,
            api_base: Some(mock.base_url()),
            api_key: Some(Secret::new(UPSTREAM_KEY)),
            admin_token: Some(Secret::new(ADMIN_TOKEN)),
            ..Config::default()
        }
    }

    /// Starts a mock and a proxy with the default test config.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a mock and a proxy whose config `edit` may change.
    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> Self {
        let mock = MockHunyuan::start().await;
        let mut config = Self::config_for(&mock);
        edit(&mut config);
        Self::start_on(mock, config).await
    }

    /// Starts a proxy with `config` in front of `mock`.
    pub async fn start_on(mock: MockHunyuan, config: Config) -> Self {
        let proxy = Proxy::new(config).expect("valid test config");
        // Served the way the example server serves it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = proxy.clone();
        tokio::spawn(async move {
            server
                .serve(listener, std::future::pending())
                .await
                .unwrap()
        });
        TestProxy {
            mock,
            proxy,
            addr,
            client: reqwest::Client::new(),
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs JSON to `path`.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("proxy answers")
    }

    /// POSTs raw bytes with a content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("proxy answers")
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("proxy answers")
    }
}

/// Serves `router` on 127.0.0.1:0 and returns its address.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// A two-message chat request for a text model.
pub fn simple_chat(stream: bool) -> Value {
    json!({
        "model": "hunyuan-turbos-latest",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello there"}
        ],
        "stream": stream,
        "temperature": 0.5,
        "enable_enhancement": false
    })
}

/// Asserts an OpenAI error envelope and returns it.
pub async fn expect_envelope(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let body: Value = response.json().await.expect("error body is JSON");
    let error = body
        .get("error")
        .unwrap_or_else(|| panic!("no `error` in {body}"));
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(error["type"].is_string(), "{body}");
    assert!(error.get("param").is_some(), "{body}");
    assert!(error.get("code").is_some(), "{body}");
    body
}

/// Reads an SSE response into its `data:` payloads.
pub async fn sse_data(response: reqwest::Response) -> Vec<String> {
    let text = response.text().await.unwrap();
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// The environment variable that names the one test a child process of [`run_alone`] runs.
const ALONE: &str = "HUNYUAN_PROXY_IT_ALONE";

/// Runs the test `name` of `module` (`module_path!()`) in a child process of this test binary
/// and fails if it fails there, for a test that needs the process-wide state (the Prometheus
/// recorder) to itself. Returns `true` in that child, where the caller runs its body, and
/// `false` in the parent, where the caller returns.
pub async fn run_alone(module: &str, name: &str) -> bool {
    // `it::embed_axum` → `embed_axum::name`, the test's name in this binary.
    let module = module.split_once("::").map_or("", |(_, rest)| rest);
    let test = format!("{module}::{name}");
    if std::env::var_os(ALONE).is_some_and(|v| v == test.as_str()) {
        return true;
    }
    let output = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([test.as_str(), "--exact", "--test-threads=1"])
        .env(ALONE, &test)
        .output()
        .await
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "`{test}` failed in its own process ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    false
}

/// Runs `tests/clients/<script>` with `base_url` as its argument and asserts it succeeded
/// and printed `ok` (each script drives a real SDK against the proxy and checks what it got).
/// Returns `false`, after saying so, when `python3 -c <probe>` fails: the SDK is missing
/// (`.ci/run` installs it with pip where it can).
pub async fn run_python_client(probe: &str, package: &str, script: &str, base_url: &str) -> bool {
    let importable = tokio::process::Command::new("python3")
        .args(["-c", probe])
        .env("OPENAI_API_KEY", "sk-any")
        .output()
        .await;
    if !matches!(&importable, Ok(out) if out.status.success()) {
        println!("skipped: python3 with the `{package}` package is not available (pip install {package})");
        return false;
    }
    let script = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new("python3")
            .arg(&script)
            .arg(base_url)
            .output(),
    )
    .await
    .expect("the client script finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stdout.trim(), "ok");
    true
}
