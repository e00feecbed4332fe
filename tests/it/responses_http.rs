//! The Responses API over real HTTP: a client of `POST /v1/responses` against the proxy in
//! front of the strict mock (text, streams, tool loops, images through the cascade, stored
//! turns, reasoning replay, errors), and the OpenAI Python SDK when it is installed.

use crate::common::{expect_envelope, TestProxy};
use base64::Engine as _;
use hunyuan_proxy::config::Preset;
use hunyuan_proxy::mock::{MockConfig, MockHunyuan, MockPolicy};
use serde_json::{json, Value};

/// A model the mock answers without reasoning.
const PLAIN: &str = "hunyuan-turbos-latest";
/// A model the mock answers with `reasoning_content`.
const THINKING: &str = "hunyuan-2.0-thinking-20251109";

/// The `(event, data)` pairs of a Responses stream; panics on `[DONE]` (never sent).
fn events(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut kind = None;
        let mut data = None;
        for line in block.lines() {
            if let Some(k) = line.strip_prefix("event: ") {
                kind = Some(k.to_owned());
            } else if let Some(d) = line.strip_prefix("data: ") {
                assert_ne!(d, "[DONE]", "a Responses stream never sends [DONE]");
                data = Some(serde_json::from_str::<Value>(d).unwrap());
            }
        }
        if let (Some(kind), Some(data)) = (kind, data) {
            assert_eq!(data["type"], kind.as_str(), "{data}");
            out.push((kind, data));
        }
    }
    out
}

/// Checks the grammar every stream keeps: created, in_progress first, sequence numbers 0, 1,
/// 2…, one terminal event last.
fn check_grammar(events: &[(String, Value)]) {
    assert!(events.len() >= 3, "{events:?}");
    assert_eq!(events[0].0, "response.created");
    assert_eq!(events[1].0, "response.in_progress");
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64, "{data}");
    }
    let terminal = [
        "response.completed",
        "response.incomplete",
        "response.failed",
    ];
    let ends = events
        .iter()
        .filter(|(k, _)| terminal.contains(&k.as_str()))
        .count();
    assert_eq!(ends, 1);
    assert!(terminal.contains(&events.last().unwrap().0.as_str()));
}

async fn stream(t: &TestProxy, body: &Value) -> Vec<(String, Value)> {
    let response = t.post("/v1/responses", body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "a stream"
    );
    let events = events(&response.text().await.unwrap());
    check_grammar(&events);
    events
}

async fn create(t: &TestProxy, body: &Value) -> Value {
    let response = t.post("/v1/responses", body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn exec_command() -> Value {
    json!({"type": "function", "name": "exec_command", "description": "Run a command",
           "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}},
                          "required": ["cmd"]}})
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

#[tokio::test]
async fn a_text_answer_non_streamed_and_on_the_alias() {
    let t = TestProxy::start().await;
    for path in ["/v1/responses", "/responses"] {
        let response = t
            .post(
                path,
                &json!({"model": PLAIN, "instructions": "Be brief.", "input": "Hello"}),
            )
            .await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["object"], "response");
        assert!(answer["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(answer["status"], "completed");
        assert_eq!(answer["model"], PLAIN);
        let message = &answer["output"][0];
        assert_eq!(message["type"], "message");
        assert_eq!(message["content"][0]["type"], "output_text");
        assert_eq!(message["content"][0]["text"], "Echo: Hello");
        assert_eq!(message["content"][0]["annotations"], json!([]));
        let usage = &answer["usage"];
        assert!(usage["input_tokens"].as_u64().unwrap() > 0);
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
        );
    }
    let sent = t.mock.chat_requests().pop().unwrap();
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(sent["messages"][0]["content"], "Be brief.");
}

#[tokio::test]
async fn a_streamed_text_answer_keeps_the_event_grammar() {
    let t = TestProxy::start().await;
    let events = stream(
        &t,
        &json!({"model": THINKING, "stream": true, "reasoning": {"summary": "auto"},
                "input": [user("Hello stream")]}),
    )
    .await;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        kinds.contains(&"response.reasoning_summary_text.delta"),
        "{kinds:?}"
    );
    let text: String = events
        .iter()
        .filter(|(k, _)| k == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Echo: Hello stream");
    let done = events
        .iter()
        .find(|(k, _)| k == "response.output_text.done")
        .unwrap();
    assert_eq!(done.1["text"], "Echo: Hello stream");
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "response.completed");
    let response = &data["response"];
    assert_eq!(response["status"], "completed");
    assert!(response["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let output = response["output"].as_array().unwrap();
    assert_eq!(output[0]["type"], "reasoning");
    assert!(output[0]["encrypted_content"].is_string());
    assert_eq!(output[1]["content"][0]["text"], "Echo: Hello stream");
}

#[tokio::test]
async fn a_streamed_function_call_sends_its_arguments_in_deltas_and_in_done() {
    let t = TestProxy::start().await;
    let events = stream(
        &t,
        &json!({"model": PLAIN, "stream": true, "tools": [exec_command()],
                "input": [user("list the files")]}),
    )
    .await;
    let deltas: String = events
        .iter()
        .filter(|(k, _)| k == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert!(!deltas.is_empty(), "arguments come in deltas");
    let done = events
        .iter()
        .find(|(k, _)| k == "response.function_call_arguments.done")
        .expect("arguments.done");
    assert_eq!(done.1["arguments"], deltas.as_str());
    let arguments: Value = serde_json::from_str(&deltas).unwrap();
    assert!(arguments["cmd"].is_string(), "{arguments}");
    let added = events
        .iter()
        .find(|(k, d)| k == "response.output_item.added" && d["item"]["type"] == "function_call")
        .unwrap();
    assert_eq!(added.1["item"]["name"], "exec_command");
    let response = &events.last().unwrap().1["response"];
    let call = response["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap();
    assert_eq!(call["name"], "exec_command");
    assert!(call["call_id"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(call["arguments"], deltas.as_str());
}

#[tokio::test]
async fn a_function_call_output_loop_reaches_a_final_answer() {
    let t = TestProxy::start().await;
    let first = create(
        &t,
        &json!({"model": PLAIN, "store": false, "tools": [exec_command()],
                "input": [user("list the files")]}),
    )
    .await;
    let call = first["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap()
        .clone();
    let call_id = call["call_id"].as_str().unwrap().to_owned();
    let mut input = vec![user("list the files")];
    input.extend(first["output"].as_array().unwrap().iter().cloned());
    input.push(json!({"type": "function_call_output", "call_id": call_id,
                      "output": "a.txt\nb.txt"}));
    let second = create(
        &t,
        &json!({"model": PLAIN, "store": false, "tools": [exec_command()], "input": input}),
    )
    .await;
    assert_eq!(second["status"], "completed");
    let text = second["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "message")
        .map(|m| m["content"][0]["text"].clone())
        .unwrap();
    assert_eq!(text, "Echo: a.txt\nb.txt");
    let sent = t.mock.chat_requests().pop().unwrap();
    let messages = sent["messages"].as_array().unwrap();
    let tool = messages.last().unwrap();
    assert_eq!(tool["role"], "tool");
    assert_eq!(tool["tool_call_id"], call_id.as_str());
    let assistant = &messages[messages.len() - 2];
    assert_eq!(assistant["tool_calls"][0]["id"], call_id.as_str());
    assert_eq!(
        assistant["tool_calls"][0]["function"]["name"],
        "exec_command"
    );
}

fn png_data_url(seed: u8) -> String {
    let bytes: Vec<u8> = (0..2000u32)
        .map(|n| (n as u8).wrapping_mul(17).wrapping_add(seed))
        .collect();
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn vision_calls(t: &TestProxy) -> Vec<Value> {
    t.mock
        .chat_requests()
        .into_iter()
        .filter(|r| r["model"].as_str().is_some_and(|m| m.contains("vision")))
        .collect()
}

#[tokio::test]
async fn an_input_image_makes_exactly_one_vision_call() {
    let t = TestProxy::start().await;
    let body = json!({"model": PLAIN, "stream": true, "input": [
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "What is on this screenshot?"},
            {"type": "input_image", "image_url": png_data_url(3), "detail": "auto"}]}]});
    let events = stream(&t, &body).await;
    assert_eq!(events.last().unwrap().0, "response.completed");
    assert_eq!(vision_calls(&t).len(), 1);
    let text_call = t
        .mock
        .chat_requests()
        .into_iter()
        .rfind(|r| !r["model"].as_str().unwrap().contains("vision"))
        .unwrap();
    let sent = text_call["messages"].to_string();
    assert!(sent.contains("Description of image"), "{sent}");
    assert!(
        !sent.contains("data:image"),
        "no image reaches the text model"
    );
}

#[tokio::test]
async fn previous_response_id_replays_the_earlier_turn() {
    let t = TestProxy::start().await;
    let first = create(&t, &json!({"model": PLAIN, "input": "My name is Ada."})).await;
    let id = first["id"].as_str().unwrap();
    let second = create(
        &t,
        &json!({"model": PLAIN, "previous_response_id": id, "input": "What is my name?"}),
    )
    .await;
    assert_eq!(second["previous_response_id"], id);
    let sent = t.mock.chat_requests().pop().unwrap();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(messages[0]["content"], "My name is Ada.");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"], "Echo: My name is Ada.");
    assert_eq!(messages[2]["content"], "What is my name?");

    // A streamed turn is stored too, and can be continued at once.
    let events = stream(
        &t,
        &json!({"model": PLAIN, "stream": true, "previous_response_id": second["id"],
                "input": "Again?"}),
    )
    .await;
    let third = events.last().unwrap().1["response"]["id"].clone();
    create(
        &t,
        &json!({"model": PLAIN, "previous_response_id": third, "input": "Once more"}),
    )
    .await;
    assert_eq!(
        t.mock.chat_requests().pop().unwrap()["messages"]
            .as_array()
            .unwrap()
            .len(),
        7
    );

    let unknown = t
        .post(
            "/v1/responses",
            &json!({"model": PLAIN, "previous_response_id": "resp_gone", "input": "x"}),
        )
        .await;
    let body = expect_envelope(unknown, 404).await;
    assert_eq!(body["error"]["code"], "previous_response_not_found");
    assert_eq!(body["error"]["param"], "previous_response_id");

    // `store: false` keeps nothing.
    let unstored = create(&t, &json!({"model": PLAIN, "store": false, "input": "x"})).await;
    let response = t
        .get(&format!(
            "/v1/responses/{}",
            unstored["id"].as_str().unwrap()
        ))
        .await;
    expect_envelope(response, 404).await;
}

#[tokio::test]
async fn stored_responses_can_be_read_and_deleted() {
    let t = TestProxy::start().await;
    let answer = create(&t, &json!({"model": PLAIN, "input": "keep me"})).await;
    let id = answer["id"].as_str().unwrap();
    for prefix in ["/v1", ""] {
        let got = t.get(&format!("{prefix}/responses/{id}")).await;
        assert_eq!(got.status(), 200);
        let got: Value = got.json().await.unwrap();
        assert_eq!(got, answer);
    }
    let deleted = t
        .client
        .delete(t.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let deleted: Value = deleted.json().await.unwrap();
    assert_eq!(
        deleted,
        json!({"id": id, "object": "response", "deleted": true})
    );
    let body = expect_envelope(t.get(&format!("/v1/responses/{id}")).await, 404).await;
    assert_eq!(body["error"]["code"], "not_found");
    let again = t
        .client
        .delete(t.url(&format!("/responses/{id}")))
        .send()
        .await
        .unwrap();
    expect_envelope(again, 404).await;
}

#[tokio::test]
async fn a_namespace_tools_name_round_trips() {
    let t = TestProxy::start().await;
    let tools = json!([{"type": "namespace", "name": "multi_agent_v1", "description": "agents",
        "tools": [{"type": "function", "name": "spawn_agent", "description": "Spawn",
                   "parameters": {"type": "object", "properties": {"task": {"type": "string"}},
                                  "required": ["task"]}}]},
        {"type": "web_search"}]);
    let response = t
        .post(
            "/v1/responses",
            &json!({"model": PLAIN, "tools": tools, "input": "spawn one"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let dropped = response.headers()["x-hunyuan-proxy-dropped"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(dropped.contains("tool:web_search"), "{dropped}");
    let answer: Value = response.json().await.unwrap();
    let sent = t.mock.chat_requests().pop().unwrap();
    let sent_name = sent["tools"][0]["function"]["name"].as_str().unwrap();
    assert!(
        sent_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "{sent_name}"
    );
    assert_eq!(
        sent["tools"].as_array().unwrap().len(),
        1,
        "web_search dropped"
    );
    let call = answer["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap();
    assert_eq!(call["name"], "spawn_agent");
    assert_eq!(call["namespace"], "multi_agent_v1");

    // Given back, the call goes upstream under the flattened name again.
    let input = json!([
        {"type": "message", "role": "user", "content": "spawn one"},
        call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "spawned"}
    ]);
    create(&t, &json!({"model": PLAIN, "tools": tools, "input": input})).await;
    let sent = t.mock.chat_requests().pop().unwrap();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(
        messages[1]["tool_calls"][0]["function"]["name"], sent_name,
        "{messages:?}"
    );
}

/// A TokenHub proxy (reasoning history on) in front of the TokenHub-like mock.
async fn tokenhub() -> TestProxy {
    let mock =
        MockHunyuan::start_with(MockConfig::default().with_policy(MockPolicy::TokenHub)).await;
    let mut config = TestProxy::config_for(&mock);
    config.upstream = Preset::Tokenhub;
    // This stand-in still serves the retired thinking model (the only one it gives reasoning
    // to), so the id is not mapped to its replacement here.
    config.models.insert(
        THINKING.to_owned(),
        hunyuan_proxy::models::ModelSettings {
            replaced_by: Some(String::new()),
            ..Default::default()
        },
    );
    TestProxy::start_on(mock, config).await
}

#[tokio::test]
async fn encrypted_reasoning_round_trips_and_a_tampered_one_is_ignored() {
    let t = tokenhub().await;
    let first = create(
        &t,
        &json!({"model": THINKING, "store": false,
                "include": ["reasoning.encrypted_content"], "input": [user("plan a trip")]}),
    )
    .await;
    let output = first["output"].as_array().unwrap().clone();
    let reasoning = output.iter().find(|i| i["type"] == "reasoning").unwrap();
    let blob = reasoning["encrypted_content"].as_str().unwrap();
    assert!(
        !blob.contains("Thinking about"),
        "the blob is not plain text"
    );

    let replay = |items: Vec<Value>| {
        let mut input = vec![user("plan a trip")];
        input.extend(items);
        input.push(user("and now?"));
        json!({"model": THINKING, "store": false, "input": input})
    };
    create(&t, &replay(output.clone())).await;
    let sent = t.mock.chat_requests().pop().unwrap();
    assert_eq!(sent["messages"][1]["role"], "assistant");
    assert_eq!(
        sent["messages"][1]["reasoning_content"],
        "Thinking about: plan a trip"
    );

    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let mut tampered = output.clone();
    for item in &mut tampered {
        if item["type"] == "reasoning" {
            item["encrypted_content"] =
                json!(base64::engine::general_purpose::STANDARD.encode(&raw));
        }
    }
    create(&t, &replay(tampered)).await;
    let sent = t.mock.chat_requests().pop().unwrap();
    assert_eq!(sent["messages"][1]["role"], "assistant");
    assert!(
        sent["messages"][1].get("reasoning_content").is_none(),
        "{}",
        sent["messages"][1]
    );
}

#[tokio::test]
async fn bad_input_is_a_400_in_openais_envelope() {
    let t = TestProxy::start().await;
    let file = json!({"model": PLAIN, "input": [{"type": "message", "role": "user", "content": [
        {"type": "input_file", "file_id": "file_1"}]}]});
    let body = expect_envelope(t.post("/v1/responses", &file).await, 400).await;
    assert!(
        body["error"]["param"]
            .as_str()
            .is_some_and(|p| p.starts_with("input[0]")),
        "{body}"
    );
    let body = expect_envelope(t.post("/v1/responses", &json!({"model": PLAIN})).await, 400).await;
    assert_eq!(body["error"]["param"], "input");
    expect_envelope(
        t.post("/v1/responses", &json!({"input": "no model"})).await,
        400,
    )
    .await;
    let broken = t
        .post_raw("/v1/responses", "application/json", b"{\"model\":".to_vec())
        .await;
    let body = expect_envelope(broken, 400).await;
    assert_eq!(body["error"]["code"], "invalid_json");
    // Unknown item types are ignored, not refused.
    let response = t
        .post(
            "/v1/responses",
            &json!({"model": PLAIN, "input": [{"type": "compaction_summary", "x": 1}, user("hi")]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["x-hunyuan-proxy-dropped"]
        .to_str()
        .unwrap()
        .contains("item:compaction_summary"));
    // The wrong method is the envelope's 405.
    let get = t.get("/v1/responses").await;
    expect_envelope(get, 405).await;
}

#[tokio::test]
async fn unsupported_routes_say_what_is_unsupported() {
    let t = TestProxy::start().await;
    let cases = [
        ("POST", "/v1/responses/resp_1/cancel", "Cancelling"),
        ("POST", "/responses/resp_1/cancel", "Cancelling"),
        ("POST", "/v1/responses/compact", "Compacting"),
        ("POST", "/responses/compact", "Compacting"),
        ("GET", "/v1/responses/resp_1/input_items", "input items"),
        ("GET", "/responses/resp_1/input_items", "input items"),
    ];
    for (method, path, words) in cases {
        let request = match method {
            "POST" => t.client.post(t.url(path)).json(&json!({"model": PLAIN})),
            _ => t.client.get(t.url(path)),
        };
        let response = request.send().await.unwrap();
        let body = expect_envelope(response, 400).await;
        assert_eq!(body["error"]["code"], "unsupported_endpoint", "{path}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{path}: {message}");
    }
}

#[tokio::test]
async fn client_keys_guard_the_responses_routes() {
    let t = TestProxy::start_with(|c| {
        c.client_api_keys = vec![hunyuan_proxy::config::Secret::new("sk-client-key-1")];
    })
    .await;
    let body = json!({"model": PLAIN, "input": "hi"});
    expect_envelope(t.post("/v1/responses", &body).await, 401).await;
    let ok = t
        .client
        .post(t.url("/v1/responses"))
        .bearer_auth("sk-client-key-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    expect_envelope(t.get("/v1/responses/resp_1").await, 401).await;
}

/// The value of `hunyuan_proxy_dropped_total{dialect="responses", item}` on `/metrics`.
async fn dropped_count(t: &TestProxy, item: &str) -> f64 {
    let text = t.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("hunyuan_proxy_dropped_total{"))
        .filter(|l| l.contains("dialect=\"responses\"") && l.contains(&format!("item=\"{item}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(feature = "prometheus")]
#[tokio::test]
async fn dropped_items_are_counted_under_the_responses_dialect() {
    let t = TestProxy::start().await;
    let before = dropped_count(&t, "tool:web_search").await;
    let response = t
        .post(
            "/v1/responses",
            &json!({"model": PLAIN, "tools": [{"type": "web_search"}], "input": "hi"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let after = dropped_count(&t, "tool:web_search").await;
    assert!(after >= before + 1.0, "{before} → {after}");
}

#[tokio::test]
async fn the_openai_python_sdk_speaks_to_the_proxy() {
    let t = TestProxy::start().await;
    crate::common::run_python_client(
        "import openai; openai.OpenAI().responses",
        "openai",
        "openai_responses.py",
        &t.url("/v1"),
    )
    .await;
}

#[tokio::test]
async fn gpt_model_names_go_to_the_text_model_and_aliases_apply() {
    let t = TestProxy::start_with(|c| {
        c.model_aliases
            .insert("my-codex".into(), "hunyuan-turbos-latest".into());
    })
    .await;
    let answer = create(&t, &json!({"model": "gpt-5-codex", "input": "hi"})).await;
    assert_eq!(
        answer["model"], "gpt-5-codex",
        "the answer names the client's model"
    );
    assert_eq!(
        t.mock.chat_requests().pop().unwrap()["model"],
        "hunyuan-2.0-thinking-20251109"
    );
    create(&t, &json!({"model": "my-codex", "input": "hi"})).await;
    assert_eq!(
        t.mock.chat_requests().pop().unwrap()["model"],
        "hunyuan-turbos-latest"
    );
}
