//! The Responses translation replayed on a realistic Codex CLI request
//! (`tests/it/fixtures/codex_request.json`, modelled on Codex 0.169's first turn): the chat
//! request it becomes passes the strict mock's validator after the fixer, the mock's streamed
//! answer becomes a well-formed Responses stream, and Codex's stateless follow-up (reasoning
//! replayed through `encrypted_content`) is accepted again.

use hunyuan_proxy::chat::{ChatChunk, ChatCompletion, ChatRequest, Content, Role, SseParser};
use hunyuan_proxy::fix::{
    asks_for_usage, fix_request, fix_request_with_names, EventAction, FixConfig, ResponsePlan,
    StreamRewriter,
};
use hunyuan_proxy::ingress::responses::{
    from_completion, to_chat, ReasoningCodec, ResponsesConfig, ResponsesEvent, ResponsesStream,
    Translated,
};
use hunyuan_proxy::mock::{validate, MockConfig, MockHunyuan, MockPolicy};
use serde_json::{json, Value};

const FIXTURE: &str = include_str!("fixtures/codex_request.json");
const KEY: &str = "sk-test";

fn codex_request() -> &'static [u8] {
    FIXTURE.as_bytes()
}

/// What the fixer does in front of the upstream, then the mock's own judgement.
fn fixed_and_validated(chat: &ChatRequest, config: &FixConfig, policy: MockPolicy) -> Value {
    let mut chat = chat.clone();
    fix_request(&mut chat, config).expect("the fixer accepts it");
    let body = serde_json::to_value(&chat).unwrap();
    if let Err(rejection) = validate(&body, policy) {
        panic!("the mock refuses the request: {rejection}\n{body:#}");
    }
    body
}

async fn post(mock: &MockHunyuan, body: &Value) -> bytes::Bytes {
    let response = reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap()
}

/// What the FixLayer does to the upstream's stream (OpenAI-style tool-call deltas, usage
/// synthesized when asked, `note` dropped), for the request the Responses side sent.
fn through_fixer(sent: &ChatRequest, config: &FixConfig, sse: &[u8]) -> Vec<u8> {
    let asked = asks_for_usage(sent);
    let mut fixed = sent.clone();
    let (_, names) = fix_request_with_names(&mut fixed, config).unwrap();
    let mut rewriter = StreamRewriter::new(ResponsePlan::new(&fixed, config, names, asked));
    let mut parser = SseParser::new();
    parser.push(sse);
    let mut out = Vec::new();
    while let Some(event) = parser.next_event() {
        if event.is_done() {
            rewriter
                .finish()
                .iter()
                .for_each(|b| out.extend_from_slice(b));
            out.extend_from_slice(&event.raw);
            continue;
        }
        match rewriter.on_event(&event) {
            EventAction::Forward => out.extend_from_slice(&event.raw),
            EventAction::Replace(bytes) => out.extend_from_slice(&bytes),
            EventAction::Skip => {}
        }
    }
    out
}

/// The mock's SSE answer through a [`ResponsesStream`].
fn translate_stream(translated: &Translated, sse: &[u8]) -> (Vec<ResponsesEvent>, Value) {
    let mut stream = ResponsesStream::new(translated.context.clone());
    let mut events = stream.on_start();
    let mut parser = SseParser::new();
    parser.push(sse);
    let mut done = false;
    while let Some(event) = parser.next_event() {
        if event.is_done() {
            events.extend(stream.on_done());
            done = true;
            break;
        }
        if event.is_comment_only() {
            stream.on_keepalive();
            continue;
        }
        let chunk: ChatChunk = serde_json::from_str(&event.data).unwrap();
        events.extend(stream.on_chunk(&chunk));
    }
    if !done {
        events.extend(stream.on_truncated());
    }
    let response = serde_json::to_value(stream.response().expect("the stream ended")).unwrap();
    (events, response)
}

#[tokio::test]
async fn codex_request_becomes_a_chat_request_hunyuan_accepts() {
    let translated = to_chat(codex_request(), &ResponsesConfig::default(), None)
        .await
        .unwrap();
    let chat = &translated.chat;
    assert_eq!(chat.model, "hunyuan-2.0-thinking-20251109");
    assert!(chat.is_stream());
    assert_eq!(translated.dropped.as_slice(), ["tool:web_search"]);

    // The two developer messages are the one system message, in order.
    assert_eq!(chat.messages[0].role, Role::System);
    let system = chat.messages[0].content.as_ref().unwrap().joined_text();
    let permissions = system.find("<permissions instructions>").unwrap();
    let persona = system.find("You are Codex").unwrap();
    assert!(permissions < persona);
    assert!(chat.messages[1..].iter().all(|m| m.role == Role::User));

    let names: Vec<_> = chat
        .tools
        .iter()
        .flatten()
        .map(|t| t.function.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "exec_command",
            "write_stdin",
            "view_image",
            "request_user_input",
            "update_goal",
            "multi_agent_v1__spawn_agent",
            "multi_agent_v1__send_input",
            "multi_agent_v1__wait"
        ]
    );
    assert_eq!(
        translated.tool_names().original("multi_agent_v1__wait"),
        ("wait", Some("multi_agent_v1"))
    );
    assert!(!translated.store(), "Codex sends store: false");
    assert!(
        translated.context.reasoning_summary,
        "Codex asks for summaries"
    );

    // Legacy endpoint: the fixer merges the two user turns and drops what Hunyuan refuses.
    let body = fixed_and_validated(chat, &FixConfig::legacy(), MockPolicy::Legacy);
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);
    assert!(body.get("parallel_tool_calls").is_none());
    // TokenHub, with its options on.
    let options = ResponsesConfig::default()
        .with_reasoning_history(true)
        .with_pass_reasoning_effort(true)
        .with_response_format(true);
    let mut tokenhub = to_chat(codex_request(), &options, None).await.unwrap();
    tokenhub.chat.model = "hy3".into();
    fixed_and_validated(&tokenhub.chat, &FixConfig::tokenhub(), MockPolicy::TokenHub);
}

#[tokio::test]
async fn codex_tool_loop_against_the_strict_mock() {
    let mock = MockHunyuan::start_with(MockConfig::default().with_api_key(KEY)).await;
    let codec = ReasoningCodec::new("replica secret");
    let options = ResponsesConfig::default().with_codec(codec.clone());

    // Turn 1, streamed: the mock thinks, says a sentence and calls the first tool.
    let first = to_chat(codex_request(), &options, None).await.unwrap();
    let body = fixed_and_validated(&first.chat, &FixConfig::legacy(), MockPolicy::Legacy);
    let sse = post(&mock, &body).await;
    // Straight from the upstream (Hunyuan's repeated ids, no usage) and after the fixer
    // (OpenAI-style deltas, estimated usage): the same items either way.
    let (_, raw) = translate_stream(&first, &sse);
    assert_eq!(raw["usage"], Value::Null);
    let fixed_sse = through_fixer(&first.chat, &FixConfig::legacy(), &sse);
    let (events, response) = translate_stream(&first, &fixed_sse);
    assert_eq!(raw["output"], response["output"]);
    assert!(response["usage"]["input_tokens"].as_u64().unwrap() > 0);

    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.sequence_number(), i as u64);
        assert!(!event.encode().windows(6).any(|w| w == b"[DONE]"));
    }
    assert_eq!(events.last().unwrap().kind(), "response.completed");
    let kinds: Vec<_> = events.iter().map(|e| e.kind()).collect();
    assert!(kinds.contains(&"response.reasoning_summary_text.delta"));
    assert!(kinds.contains(&"response.function_call_arguments.delta"));
    assert_eq!(response["status"], "completed");
    assert_eq!(response["model"], "hunyuan-2.0-thinking-20251109");
    let output = response["output"].as_array().unwrap();
    let types: Vec<_> = output.iter().map(|i| i["type"].as_str().unwrap()).collect();
    // The mock, like Hunyuan, explains after the call: the text is its own item after it.
    assert_eq!(types, ["reasoning", "function_call", "message"]);
    let call = &output[1];
    assert_eq!(call["name"], "exec_command");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert!(args["cmd"].is_string(), "{args}");
    assert!(call["call_id"].as_str().unwrap().starts_with("call_"));
    let added = events
        .iter()
        .find(|e| {
            e.kind() == "response.output_item.added" && e.data()["item"]["type"] == "function_call"
        })
        .unwrap();
    assert_eq!(added.data()["item"]["name"], "exec_command");

    // Turn 2, as Codex sends it with store: false: the whole history again, the output items
    // replayed (reasoning with its encrypted_content) and the tool's output.
    let mut next: Value = serde_json::from_str(FIXTURE).unwrap();
    let input = next["input"].as_array_mut().unwrap();
    input.extend(output.iter().cloned());
    input.push(json!({"type": "function_call_output", "call_id": call["call_id"], "output": "Cargo.toml\nsrc\n"}));
    next["stream"] = json!(false);
    let next = next.to_string();

    // With reasoning history (TokenHub), the replayed reasoning reaches the assistant turn.
    let with_history = to_chat(
        next.as_bytes(),
        &options.clone().with_reasoning_history(true),
        None,
    )
    .await
    .unwrap();
    let assistant = with_history
        .chat
        .messages
        .iter()
        .find(|m| m.role == Role::Assistant)
        .unwrap();
    assert!(assistant.extra["reasoning_content"]
        .as_str()
        .unwrap()
        .starts_with("Thinking about:"));
    assert!(matches!(&assistant.content, Some(Content::Text(t)) if t.starts_with("I will call")));
    assert_eq!(
        assistant.tool_calls.as_ref().unwrap()[0].function.name,
        "exec_command"
    );
    // A proxy with another secret ignores the blob and still translates the turn.
    let foreign = to_chat(
        next.as_bytes(),
        &ResponsesConfig::default().with_reasoning_history(true),
        None,
    )
    .await
    .unwrap();
    assert!(foreign
        .chat
        .messages
        .iter()
        .all(|m| !m.extra.contains_key("reasoning_content")));

    // Legacy: no reasoning in history; the mock answers the tool result.
    let second = to_chat(next.as_bytes(), &options, None).await.unwrap();
    assert!(
        second.dropped.as_slice() == ["tool:web_search"],
        "{}",
        second.dropped
    );
    let body = fixed_and_validated(&second.chat, &FixConfig::legacy(), MockPolicy::Legacy);
    let answer: ChatCompletion = serde_json::from_slice(&post(&mock, &body).await).unwrap();
    let response = from_completion(&answer, &second.context);
    let value = serde_json::to_value(&response).unwrap();
    assert_eq!(value["status"], "completed");
    assert!(response.output_text().contains("Cargo.toml"), "{value:#}");
    assert!(value["usage"]["input_tokens"].as_u64().unwrap() > 0);
    mock.stop().await;
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// One generated input item, the kinds Codex and other Responses clients send.
    #[derive(Debug, Clone)]
    enum Item {
        User(&'static str, bool),
        Developer(&'static str),
        Assistant(&'static str),
        Call(u8, bool),
        Output(u8, bool),
        Reasoning(bool),
        Unknown,
        Reference,
    }

    fn item() -> impl Strategy<Value = Item> {
        let text = prop::sample::select(vec![
            "",
            " ",
            "hello",
            "list files",
            "<environment_context/>",
        ]);
        prop_oneof![
            4 => (text.clone(), any::<bool>()).prop_map(|(t, parts)| Item::User(t, parts)),
            1 => text.clone().prop_map(Item::Developer),
            2 => text.prop_map(Item::Assistant),
            3 => (0u8..3, any::<bool>()).prop_map(|(n, ns)| Item::Call(n, ns)),
            3 => (0u8..4, any::<bool>()).prop_map(|(n, parts)| Item::Output(n, parts)),
            1 => any::<bool>().prop_map(Item::Reasoning),
            1 => Just(Item::Unknown),
            1 => Just(Item::Reference),
        ]
    }

    fn to_json(item: &Item, codec: &ReasoningCodec) -> Value {
        let content = |t: &str, parts: bool| {
            if parts {
                json!([{"type": "input_text", "text": t}, {"type": "input_text", "text": t}])
            } else {
                json!(t)
            }
        };
        match item {
            Item::User(t, parts) => {
                json!({"type": "message", "role": "user", "content": content(t, *parts)})
            }
            Item::Developer(t) => json!({"role": "developer", "content": t}),
            Item::Assistant(t) => json!({"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": t, "annotations": []}]}),
            Item::Call(n, true) => json!({"type": "function_call", "call_id": format!("call_{n}"),
                "name": "spawn_agent", "namespace": "multi_agent_v1", "arguments": "{\"message\":\"go\"}"}),
            Item::Call(n, false) => json!({"type": "function_call", "call_id": format!("call_{n}"),
                "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}),
            Item::Output(n, parts) => {
                json!({"type": "function_call_output", "call_id": format!("call_{n}"),
                "output": content("out", *parts)})
            }
            Item::Reasoning(ours) => json!({"type": "reasoning", "summary": [],
                "encrypted_content": if *ours { codec.seal("thinking") } else { "gAAAAforeign".into() }}),
            Item::Unknown => json!({"type": "web_search_call", "status": "completed"}),
            Item::Reference => json!({"type": "item_reference", "id": "msg_0123456789abcdef0000"}),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any sequence of input items translates without error and, after the fixer, is
        /// accepted by the strict mock, under both upstream policies.
        #[test]
        fn any_input_is_accepted_after_the_fixer(items in prop::collection::vec(item(), 1..16)) {
            let codec = ReasoningCodec::new("k");
            let mut body: Value = serde_json::from_str(FIXTURE).unwrap();
            body["input"] = Value::Array(items.iter().map(|i| to_json(i, &codec)).collect());
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            for (model, options, config, policy) in [
                ("hunyuan-2.0-thinking-20251109", ResponsesConfig::default(), FixConfig::legacy(), MockPolicy::Legacy),
                ("hy3", ResponsesConfig::default().with_reasoning_history(true), FixConfig::tokenhub(), MockPolicy::TokenHub),
            ] {
                body["model"] = json!(model);
                let req = body.to_string();
                let translated = rt
                    .block_on(to_chat(req.as_bytes(), &options.with_codec(codec.clone()), None))
                    .unwrap();
                fixed_and_validated(&translated.chat, &config, policy);
            }
        }
    }
}
