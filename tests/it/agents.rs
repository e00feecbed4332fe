//! Real coding agents, end to end, through the proxy to the strict mock Hunyuan.
//!
//! Each agent runs only when it is installed (`.ci/run` installs them best effort, outside
//! the checkout, and exports where); otherwise its test prints a skip line and passes. Every
//! run is bounded (120 s), gets a fresh temporary `HOME` and working directory, and the mock
//! steers the model's tool calls by the prompt (`Use <tool> with name=value`, `Use no tool`).

use crate::common::*;
use hunyuan_proxy::config::Secret;
use hunyuan_proxy::mock::{validate, MockPolicy};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long one agent run may take.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "hunyuan-proxy-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The agent's executable: `env_var` when set, else the first of `fallbacks` that exists.
fn agent_bin(env_var: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path)).filter(|p| p.exists());
    }
    fallbacks.iter().map(PathBuf::from).find(|p| p.exists())
}

/// A command with a clean environment (no credentials or settings of the machine leak in),
/// `HOME` set to `home`, run in `cwd`, killed if the test drops it.
fn clean_command(bin: &Path, home: &Path, cwd: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(bin);
    command
        .env_clear()
        .env("HOME", home)
        .env("TMPDIR", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SHELL", "/bin/bash")
        .env("LANG", "C.UTF-8")
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs `command` within [`RUN_LIMIT`]: its stdout and stderr, after it exited with 0.
async fn run_bounded(mut command: tokio::process::Command, what: &str) -> (String, String) {
    let output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {RUN_LIMIT:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{what}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

/// Every request the mock received since the last clear passes its strict rules (the mock
/// answers 400 to a rule break); returns them.
fn accepted_upstream_requests(t: &TestProxy, what: &str) -> Vec<Value> {
    let sent = t.mock.chat_requests();
    assert!(!sent.is_empty(), "{what}: nothing reached the upstream");
    for body in &sent {
        if let Err(rejection) = validate(body, MockPolicy::Legacy) {
            panic!("{what}: the mock refused {body}: {rejection:?}");
        }
    }
    t.mock.clear_requests();
    sent
}

/// Claude Code 2.1.x, headless (`claude -p`), through `/v1/messages` with a client key: a
/// plain answer, a Bash tool loop, and a Read of a PNG whose description reaches the text
/// model. Set `HUNYUAN_PROXY_CLAUDE_BIN` to the `claude` executable (`npm install
/// @anthropic-ai/claude-code@2.1.337`).
#[tokio::test]
async fn claude_code_runs_headless_through_the_proxy() {
    let Some(claude) = agent_bin(
        "HUNYUAN_PROXY_CLAUDE_BIN",
        &["/work/agents/node_modules/.bin/claude"],
    ) else {
        println!(
            "skipped: Claude Code is not installed (set HUNYUAN_PROXY_CLAUDE_BIN to its `claude`)"
        );
        return;
    };
    const MODEL: &str = "hunyuan-2.0-thinking-20251109";
    const KEY: &str = "sk-claude-e2e";
    let t = TestProxy::start_with(|c| c.client_api_keys = vec![Secret::new(KEY)]).await;
    let base_url = t.url("");
    let work = TempDir::new("claude-work");
    let run = |prompt: &str| {
        let home = TempDir::new("claude-home");
        let mut command = clean_command(&claude, &home.0, &work.0);
        command
            .env("ANTHROPIC_BASE_URL", &base_url)
            .env("ANTHROPIC_API_KEY", KEY)
            .env("ANTHROPIC_MODEL", MODEL)
            .env("ANTHROPIC_SMALL_FAST_MODEL", MODEL)
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .args(["-p", prompt, "--output-format", "json"])
            .args(["--allowedTools", "Bash,Read", "--max-turns", "4"]);
        let what = format!("claude -p {prompt:?}");
        async move {
            let started = Instant::now();
            let (stdout, stderr) = run_bounded(command, &what).await;
            drop(home);
            let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
                panic!("{what}: not one JSON result ({e}):\n{stdout}\nstderr:\n{stderr}")
            });
            assert_eq!(result["is_error"], false, "{what}: {result}");
            assert_eq!(result["subtype"], "success", "{what}: {result}");
            println!("{what}: {:?}", started.elapsed());
            result["result"].as_str().unwrap_or_default().to_owned()
        }
    };

    // 1. A plain answer.
    let answer = run("say hi. Use no tool.").await;
    assert!(answer.starts_with("Echo: "), "{answer}");
    assert!(answer.contains("say hi. Use no tool."), "{answer}");
    let sent = accepted_upstream_requests(&t, "plain");
    assert!(sent.iter().all(|r| r["model"] == MODEL));

    // 2. A Bash tool loop: the output (not the command) comes back, so Bash really ran.
    let answer = run("Use Bash with command=echo hunyuan-$((6*7))").await;
    assert_eq!(answer, "Echo: hunyuan-42");
    let sent = accepted_upstream_requests(&t, "bash");
    let asked = sent.iter().flat_map(|r| r["messages"].as_array()).flatten();
    let call = asked
        .filter_map(|m| m["tool_calls"][0]["function"].as_object())
        .find(|f| f["name"] == "Bash")
        .expect("the model's Bash call went back upstream");
    assert_eq!(call["arguments"], r#"{"command":"echo hunyuan-$((6*7))"}"#);
    let last = sent.last().unwrap()["messages"].as_array().unwrap().clone();
    let result = last.last().unwrap();
    assert_eq!(result["role"], "tool");
    assert_eq!(result["content"], "hunyuan-42");

    // 3. A Read of a PNG: one vision call, and its description reaches the text model.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/fixtures/claude_code/png_result.json"
    );
    let recorded: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    let data = recorded["messages"].as_array().unwrap().last().unwrap()["content"][0]["content"][0]
        ["source"]["data"]
        .as_str()
        .unwrap()
        .to_owned();
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    let shot = work.0.join("shot.png");
    std::fs::write(&shot, &png).unwrap();
    let answer = run(&format!("Use Read with file_path={}", shot.display())).await;
    let sent = accepted_upstream_requests(&t, "png");
    let vision: Vec<&Value> = sent
        .iter()
        .filter(|r| r["model"].as_str().is_some_and(|m| m.contains("vision")))
        .collect();
    assert_eq!(vision.len(), 1, "exactly one vision call: {sent:?}");
    let tool = sent
        .iter()
        .filter(|r| r["model"] == MODEL)
        .flat_map(|r| r["messages"].as_array())
        .flatten()
        .find(|m| m["role"] == "tool")
        .expect("the Read result went to the text model");
    let tool = tool["content"].to_string();
    assert!(tool.contains("Description of image "), "{tool}");
    assert!(!tool.contains("base64"), "{tool}");
    assert!(answer.contains("Description of image "), "{answer}");
    assert!(
        answer.contains(&format!("picture of {} bytes", png.len())),
        "{answer}"
    );
}
