//! The FixLayer through the ready-made stack, against the mock Hunyuan (legacy rules).

use crate::common::{expect_envelope, sse_data, TestProxy};
use serde_json::{json, Value};

const MODEL: &str = "hunyuan-2.0-instruct-20251111";

fn chat(messages: Value) -> Value {
    json!({"model": MODEL, "messages": messages})
}

fn weather_tool(name: &str) -> Value {
    json!({"type": "function", "function": {"name": name, "strict": true,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

fn calls(ids_names: &[(&str, &str)], content: Value) -> Value {
    json!({"role": "assistant", "content": content, "tool_calls": ids_names.iter().map(|(id, n)|
        json!({"id": id, "type": "function", "function": {"name": n, "arguments": "{\"city\":\"SZ\"}"}})).collect::<Vec<_>>()})
}

/// Every class of conversation Hunyuan refuses and OpenAI accepts gets a 200.
#[tokio::test]
async fn every_broken_conversation_class_gets_a_200() {
    let t = TestProxy::start().await;
    let u = |s: &str| json!({"role": "user", "content": s});
    let a = |s: &str| json!({"role": "assistant", "content": s});
    let tool = |id: &str, s: &str| json!({"role": "tool", "tool_call_id": id, "content": s});
    let mut long = vec![json!({"role": "system", "content": "be brief"})];
    for i in 0..30 {
        long.push(u(&format!("q{i}")));
        long.push(a(&format!("a{i}")));
    }
    long.push(u("last"));
    let cases: Vec<(&str, Value)> = vec![
        ("consecutive users", chat(json!([u("a"), u("b")]))),
        (
            "consecutive assistants",
            chat(json!([u("a"), a("b"), a("c"), u("d")])),
        ),
        (
            "starts with assistant",
            chat(json!([a("Hi! How can I help?"), u("weather?")])),
        ),
        (
            "starts with tool",
            chat(json!([tool("call_1", "42"), u("so?")])),
        ),
        (
            "user after tool",
            chat(json!([
                u("q"),
                calls(&[("call_1", "get_weather")], json!(null)),
                tool("call_1", "sunny"),
                u("thanks")
            ])),
        ),
        (
            "tool after plain assistant",
            chat(json!([u("q"), a("let me see"), tool("call_1", "42")])),
        ),
        (
            "prefill",
            chat(json!([u("Tell a story"), a("Once upon a time")])),
        ),
        ("empty assistant prefill", chat(json!([u("q"), a("")]))),
        (
            "null content beside tool calls",
            chat(json!([
                u("q"),
                calls(&[("call_1", "get_weather")], json!(null)),
                tool("call_1", "sunny")
            ])),
        ),
        (
            "whitespace beside tool calls",
            chat(json!([
                u("q"),
                calls(&[("call_1", "get_weather")], json!(" ")),
                tool("call_1", "sunny")
            ])),
        ),
        (
            "empty tool result",
            chat(json!([
                u("q"),
                calls(&[("call_1", "get_weather")], json!("")),
                tool("call_1", "")
            ])),
        ),
        ("empty user", chat(json!([u(""), a("?"), u("hello")]))),
        (
            "empty parts",
            chat(json!([{"role": "user", "content": []}])),
        ),
        (
            "developer role",
            chat(json!([{"role": "developer", "content": "be brief"}, u("q")])),
        ),
        (
            "system in the middle",
            chat(json!([u("q"), {"role": "system", "content": "late"}, a("x"), u("y")])),
        ),
        (
            "two systems",
            chat(
                json!([{"role": "system", "content": "a"}, {"role": "system", "content": "b"}, u("q")]),
            ),
        ),
        (
            "empty system",
            chat(json!([{"role": "system", "content": ""}, u("q")])),
        ),
        (
            "reasoning in history",
            chat(
                json!([u("q"), {"role": "assistant", "content": "a", "reasoning_content": "hmm"}, u("q2")]),
            ),
        ),
        ("over 40 messages", chat(Value::Array(long))),
        (
            "text-only parts",
            chat(
                json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]),
            ),
        ),
        (
            "image without text",
            json!({"model": "hunyuan-vision", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
        ),
    ];
    for (name, body) in cases {
        let response = t.post("/v1/chat/completions", &body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "{name}: {text}");
    }
    // Unsupported fields are dropped.
    let mut body = chat(json!([u("q")]));
    for (k, v) in [
        ("frequency_penalty", json!(0)),
        ("presence_penalty", json!(0.1)),
        ("parallel_tool_calls", json!(true)),
        ("reasoning_effort", json!("low")),
        ("logprobs", json!(false)),
        ("n", json!(1)),
    ] {
        body[k] = v;
    }
    body["tools"] = json!([weather_tool("get_weather")]);
    let response = t.post("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn out_of_range_values_are_400_naming_the_field() {
    let t = TestProxy::start().await;
    for (field, value) in [
        ("n", json!(2)),
        ("temperature", json!(3)),
        ("top_p", json!(-1)),
    ] {
        let mut body = chat(json!([{"role": "user", "content": "q"}]));
        body[field] = value;
        let envelope = expect_envelope(t.post("/v1/chat/completions", &body).await, 400).await;
        assert_eq!(envelope["error"]["param"], field);
    }
    assert_eq!(
        t.mock.request_count(),
        0,
        "refused before reaching the upstream"
    );
}

#[tokio::test]
async fn the_tool_chain_reaches_hunyuan_unchanged() {
    let t = TestProxy::start().await;
    let body = json!({"model": MODEL, "tools": [weather_tool("get.weather")], "messages": [
        {"role": "user", "content": "weather in SZ and BJ?"},
        calls(&[("call_a1", "get.weather")], json!(null)),
        calls(&[("call_b2", "get.weather")], json!("")),
        {"role": "tool", "tool_call_id": "call_a1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_b2", "content": ""},
    ]});
    let response = t.post("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let sent = t.mock.chat_requests().pop().unwrap();
    let messages = sent["messages"].as_array().unwrap();
    let roles: Vec<_> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool", "tool"]);
    let ids: Vec<_> = messages[1]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["call_a1", "call_b2"]);
    assert_eq!(
        messages[1]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert_eq!(messages[1]["content"], "Calling get_weather, get_weather.");
    assert_eq!(messages[2]["tool_call_id"], "call_a1");
    assert_eq!(messages[3]["tool_call_id"], "call_b2");
    assert_eq!(messages[3]["content"], "(no output)");
    assert!(sent["tools"][0]["function"].get("strict").is_none());
}

/// What an accumulated stream holds.
#[derive(Debug, Default)]
struct Accumulated {
    text: String,
    /// `(id, name, arguments)` per tool-call index.
    calls: Vec<(String, String, String)>,
    finish: Option<String>,
    usage: Option<Value>,
}

/// What the `openai` SDK's (and LangChain's) stream accumulator builds from the deltas.
fn accumulate(data: &[String]) -> Accumulated {
    let Accumulated {
        mut text,
        mut calls,
        mut finish,
        mut usage,
    } = Accumulated::default();
    for d in data.iter().filter(|d| *d != "[DONE]") {
        let chunk: Value = serde_json::from_str(d).unwrap();
        assert!(chunk.get("note").is_none(), "note dropped: {d}");
        if !chunk["usage"].is_null() {
            usage = Some(chunk["usage"].clone());
        }
        for choice in chunk["choices"].as_array().unwrap() {
            text.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_owned());
            }
            for tc in choice["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let i = tc["index"].as_u64().unwrap() as usize;
                if calls.len() <= i {
                    calls.resize(i + 1, Default::default());
                }
                calls[i].0.push_str(tc["id"].as_str().unwrap_or(""));
                calls[i]
                    .1
                    .push_str(tc["function"]["name"].as_str().unwrap_or(""));
                calls[i]
                    .2
                    .push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
            }
        }
    }
    Accumulated {
        text,
        calls,
        finish,
        usage,
    }
}

#[tokio::test]
async fn streamed_tool_calls_accumulate_into_one_valid_call() {
    let t = TestProxy::start().await;
    let body = json!({"model": MODEL, "stream": true, "stream_options": {"include_usage": true},
        "tools": [weather_tool("weather.get")],
        "messages": [{"role": "user", "content": "weather in SZ?"}]});
    let response = t.post("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let data = sse_data(response).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let Accumulated {
        text,
        calls,
        finish,
        usage,
    } = accumulate(&data);
    assert_eq!(calls.len(), 1, "{data:?}");
    let (id, name, args) = &calls[0];
    assert!(
        id.starts_with("call_") && id.len() == 25,
        "one id, not repeated: {id}"
    );
    assert_eq!(name, "weather.get", "the client's name, not the upstream's");
    let args: Value = serde_json::from_str(args).expect("arguments are valid JSON");
    assert_eq!(args["city"], "weather in SZ?");
    assert_eq!(text, "I will call weather_get to answer this.");
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let usage = usage.expect("a usage chunk was synthesized");
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );
}

#[tokio::test]
async fn stop_strings_are_cut_in_both_shapes() {
    let t = TestProxy::start().await;
    let mut body = chat(json!([{"role": "user", "content": "one two three four"}]));
    body["stop"] = json!(["three"]);
    let answer: Value = t
        .post("/v1/chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "Echo: one two ");
    assert!(answer.get("note").is_none());
    body["stream"] = json!(true);
    let data = sse_data(t.post("/v1/chat/completions", &body).await).await;
    let Accumulated {
        text,
        finish,
        usage,
        ..
    } = accumulate(&data);
    assert_eq!(text, "Echo: one two ");
    assert_eq!(finish.as_deref(), Some("stop"));
    assert!(usage.is_none(), "no usage chunk unless asked");
}

/// user → tool call → tool result → final answer, the way an agent framework drives it.
#[tokio::test]
async fn an_agent_loop_completes() {
    let t = TestProxy::start().await;
    let mut messages = vec![
        json!({"role": "system", "content": "You are an agent."}),
        json!({"role": "user", "content": "weather in SZ?"}),
    ];
    let tools = json!([weather_tool("get_weather")]);
    // Turn 1, streamed: the model calls the tool.
    let body = json!({"model": MODEL, "stream": true, "tools": tools, "messages": messages,
        "presence_penalty": 0, "parallel_tool_calls": false});
    let data = sse_data(t.post("/v1/chat/completions", &body).await).await;
    let Accumulated {
        text,
        calls,
        finish,
        ..
    } = accumulate(&data);
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(calls.len(), 1);
    let (id, name, args) = calls[0].clone();
    // The framework appends the call (content as the client saw it) and the tool's result.
    messages.push(json!({"role": "assistant", "content": text, "tool_calls": [
        {"id": id, "type": "function", "function": {"name": name, "arguments": args}}]}));
    messages.push(json!({"role": "tool", "tool_call_id": id, "content": "Sunny, 25°C"}));
    // Turn 2, not streamed: the final answer.
    let body = json!({"model": MODEL, "tools": tools, "messages": messages});
    let response = t.post("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Echo: Sunny, 25°C"
    );
    // Turn 3: the user follows up after the answer (and the client resends everything).
    messages.push(answer["choices"][0]["message"].clone());
    messages.push(json!({"role": "user", "content": "thanks"}));
    let body = json!({"model": MODEL, "messages": messages});
    assert_eq!(t.post("/v1/chat/completions", &body).await.status(), 200);
    let sent = t.mock.chat_requests();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[1]["messages"][2]["tool_calls"][0]["id"], id);
    assert_eq!(sent[1]["messages"][3]["tool_call_id"], id);
}

/// The TokenHub preset: the fixer follows TokenHub's policy against a TokenHub-like mock.
#[tokio::test]
async fn tokenhub_keeps_reasoning_and_usage_follows_the_client() {
    use hunyuan_proxy::config::Preset;
    use hunyuan_proxy::mock::{MockConfig, MockHunyuan, MockPolicy};
    let mock =
        MockHunyuan::start_with(MockConfig::default().with_policy(MockPolicy::TokenHub)).await;
    let mut config = TestProxy::config_for(&mock);
    config.upstream = Preset::Tokenhub;
    let t = TestProxy::start_on(mock, config).await;
    let body = json!({"model": "hy3", "stream": true, "reasoning_effort": "high", "messages": [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "reasoning_content": "because"},
        {"role": "user", "content": "q2"},
    ]});
    let data = sse_data(t.post("/v1/chat/completions", &body).await).await;
    let Accumulated { text, usage, .. } = accumulate(&data);
    assert_eq!(text, "Echo: q2");
    assert!(usage.is_none(), "the client did not ask for usage");
    let sent = t.mock.chat_requests().pop().unwrap();
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(sent["messages"][2]["reasoning_content"], "because");
    assert_eq!(sent["reasoning_effort"], "high");
    assert_eq!(sent["stream_options"]["include_usage"], true);

    let mut body = body;
    body["stream_options"] = json!({"include_usage": true});
    let data = sse_data(t.post("/v1/chat/completions", &body).await).await;
    let usage = accumulate(&data).usage.expect("usage passed on");
    assert!(usage["total_tokens"].as_u64().unwrap() > 0);
    let usage_chunks = data.iter().filter(|d| d.contains("\"usage\"")).count();
    assert_eq!(
        usage_chunks, 1,
        "the upstream's usage, none synthesized besides: {data:?}"
    );
}

/// The rules that fired are counted by name in `/status` (and `/metrics`).
#[tokio::test]
async fn fired_rules_are_counted_by_name() {
    let t = TestProxy::start().await;
    // `/metrics` is process-wide and other tests of this binary fire rules too: compare.
    let before = alternation_count(&t.get("/metrics").await.text().await.unwrap());
    let body = chat(json!([
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "prefill"},
    ]));
    let response = t.post("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    // The request is counted when its body has ended on the server side.
    let mut status = Value::Null;
    for _ in 0..50 {
        status = t.get("/status").await.json().await.unwrap();
        if !status["fix_rules"]["ending"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status["fix_rules"]["alternation"], 1, "{status}");
    assert_eq!(status["fix_rules"]["ending"], 1, "{status}");
    assert!(status["fix_rules"].get("system").is_none(), "{status}");
    let metrics = t.get("/metrics").await.text().await.unwrap();
    assert!(alternation_count(&metrics) > before, "{metrics}");
}

fn alternation_count(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("hunyuan_proxy_fix_rules_total{rule=\"alternation\"} "))
        .map_or(0, |v| v.trim().parse().unwrap())
}
