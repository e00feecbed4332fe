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
use hunyuan_proxy::mock::{validate_tokenhub, MockConfig, MockHunyuan};
use serde_json::Value;
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

fn has_image(body: &Value) -> bool {
    body.to_string().contains("\"image_url\"")
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
    let describer = for_model(&sent, "hy4-flash");
    assert_eq!(
        describer.len(),
        1,
        "one vision call, for hy3 only: {sent:#?}"
    );
    assert!(has_image(describer[0]));
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
