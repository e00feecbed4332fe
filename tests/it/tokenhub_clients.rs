//! Every client on TokenHub's models, against the mock's TokenHub mode with a config that sets
//! only `api_key` and `api_base`: the OpenAI SDK (chat), the Anthropic SDK, the Responses API,
//! the real Claude Code and the real Codex. Each scenario asserts what the client got and that
//! the mock rejected none of the requests the proxy sent it.
//!
//! The SDK scenarios run `tests/clients/tokenhub_*.py` (skipped with a message without
//! `python3` and the SDK); the agent scenarios run when `HUNYUAN_PROXY_CLAUDE_BIN` /
//! `HUNYUAN_PROXY_CODEX_BIN` name the agents (`.ci/run` sets them) and print a skip line
//! otherwise. Each run is bounded.

use crate::common::TestProxy;
use hunyuan_proxy::config::{Config, Secret};
use hunyuan_proxy::mock::{validate_tokenhub, MockConfig, MockHunyuan, SAW_NO_IMAGE};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one client run may take.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// The proxy with a config that sets only `api_key` and `api_base` (the mock), in front of a
/// TokenHub-mode mock made from `mock`.
async fn only_a_key(mock: MockConfig) -> TestProxy {
    let mock = MockHunyuan::start_with(mock).await;
    let config = Config {
        api_key: Some(Secret::new("sk-tokenhub-test")),
        api_base: Some(mock.base_url()),
        ..Config::default()
    };
    TestProxy::start_on(mock, config).await
}

/// Every chat request the mock got passes TokenHub's per-model rules, and none is for a model
/// in `refused` (models the mock answers 402); returns them.
fn none_rejected(t: &TestProxy, what: &str) -> Vec<Value> {
    let sent = t.mock.chat_requests();
    assert!(!sent.is_empty(), "{what}: nothing reached the upstream");
    let disabled = t
        .mock
        .config()
        .tokenhub
        .as_ref()
        .map(|m| m.disabled_models.clone())
        .unwrap_or_default();
    for body in &sent {
        if disabled.iter().any(|m| body["model"] == m.as_str()) {
            continue;
        }
        if let Err(rejection) = validate_tokenhub(body) {
            panic!("{what}: the mock refused {body:#}: {rejection}");
        }
    }
    sent
}

fn for_model<'a>(sent: &'a [Value], model: &str) -> Vec<&'a Value> {
    sent.iter().filter(|r| r["model"] == model).collect()
}

/// Whether a message of `body` carries an image part.
fn has_image(body: &Value) -> bool {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .any(|p| p["type"] == "image_url")
}

/// Runs `tests/clients/<script> <base_url> <args…>`; `false` (after saying so) when python3
/// cannot import `package`.
async fn python(package: &str, script: &str, base_url: &str, args: &[&str]) -> bool {
    let importable = tokio::process::Command::new("python3")
        .args(["-c", &format!("import {package}")])
        .output()
        .await;
    if !matches!(&importable, Ok(out) if out.status.success()) {
        println!("skipped: python3 with the `{package}` package is not available");
        return false;
    }
    let dir = format!("{}/tests/clients", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::time::timeout(
        RUN_LIMIT,
        tokio::process::Command::new("python3")
            .arg(format!("{dir}/{script}"))
            .arg(base_url)
            .args(args)
            .env("PYTHONPATH", &dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the client script finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "{script} {args:?}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    true
}

#[tokio::test]
async fn openai_sdk_image_native_on_hy4_and_described_for_hy3() {
    let t = only_a_key(MockConfig::tokenhub()).await;
    if !python("openai", "tokenhub_openai.py", &t.url(""), &["images"]).await {
        return;
    }
    let sent = none_rejected(&t, "images");
    let hy4 = for_model(&sent, "hy4");
    assert_eq!(hy4.len(), 1, "{sent:#?}");
    assert!(has_image(hy4[0]), "hy4 got the image itself");
    // hy4-flash is asked twice: natively by the client, and once as the describer for hy3.
    let flash = for_model(&sent, "hy4-flash");
    assert_eq!(flash.len(), 2, "{sent:#?}");
    assert!(flash.iter().all(|r| has_image(r)));
    let described = flash
        .iter()
        .filter(|r| r.to_string().contains(DESCRIBE_PROMPT_START))
        .count();
    assert_eq!(described, 1, "one vision call, for hy3 only: {sent:#?}");
    let hy3 = for_model(&sent, "hy3");
    assert_eq!(hy3.len(), 1, "the request still went to hy3");
    assert!(!has_image(hy3[0]), "hy3 got words, not the image");
    assert!(hy3[0].to_string().contains("Description of image "));
}

#[tokio::test]
async fn openai_sdk_deepseek_tool_loop_with_replay_developer_role_and_forced_tool_choice() {
    let t = only_a_key(MockConfig::tokenhub()).await;
    if !python("openai", "tokenhub_openai.py", &t.url(""), &["deepseek"]).await {
        return;
    }
    let sent = none_rejected(&t, "deepseek");
    assert_eq!(for_model(&sent, "deepseek-v4-flash").len(), 3, "{sent:#?}");
    // The second turn went up with the reasoning the SDK dropped, replayed from memory.
    let assistant = sent[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant")
        .expect("the assistant turn")
        .clone();
    assert_eq!(
        assistant["reasoning_content"],
        "Thinking about: Use Bash with command=ls -la"
    );
    for body in &sent {
        assert_ne!(body["tool_choice"], "required");
        assert!(!body.to_string().contains("\"developer\""), "{body}");
    }
}

#[tokio::test]
async fn openai_sdk_kimi_k3_sampling_and_effort_and_minimax_thinking() {
    let t = only_a_key(MockConfig::tokenhub()).await;
    if !python(
        "openai",
        "tokenhub_openai.py",
        &t.url(""),
        &["kimi-minimax"],
    )
    .await
    {
        return;
    }
    let sent = none_rejected(&t, "kimi-minimax");
    let kimi = for_model(&sent, "kimi-k3");
    assert!(kimi[0].get("temperature").is_none());
    assert_eq!(kimi[0]["reasoning_effort"], "max");
    assert_eq!(
        for_model(&sent, "minimax-m3")[0]["thinking"]["type"],
        "adaptive"
    );
}

#[tokio::test]
async fn openai_sdk_a_402_on_one_model_while_others_keep_working() {
    let t = only_a_key(MockConfig::tokenhub().with_disabled_model("deepseek-v4-pro")).await;
    if !python("openai", "tokenhub_openai.py", &t.url(""), &["not-enabled"]).await {
        return;
    }
    let sent = none_rejected(&t, "not-enabled");
    assert_eq!(for_model(&sent, "deepseek-v4-pro").len(), 1, "not retried");
    assert_eq!(for_model(&sent, "hy4").len(), 1);
    assert_eq!(for_model(&sent, "deepseek-v4-flash").len(), 1);
}

#[tokio::test]
async fn anthropic_sdk_image_native_on_hy4_and_deepseek_tool_loop_with_thinking() {
    let t = only_a_key(MockConfig::tokenhub()).await;
    if !python("anthropic", "tokenhub_anthropic.py", &t.url(""), &[]).await {
        return;
    }
    let sent = none_rejected(&t, "anthropic");
    assert!(for_model(&sent, "hy4-flash").is_empty(), "no vision call");
    assert!(has_image(for_model(&sent, "hy4")[0]));
    assert_eq!(for_model(&sent, "deepseek-v4-flash").len(), 3);
}

#[tokio::test]
async fn responses_api_image_native_on_hy4_and_deepseek_tool_loop_with_reasoning() {
    let t = only_a_key(MockConfig::tokenhub()).await;
    if !python("openai", "tokenhub_responses.py", &t.url(""), &[]).await {
        return;
    }
    let sent = none_rejected(&t, "responses");
    assert!(for_model(&sent, "hy4-flash").is_empty(), "no vision call");
    assert!(has_image(for_model(&sent, "hy4")[0]));
    assert_eq!(for_model(&sent, "deepseek-v4-flash").len(), 3);
}

/// The agent's executable named by `env_var`, or `None` after printing why the test skips.
pub(crate) fn agent(env_var: &str, install: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env_var)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    if path.is_none() {
        println!("skipped: set {env_var} to the agent's executable ({install})");
    }
    path
}

use crate::agents::TempDir;

/// Runs `bin args…` in `cwd` with a clean environment plus `env`, a fresh `HOME`, bounded by
/// [`RUN_LIMIT`]; its stdout after it exited with 0.
pub(crate) async fn run_agent(
    bin: &Path,
    cwd: &Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> String {
    let home = TempDir::new("home");
    let mut command = tokio::process::Command::new(bin);
    command
        .env_clear()
        .env("HOME", &home.0)
        .env("TMPDIR", &home.0)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SHELL", "/bin/bash")
        .env("LANG", "C.UTF-8")
        .envs(env.iter().copied())
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let what = format!("{} {args:?}", bin.display());
    let output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {RUN_LIMIT:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what}: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `claude -p prompt` on `model` through the proxy at `base_url`; the result text.
pub(crate) async fn claude(
    bin: &Path,
    base_url: &str,
    cwd: &Path,
    model: &str,
    prompt: &str,
) -> String {
    let stdout = run_agent(
        bin,
        cwd,
        &[
            ("ANTHROPIC_BASE_URL", base_url),
            ("ANTHROPIC_API_KEY", "sk-any"),
            ("ANTHROPIC_MODEL", model),
            ("ANTHROPIC_SMALL_FAST_MODEL", model),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("DISABLE_AUTOUPDATER", "1"),
        ],
        &[
            "-p",
            prompt,
            "--output-format",
            "json",
            "--allowedTools",
            "Bash,Read",
            "--max-turns",
            "4",
        ],
    )
    .await;
    let result: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON result ({e}):\n{stdout}"));
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["subtype"], "success", "{result}");
    result["result"].as_str().unwrap_or_default().to_owned()
}

/// The tool messages of the requests for `model`.
fn tool_results(sent: &[Value], model: &str) -> Vec<Value> {
    for_model(sent, model)
        .into_iter()
        .flat_map(|r| r["messages"].as_array().cloned().unwrap_or_default())
        .filter(|m| m["role"] == "tool")
        .collect()
}

#[tokio::test]
async fn claude_code_runs_a_bash_loop_on_deepseek_v4_flash() {
    let Some(bin) = agent(
        "HUNYUAN_PROXY_CLAUDE_BIN",
        "npm i @anthropic-ai/claude-code",
    ) else {
        return;
    };
    let t = only_a_key(MockConfig::tokenhub()).await;
    let work = TempDir::new("claude-work");
    let answer = claude(
        &bin,
        &t.url(""),
        &work.0,
        "deepseek-v4-flash",
        "Use Bash with command=echo tokenhub-$((6*7))",
    )
    .await;
    assert_eq!(answer, "Echo: tokenhub-42");
    let sent = none_rejected(&t, "claude bash");
    let results = tool_results(&sent, "deepseek-v4-flash");
    assert!(
        results.iter().any(|m| m["content"] == "tokenhub-42"),
        "the Bash output went back to deepseek-v4-flash: {sent:#?}"
    );
    // The turn after the tool call carried its reasoning (the mock's replay rule passed).
    let replayed = sent
        .iter()
        .flat_map(|r| r["messages"].as_array().cloned().unwrap_or_default())
        .filter(|m| m["role"] == "assistant" && m.get("tool_calls").is_some())
        .all(|m| {
            m["reasoning_content"]
                .as_str()
                .is_some_and(|r| !r.is_empty())
        });
    assert!(replayed, "{sent:#?}");
}

/// A small PNG (the agents' image fixture).
pub(crate) fn png() -> Vec<u8> {
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
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap()
}

/// The start of the describer's prompt, which tells a vision call from a client's request.
const DESCRIBE_PROMPT_START: &str = "Describe this image completely";

#[tokio::test]
async fn claude_code_reads_a_png_that_hy4_sees_natively() {
    claude_code_reads_a_png_natively("hy4").await;
}

#[tokio::test]
async fn claude_code_reads_a_png_that_hy4_flash_sees_natively() {
    claude_code_reads_a_png_natively("hy4-flash").await;
}

async fn claude_code_reads_a_png_natively(model: &str) {
    let Some(bin) = agent(
        "HUNYUAN_PROXY_CLAUDE_BIN",
        "npm i @anthropic-ai/claude-code",
    ) else {
        return;
    };
    let t = only_a_key(MockConfig::tokenhub()).await;
    let work = TempDir::new("claude-work");
    let png = png();
    let shot = work.0.join("shot.png");
    std::fs::write(&shot, &png).unwrap();
    let prompt = format!("Use Read with file_path={}", shot.display());
    let answer = claude(&bin, &t.url(""), &work.0, model, &prompt).await;
    let sent = none_rejected(&t, "claude png");
    assert!(
        !sent
            .iter()
            .any(|r| r.to_string().contains(DESCRIBE_PROMPT_START)),
        "zero vision calls: {sent:#?}"
    );
    let last = for_model(&sent, model)
        .pop()
        .expect("the model was called")
        .clone();
    assert!(has_image(&last), "{model} got the PNG itself: {last:#}");
    assert!(
        answer.contains("Description of image "),
        "{answer}\n{last:#}"
    );
    assert!(
        answer.contains(&format!("picture of {} bytes", png.len())),
        "{answer}"
    );
}

/// `codex exec prompt` on `model` through the proxy (a `responses` provider); its stdout.
async fn codex(bin: &Path, t: &TestProxy, cwd: &Path, model: &str, prompt: &str) -> String {
    let codex_home = TempDir::new("codex-home");
    let config = format!(
        "model = \"{model}\"\nmodel_provider = \"th\"\n\n\
         [model_providers.th]\nname = \"hunyuan-proxy\"\nbase_url = \"{}\"\n\
         env_key = \"TH_KEY\"\nwire_api = \"responses\"\n",
        t.url("/v1")
    );
    std::fs::write(codex_home.0.join("config.toml"), config).unwrap();
    let codex_home = codex_home.0.to_string_lossy().into_owned();
    run_agent(
        bin,
        cwd,
        &[("CODEX_HOME", &codex_home), ("TH_KEY", "sk-any")],
        &[
            "exec",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            prompt,
        ],
    )
    .await
}

#[tokio::test]
async fn codex_runs_an_exec_command_loop_on_deepseek_v4_flash() {
    let Some(bin) = agent("HUNYUAN_PROXY_CODEX_BIN", "npm i @openai/codex") else {
        return;
    };
    let t = only_a_key(MockConfig::tokenhub()).await;
    let work = TempDir::new("codex-work");
    let marker = "tokenhub_codex_marker_5e1";
    std::fs::write(work.0.join(format!("{marker}.txt")), "x").unwrap();
    let stdout = codex(
        &bin,
        &t,
        &work.0,
        "deepseek-v4-flash",
        "Use exec_command with cmd=ls",
    )
    .await;
    assert!(stdout.contains(marker), "{stdout}");
    let sent = none_rejected(&t, "codex exec_command");
    let results = tool_results(&sent, "deepseek-v4-flash");
    assert!(
        results
            .iter()
            .any(|m| m["content"].to_string().contains(marker)),
        "the command's output went back to deepseek-v4-flash: {sent:#?}"
    );
}

#[tokio::test]
async fn codex_view_image_on_hy3_is_described() {
    let Some(bin) = agent("HUNYUAN_PROXY_CODEX_BIN", "npm i @openai/codex") else {
        return;
    };
    let t = only_a_key(MockConfig::tokenhub()).await;
    let work = TempDir::new("codex-work");
    let image = work.0.join("shot.png");
    std::fs::write(&image, png()).unwrap();
    let prompt = format!("Use view_image with path={}", image.display());
    let stdout = codex(&bin, &t, &work.0, "hy3", &prompt).await;
    let sent = none_rejected(&t, "codex view_image");
    assert_eq!(
        for_model(&sent, "hy4-flash").len(),
        1,
        "one vision call: {sent:#?}"
    );
    let last = for_model(&sent, "hy3")
        .pop()
        .expect("hy3 was called")
        .clone();
    assert!(!has_image(&last), "hy3 got words, not the image: {sent:#?}");
    assert!(
        last.to_string().contains("Description of image "),
        "{last:#}"
    );
    assert!(!stdout.contains(SAW_NO_IMAGE), "{stdout}");
}

/// The turn after a Bash call, as Claude Code 2.1.337 sent it on `deepseek-v4-flash` (its
/// `thinking` block signed by the proxy that answered the first turn, a `system` message in
/// `messages`, `thinking: adaptive`, `output_config.effort`).
const CLAUDE_CODE_BASH_RESULT: &str =
    include_str!("fixtures/tokenhub/claude_code_deepseek_bash_result.json");
/// The turn after an `exec_command` call, as Codex 0.171.0 sent it on `deepseek-v4-flash`
/// (stateless: a `reasoning` item sealed by the proxy that answered the first turn).
const CODEX_EXEC_OUTPUT: &str = include_str!("fixtures/tokenhub/codex_deepseek_exec_output.json");

/// The assistant tool-call turns of the last request for `model`, each with its reasoning.
fn replayed_reasoning(sent: &[Value], model: &str) -> Vec<String> {
    let last = for_model(sent, model).pop().expect("the model was called");
    last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant" && m.get("tool_calls").is_some())
        .map(|m| {
            m["reasoning_content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn recorded_claude_code_deepseek_turns_are_accepted_with_or_without_the_thinking_block() {
    let recorded: Value = serde_json::from_str(CLAUDE_CODE_BASH_RESULT).unwrap();
    let mut stripped = recorded.clone();
    for message in stripped["messages"].as_array_mut().unwrap() {
        if let Some(blocks) = message["content"].as_array_mut() {
            blocks.retain(|b| b["type"] != "thinking");
        }
    }
    for (body, what) in [(recorded, "as sent"), (stripped, "without thinking")] {
        // A fresh proxy: no memory of the first turn.
        let t = only_a_key(MockConfig::tokenhub()).await;
        let response = t
            .client
            .post(t.url("/v1/messages?beta=true"))
            .header("anthropic-version", "2023-06-01")
            .header("x-api-key", "sk-any")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{what}");
        let text = response.text().await.unwrap();
        assert!(text.contains("event: message_stop"), "{what}: {text}");
        let answer: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|d| d["delta"]["text"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(answer, "Echo: tokenhub-42", "{what}: {text}");
        let sent = none_rejected(&t, what);
        let reasoning = replayed_reasoning(&sent, "deepseek-v4-flash");
        assert_eq!(reasoning.len(), 1, "{what}");
        assert!(!reasoning[0].is_empty(), "{what}");
        if what == "as sent" {
            assert!(
                reasoning[0].starts_with("Thinking about: "),
                "the client's own thinking block is replayed: {reasoning:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_recorded_codex_deepseek_turn_is_accepted_by_a_fresh_proxy() {
    let body: Value = serde_json::from_str(CODEX_EXEC_OUTPUT).unwrap();
    let t = only_a_key(MockConfig::tokenhub()).await;
    let response = t.post("/v1/responses", &body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("event: response.completed"), "{text}");
    assert!(text.contains("marker.txt"), "{text}");
    let sent = none_rejected(&t, "codex replay");
    let reasoning = replayed_reasoning(&sent, "deepseek-v4-flash");
    assert_eq!(reasoning.len(), 1);
    assert!(!reasoning[0].is_empty());
}

#[tokio::test]
async fn codex_view_image_on_hy4_flash_is_seen_natively() {
    let Some(bin) = agent("HUNYUAN_PROXY_CODEX_BIN", "npm i @openai/codex") else {
        return;
    };
    let t = only_a_key(MockConfig::tokenhub()).await;
    let work = TempDir::new("codex-work");
    let png = png();
    let image = work.0.join("shot.png");
    std::fs::write(&image, &png).unwrap();
    let prompt = format!("Use view_image with path={}", image.display());
    let stdout = codex(&bin, &t, &work.0, "hy4-flash", &prompt).await;
    let sent = none_rejected(&t, "codex view_image native");
    // hy4-flash is also the describer: a describe call would be one without tools.
    assert!(
        sent.iter().all(|r| r.get("tools").is_some()),
        "zero vision calls: {sent:#?}"
    );
    let last = for_model(&sent, "hy4-flash").pop().unwrap().clone();
    assert!(has_image(&last), "hy4-flash got the PNG itself");
    assert!(
        stdout.contains(&format!("picture of {} bytes", png.len())),
        "{stdout}"
    );
}
