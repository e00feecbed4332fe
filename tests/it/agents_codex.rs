//! Codex CLI on the Responses route.
//!
//! - Replays of request bodies recorded from Codex 0.169.0 (`fixtures/codex/*.json`: its first
//!   turn, the turn after an `exec_command` call, the turn after a `view_image` call): each is
//!   answered as a well-formed stream, and every upstream request passes the strict mock's
//!   rules.
//! - The real `codex exec` against the proxy and the mock, when Codex is installed
//!   (`HUNYUAN_PROXY_CODEX_BIN`, else `/work/agents-codex/node_modules/.bin/codex`; `.ci/run`
//!   installs it best-effort). Without it these tests print why they skip. Each run is bounded
//!   (120 s) and gets a temporary `HOME` and `CODEX_HOME`.

use crate::common::TestProxy;
use hunyuan_proxy::mock::{validate, MockHunyuan, MockPolicy};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const PLAIN_FIRST: &str = include_str!("fixtures/codex/plain_first.json");
const EXEC_FIRST: &str = include_str!("fixtures/codex/exec_command_first.json");
const EXEC_OUTPUT: &str = include_str!("fixtures/codex/exec_command_output.json");
const VIEW_OUTPUT: &str = include_str!("fixtures/codex/view_image_output.json");

/// The `(event, data)` pairs of a Responses stream.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let kind = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((kind.to_owned(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

/// Every chat request the mock received passes its strict rules.
fn all_accepted(t: &TestProxy) {
    let sent = t.mock.chat_requests();
    assert!(!sent.is_empty(), "the upstream was called");
    for body in sent {
        if let Err(rejection) = validate(&body, MockPolicy::Legacy) {
            panic!("the strict mock refuses an upstream request: {rejection}\n{body:#}");
        }
    }
}

fn vision_calls(t: &TestProxy) -> usize {
    t.mock
        .chat_requests()
        .iter()
        .filter(|r| r["model"].as_str().is_some_and(|m| m.contains("vision")))
        .count()
}

fn last_text_call(t: &TestProxy) -> Value {
    t.mock
        .chat_requests()
        .into_iter()
        .rfind(|r| !r["model"].as_str().unwrap_or("").contains("vision"))
        .expect("a text-model call")
}

/// Replays a recorded Codex body and returns the final response object.
async fn replay(t: &TestProxy, fixture: &str) -> Value {
    let body: Value = serde_json::from_str(fixture).unwrap();
    assert_eq!(body["stream"], true, "Codex streams");
    let response = t.post("/v1/responses", &body).await;
    assert_eq!(response.status(), 200);
    let dropped = response.headers()["x-hunyuan-proxy-dropped"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(dropped.contains("tool:web_search"), "{dropped}");
    let events = events(&response.text().await.unwrap());
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64);
    }
    let (last, data) = events.last().expect("events");
    assert_eq!(last, "response.completed", "{data}");
    all_accepted(t);
    data["response"].clone()
}

#[tokio::test]
async fn recorded_codex_first_turns_are_accepted() {
    for fixture in [PLAIN_FIRST, EXEC_FIRST] {
        let t = TestProxy::start().await;
        let response = replay(&t, fixture).await;
        assert_eq!(response["model"], "hunyuan-2.0-thinking-20251109");
        let sent = last_text_call(&t);
        // Two developer messages became the one system message.
        let messages = sent["messages"].as_array().unwrap();
        assert_eq!(messages[0]["role"], "system");
        assert_eq!(messages.iter().filter(|m| m["role"] == "system").count(), 1);
        // The namespace's tools went upstream flattened, web_search did not.
        let names: Vec<&str> = sent["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["function"]["name"].as_str())
            .collect();
        assert!(names.contains(&"exec_command"), "{names:?}");
        assert!(
            names.iter().any(|n| n.starts_with("multi_agent_v1")),
            "{names:?}"
        );
    }
}

#[tokio::test]
async fn a_recorded_exec_command_turn_sends_the_output_back() {
    let t = TestProxy::start().await;
    let response = replay(&t, EXEC_OUTPUT).await;
    assert_eq!(response["status"], "completed");
    let sent = last_text_call(&t);
    let messages = sent["messages"].as_array().unwrap();
    let tool = messages.last().unwrap();
    assert_eq!(tool["role"], "tool");
    assert!(
        tool["content"].to_string().contains("Output:\\nhi"),
        "{tool}"
    );
    let call = &messages[messages.len() - 2]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "exec_command");
    assert_eq!(call["id"], tool["tool_call_id"]);
}

#[tokio::test]
async fn a_recorded_view_image_turn_makes_one_vision_call() {
    let t = TestProxy::start().await;
    replay(&t, VIEW_OUTPUT).await;
    assert_eq!(vision_calls(&t), 1);
    let sent = last_text_call(&t).to_string();
    assert!(sent.contains("Description of image"), "{sent}");
    assert!(
        !sent.contains("data:image"),
        "no image reaches the text model"
    );
}

/// The Codex binary to run, or `None` (and why) when it is not installed.
fn codex_bin() -> Result<PathBuf, String> {
    let path = std::env::var_os("HUNYUAN_PROXY_CODEX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/agents-codex/node_modules/.bin/codex"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "skipped: Codex CLI not found at {} (set HUNYUAN_PROXY_CODEX_BIN, or `npm install \
             @openai/codex@0.171.0`)",
            path.display()
        ))
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hunyuan-proxy-codex-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one `codex exec` run printed.
struct Run {
    stdout: String,
    stderr: String,
}

/// Runs `codex exec prompt` in `work` against `t`, with a temporary HOME and CODEX_HOME whose
/// `config.toml` names the proxy as a `responses` provider; bounded to 120 s.
async fn codex_exec(bin: &Path, t: &TestProxy, work: &Path, prompt: &str) -> Run {
    let home = TempDir::new("home");
    let codex_home = TempDir::new("codex-home");
    let config = format!(
        "model = \"hunyuan-2.0-thinking-20251109\"\nmodel_provider = \"hy\"\n\n\
         [model_providers.hy]\nname = \"hunyuan-proxy\"\nbase_url = \"{}\"\n\
         env_key = \"HY_KEY\"\nwire_api = \"responses\"\n",
        t.url("/v1")
    );
    std::fs::write(codex_home.0.join("config.toml"), config).unwrap();
    let child = tokio::process::Command::new(bin)
        .args([
            "exec",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            prompt,
        ])
        .current_dir(work)
        .env("HOME", &home.0)
        .env("CODEX_HOME", &codex_home.0)
        .env("HY_KEY", "sk-any")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .expect("codex exec finishes within 120 s")
        .expect("codex starts");
    let run = Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        out.status.success(),
        "codex exec failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        run.stdout,
        run.stderr
    );
    run
}

/// Whether the mock calls the tool the last user text names, with `P=<value>` arguments (the
/// rule the tool-loop scenarios need); older mocks always call the first tool.
async fn mock_calls_the_named_tool() -> bool {
    let mock = MockHunyuan::start().await;
    let tool = |name: &str| {
        json!({"type": "function", "function": {"name": name, "description": name,
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                           "required": ["path"]}}})
    };
    let body = json!({"model": "hunyuan-2.0-thinking-20251109",
        "messages": [{"role": "user", "content": "Use second_tool with path=/x.png"}],
        "tools": [tool("first_tool"), tool("second_tool")]});
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth("any")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let call = &answer["choices"][0]["message"]["tool_calls"][0]["function"];
    call["name"] == "second_tool"
        && call["arguments"]
            .as_str()
            .is_some_and(|a| a.contains("\"/x.png\""))
}

#[tokio::test]
async fn codex_exec_gives_a_plain_answer() {
    let bin = match codex_bin() {
        Ok(bin) => bin,
        Err(why) => return println!("{why}"),
    };
    let t = TestProxy::start().await;
    let work = TempDir::new("work");
    let run = codex_exec(&bin, &t, &work.0, "say hi").await;
    assert!(
        run.stdout.contains("Echo:"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    all_accepted(&t);
}

#[tokio::test]
async fn codex_exec_runs_an_exec_command_tool_loop() {
    let bin = match codex_bin() {
        Ok(bin) => bin,
        Err(why) => return println!("{why}"),
    };
    if !mock_calls_the_named_tool().await {
        return println!("skipped: this mock does not call the tool the prompt names yet");
    }
    let t = TestProxy::start().await;
    let work = TempDir::new("work");
    let marker = "codex_loop_marker_7f3a";
    std::fs::write(work.0.join(format!("{marker}.txt")), "x").unwrap();
    let run = codex_exec(&bin, &t, &work.0, "Use exec_command with cmd=ls").await;
    // The command ran in the work dir and its output went back to the model.
    let sent = last_text_call(&t);
    let tool = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|m| m["role"] == "tool")
        .cloned()
        .expect("a tool message went upstream");
    assert!(tool["content"].to_string().contains(marker), "{tool}");
    assert!(!run.stdout.trim().is_empty(), "a final answer");
    all_accepted(&t);
}

/// A tiny valid PNG (32×24, RGB).
fn png() -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let (w, h) = (32u32, 24u32);
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0);
        for x in 0..w {
            raw.extend_from_slice(&[(x * 7) as u8, (y * 9) as u8, 128]);
        }
    }
    // Stored (uncompressed) deflate blocks inside a zlib stream.
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + byte as u32) % 65521;
        b = (b + a) % 65521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[tokio::test]
async fn codex_exec_view_image_reaches_the_text_model_as_a_description() {
    let bin = match codex_bin() {
        Ok(bin) => bin,
        Err(why) => return println!("{why}"),
    };
    if !mock_calls_the_named_tool().await {
        return println!("skipped: this mock does not call the tool the prompt names yet");
    }
    let t = TestProxy::start().await;
    let work = TempDir::new("work");
    let image = work.0.join("shot.png");
    std::fs::write(&image, png()).unwrap();
    let prompt = format!("Use view_image with path={}", image.display());
    codex_exec(&bin, &t, &work.0, &prompt).await;
    assert_eq!(vision_calls(&t), 1);
    let sent = last_text_call(&t).to_string();
    assert!(sent.contains("Description of image"), "{sent}");
    assert!(
        !sent.contains("data:image"),
        "no image reaches the text model"
    );
    all_accepted(&t);
}
