use super::*;
use crate::ingress::responses::store::MemoryResponseStore;
use crate::ingress::responses::{from_completion, ResponseStatus};
use serde_json::json;

fn request(body: Value) -> Vec<u8> {
    body.to_string().into_bytes()
}

async fn translate_with(body: Value, config: &ResponsesConfig) -> Translated {
    to_chat(&request(body), config, None).await.unwrap()
}

async fn translate_body(body: Value) -> Translated {
    translate_with(body, &ResponsesConfig::default()).await
}

async fn error_of(body: Value) -> ResponsesError {
    to_chat(&request(body), &ResponsesConfig::default(), None)
        .await
        .unwrap_err()
}

fn roles(chat: &ChatRequest) -> Vec<&'static str> {
    chat.messages.iter().map(|m| m.role.as_str()).collect()
}

fn text(m: &Message) -> String {
    m.content
        .as_ref()
        .map(Content::joined_text)
        .unwrap_or_default()
}

#[tokio::test]
async fn instructions_and_developer_messages_anywhere_become_one_system_message() {
    let t = translate_body(json!({
        "model": "m",
        "instructions": "You are Codex.",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Sandbox: none."}]},
            {"type": "message", "role": "user", "content": "hi"},
            {"role": "system", "content": "Be terse."},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]}
        ]
    }))
    .await;
    assert_eq!(roles(&t.chat), ["system", "user", "assistant", "user"]);
    assert_eq!(
        text(&t.chat.messages[0]),
        "You are Codex.\n\nSandbox: none.\n\nBe terse."
    );
    assert_eq!(
        t.chat.messages[3].content,
        Some(Content::Text("a\nb".into()))
    );
    assert!(t.dropped.is_empty(), "{}", t.dropped);
}

#[tokio::test]
async fn string_input_is_one_user_message() {
    let t = translate_body(json!({"model": "hunyuan-turbos-latest", "input": "Say hi"})).await;
    assert_eq!(t.chat.model, "hunyuan-turbos-latest");
    assert_eq!(t.chat.messages, vec![Message::text(Role::User, "Say hi")]);
    assert!(!t.chat.is_stream());
    assert_eq!(t.input_items[0]["role"], "user");
}

#[tokio::test]
async fn images_become_image_url_parts_and_unsupported_parts_are_named() {
    let t = translate_body(json!({"model": "m", "input": [
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}
        ]}
    ]}))
    .await;
    let Some(Content::Parts(parts)) = &t.chat.messages[0].content else {
        panic!("parts expected");
    };
    assert_eq!(parts.len(), 3);
    assert_eq!(
        parts[1].image_url().unwrap(),
        &ImageUrl {
            url: "data:image/png;base64,iVBORw0KGgo=".into(),
            detail: Some("high".into())
        }
    );
    assert_eq!(parts[2].image_url().unwrap().detail, None);

    for (part, kind) in [
        (
            json!({"type": "input_image", "file_id": "file-123"}),
            "file_id",
        ),
        (
            json!({"type": "input_file", "file_id": "file-1"}),
            "input_file",
        ),
        (
            json!({"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}),
            "input_audio",
        ),
    ] {
        let err = error_of(json!({"model": "m", "input": [
            {"type": "message", "role": "user", "content": "first"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}, part]}
        ]}))
        .await;
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{kind}");
        assert_eq!(err.param(), Some("input[1].content[1]"), "{kind}");
        assert!(err.to_string().contains(kind), "{kind}: {err}");
    }
}

#[tokio::test]
async fn function_calls_merge_into_the_turns_assistant_message() {
    let t = translate_body(json!({"model": "m", "input": [
        {"type": "message", "role": "user", "content": "list files"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Listing."}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"},
        {"type": "function_call", "call_id": "call_b", "name": "exec_command", "arguments": "{\"cmd\":\"pwd\"}"},
        {"type": "function_call_output", "call_id": "call_a", "output": "a.txt"},
        {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "/work"}]},
        {"type": "function_call", "call_id": "call_c", "name": "view_image", "arguments": "{\"path\":\"a.png\"}"},
        {"type": "function_call_output", "call_id": "call_c", "output": [
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
        ]}
    ], "tools": [
        {"type": "function", "name": "exec_command", "parameters": {"type": "object"}, "strict": false},
        {"type": "function", "name": "view_image", "parameters": {"type": "object"}}
    ]}))
    .await;
    assert_eq!(
        roles(&t.chat),
        ["user", "assistant", "tool", "tool", "assistant", "tool"]
    );
    let assistant = &t.chat.messages[1];
    assert_eq!(text(assistant), "Listing.");
    let calls = assistant.tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id, "call_a");
    assert_eq!(calls[1].function.arguments, "{\"cmd\":\"pwd\"}");
    assert_eq!(t.chat.messages[2].tool_call_id.as_deref(), Some("call_a"));
    assert_eq!(text(&t.chat.messages[3]), "/work");
    assert!(
        t.chat.messages[5].has_images(),
        "tool output images are kept"
    );
    assert_eq!(t.chat.messages[4].content, None);
    let tools = t.chat.tools.as_ref().unwrap();
    assert!(tools[0].function.extra.is_empty(), "strict is dropped");
    assert_eq!(
        tools[0].function.parameters,
        Some(json!({"type": "object"}))
    );
}

#[tokio::test]
async fn namespace_tools_are_flattened_and_built_ins_dropped() {
    let t = translate_body(json!({"model": "m", "input": "go", "tools": [
        {"type": "function", "name": "exec_command"},
        {"type": "namespace", "name": "multi_agent_v1", "description": "agents", "tools": [
            {"type": "function", "name": "spawn_agent", "description": "Spawn.", "parameters": {"type": "object"}},
            {"type": "function", "name": "wait"}
        ]},
        {"type": "web_search", "external_web_access": false},
        {"type": "web_search_preview"},
        {"type": "file_search"},
        {"type": "computer_use_preview"},
        {"type": "image_generation"},
        {"type": "code_interpreter"},
        {"type": "local_shell"},
        {"type": "mcp", "server_label": "x"},
        {"type": "custom", "name": "apply_patch"}
    ], "tool_choice": {"type": "function", "name": "spawn_agent", "namespace": "multi_agent_v1"}}))
    .await;
    let names: Vec<_> = t
        .chat
        .tools
        .iter()
        .flatten()
        .map(|t| t.function.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "exec_command",
            "multi_agent_v1__spawn_agent",
            "multi_agent_v1__wait"
        ]
    );
    assert_eq!(
        t.tool_names().original("multi_agent_v1__spawn_agent"),
        ("spawn_agent", Some("multi_agent_v1"))
    );
    assert_eq!(
        t.chat.extra["tool_choice"],
        json!({"type": "function", "function": {"name": "multi_agent_v1__spawn_agent"}})
    );
    for kind in [
        "web_search",
        "web_search_preview",
        "file_search",
        "computer_use_preview",
        "image_generation",
        "code_interpreter",
        "local_shell",
        "mcp",
        "custom",
    ] {
        assert!(t.dropped.contains(&format!("tool:{kind}")), "{kind}");
    }
    // The response echoes the tools as the client sent them.
    assert_eq!(t.context.echo.tools.len(), 11);
}

#[tokio::test]
async fn built_in_tools_keep_their_metric_label_and_client_named_ones_do_not() {
    let t = translate_body(json!({"model": "m", "input": "hi", "tools": [
        {"type": "web_search"}, {"type": "mcp"}, {"type": "brand_new_tool"}
    ]}))
    .await;
    let labels: Vec<_> = t
        .dropped
        .as_slice()
        .iter()
        .map(|name| (name.as_ref(), matches!(name, Cow::Borrowed(_))))
        .collect();
    assert_eq!(
        labels,
        [
            ("tool:web_search", true),
            ("tool:mcp", true),
            ("tool:brand_new_tool", false)
        ],
        "a proxy-chosen name is its own label, a client-built one counts as `other`"
    );
}

#[tokio::test]
async fn namespaced_history_calls_use_the_flattened_name() {
    let t = translate_body(json!({"model": "m", "tools": [
        {"type": "namespace", "name": "multi_agent_v1", "tools": [{"type": "function", "name": "spawn_agent"}]}
    ], "input": [
        {"type": "message", "role": "user", "content": "go"},
        {"type": "function_call", "call_id": "c1", "name": "spawn_agent", "namespace": "multi_agent_v1", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        {"type": "function_call", "call_id": "c2", "name": "multi_agent_v1__spawn_agent", "arguments": ""},
        {"type": "function_call_output", "call_id": "c2", "output": "ok"}
    ]}))
    .await;
    let call = |i: usize| t.chat.messages[i].tool_calls.as_ref().unwrap()[0].clone();
    assert_eq!(call(1).function.name, "multi_agent_v1__spawn_agent");
    assert_eq!(call(3).function.name, "multi_agent_v1__spawn_agent");
    assert_eq!(
        call(3).function.arguments,
        "{}",
        "empty arguments become {{}}"
    );
    assert_eq!(t.tool_names().len(), 1);
}

#[tokio::test]
async fn unknown_items_parts_and_roles_are_reported_not_refused() {
    let t = translate_body(json!({"model": "m", "input": [
        {"type": "message", "role": "user", "content": "q"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}},
        {"type": "foo"},
        {"type": "custom_tool_call", "call_id": "x", "name": "apply_patch", "input": "..."},
        {"type": "message", "role": "latest_reminder", "content": [{"type": "input_text", "text": "r"}, {"type": "hologram"}]},
        {"type": "item_reference", "id": "msg_unknown"}
    ], "top_k": 3, "prompt_cache_key": "k", "client_metadata": {"a": 1}, "include": ["reasoning.encrypted_content"],
       "truncation": "auto", "service_tier": "auto", "metadata": {"m": "1"}, "user": "u", "store": false}))
    .await;
    for name in [
        "item:web_search_call",
        "item:foo",
        "item:custom_tool_call",
        "role:latest_reminder",
        "part:hologram",
        "item:item_reference",
        "field:top_k",
    ] {
        assert!(t.dropped.contains(name), "{name} in {}", t.dropped);
    }
    assert_eq!(t.dropped.as_slice().len(), 7, "{}", t.dropped);
    assert_eq!(roles(&t.chat), ["user", "user"]);
    assert!(t.chat.extra.is_empty(), "{:?}", t.chat.extra);
    assert!(!t.store());
    assert_eq!(t.context.echo.metadata, json!({"m": "1"}));
}

#[tokio::test]
async fn sampling_and_limits_are_carried() {
    let t = translate_body(json!({"model": "m", "input": "q", "stream": true,
        "tools": [{"type": "function", "name": "f"}],
        "tool_choice": "required", "parallel_tool_calls": true, "max_output_tokens": 512,
        "temperature": 0.2, "top_p": 0.9}))
    .await;
    assert!(t.chat.is_stream());
    assert_eq!(
        t.chat.stream_options.as_ref().unwrap().include_usage,
        Some(true)
    );
    assert_eq!(t.chat.extra["tool_choice"], "required");
    assert_eq!(t.chat.extra["parallel_tool_calls"], true);
    assert_eq!(t.chat.extra["max_tokens"], 512);
    assert_eq!(t.chat.extra["temperature"], 0.2);
    assert_eq!(t.chat.extra["top_p"], 0.9);
    assert!(t.dropped.is_empty(), "{}", t.dropped);

    // A choice that names a dropped or unknown tool is dropped and reported.
    let t = translate_body(json!({"model": "m", "input": "q",
        "tools": [{"type": "function", "name": "f"}, {"type": "web_search"}],
        "tool_choice": {"type": "function", "name": "web_search"}}))
    .await;
    assert!(!t.chat.extra.contains_key("tool_choice"));
    assert!(t.dropped.contains("field:tool_choice"));
    // A flattened name works as a choice too.
    let t = translate_body(json!({"model": "m", "input": "q",
        "tools": [{"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "go"}]}],
        "tool_choice": {"type": "function", "name": "ns__go"}}))
    .await;
    assert_eq!(t.chat.extra["tool_choice"]["function"]["name"], "ns__go");
    // Without tools, no tool_choice or parallel_tool_calls is sent.
    let t = translate_body(
        json!({"model": "m", "input": "q", "tool_choice": "auto", "parallel_tool_calls": false}),
    )
    .await;
    assert!(t.chat.extra.is_empty());
    assert!(t.chat.tools.is_none());
}

#[tokio::test]
async fn reasoning_effort_and_text_format_follow_the_options() {
    let body = json!({"model": "m", "input": "q", "reasoning": {"effort": "high", "summary": "auto"},
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": true}, "verbosity": "low"}});
    let off = translate_body(body.clone()).await;
    assert!(!off.chat.extra.contains_key("reasoning_effort"));
    assert!(!off.chat.extra.contains_key("response_format"));
    assert!(off.dropped.contains("field:reasoning.effort"));
    assert!(off.dropped.contains("field:text.format"));
    assert!(off.context.reasoning_summary);
    assert_eq!(
        off.context.echo.reasoning,
        json!({"effort": "high", "summary": "auto"})
    );
    assert_eq!(off.context.echo.text["verbosity"], "low");

    let options = ResponsesConfig::default()
        .with_pass_reasoning_effort(true)
        .with_response_format(true);
    let on = translate_with(body, &options).await;
    assert_eq!(on.chat.extra["reasoning_effort"], "high");
    assert_eq!(
        on.chat.extra["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}})
    );
    assert!(on.dropped.is_empty(), "{}", on.dropped);
    let t = translate_with(
        json!({"model": "m", "input": "q", "text": {"format": {"type": "json_object"}}}),
        &options,
    )
    .await;
    assert_eq!(
        t.chat.extra["response_format"],
        json!({"type": "json_object"})
    );
    let t = translate_with(
        json!({"model": "m", "input": "q", "text": {"format": {"type": "text"}}}),
        &ResponsesConfig::default(),
    )
    .await;
    assert!(t.dropped.is_empty());
}

#[tokio::test]
async fn replayed_reasoning_reaches_the_next_assistant_message_only_when_asked() {
    let codec = ReasoningCodec::new("k");
    let body = json!({"model": "hy3", "input": [
        {"type": "message", "role": "user", "content": "q"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": codec.seal("think first")},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "r"},
        {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-foreign"},
        {"type": "message", "role": "assistant", "content": "done"},
        {"type": "reasoning", "summary": [], "encrypted_content": codec.seal("orphan")},
        {"type": "message", "role": "user", "content": "next"}
    ]});
    let on = translate_with(
        body.clone(),
        &ResponsesConfig::default()
            .with_reasoning_history(true)
            .with_codec(codec.clone()),
    )
    .await;
    assert_eq!(
        roles(&on.chat),
        ["user", "assistant", "tool", "assistant", "user"]
    );
    assert_eq!(
        on.chat.messages[1].extra["reasoning_content"],
        "think first"
    );
    assert!(
        !on.chat.messages[3].extra.contains_key("reasoning_content"),
        "foreign reasoning is ignored"
    );
    assert!(on.dropped.is_empty(), "{}", on.dropped);

    let off = translate_with(body, &ResponsesConfig::default().with_codec(codec)).await;
    assert!(off
        .chat
        .messages
        .iter()
        .all(|m| !m.extra.contains_key("reasoning_content")));
    assert!(off.dropped.is_empty(), "dropped silently");
}

#[tokio::test]
async fn previous_response_id_prepends_the_stored_turn() {
    let store = MemoryResponseStore::default();
    let options = ResponsesConfig::default();
    let first = to_chat(
        &request(json!({"model": "m", "instructions": "Be kind.", "input": [
            {"type": "message", "role": "developer", "content": "Repo rules."},
            {"type": "message", "role": "user", "content": "list files"}
        ], "tools": [{"type": "function", "name": "exec_command"}]})),
        &options,
        Some(&store),
    )
    .await
    .unwrap();
    let completion: crate::chat::ChatCompletion = serde_json::from_value(json!({"choices": [{
        "message": {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}}
        ]}, "finish_reason": "tool_calls"}]}))
    .unwrap();
    let response = from_completion(&completion, &first.context);
    assert_eq!(response.status, ResponseStatus::Completed);
    let first_id = response.id.clone();
    let call_item_id = response.output[0].id().to_owned();
    store.put(first.to_stored(response)).await.unwrap();

    let second = to_chat(
        &request(
            json!({"model": "m", "previous_response_id": first_id, "input": [
                {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"}
            ]}),
        ),
        &options,
        Some(&store),
    )
    .await
    .unwrap();
    assert_eq!(roles(&second.chat), ["system", "user", "assistant", "tool"]);
    assert_eq!(
        text(&second.chat.messages[0]),
        "Repo rules.",
        "instructions are not carried over"
    );
    assert_eq!(
        second.chat.messages[2].tool_calls.as_ref().unwrap()[0]
            .function
            .name,
        "exec_command"
    );
    assert_eq!(second.input_items.len(), 4);
    assert_eq!(
        second.context.echo.previous_response_id.as_deref(),
        Some(first_id.as_str())
    );

    // An item reference to the stored call resolves too.
    let third = to_chat(
        &request(json!({"model": "m", "input": [
            {"type": "message", "role": "user", "content": "again"},
            {"type": "item_reference", "id": call_item_id},
            {"type": "function_call_output", "call_id": "call_1", "output": "b.txt"}
        ]})),
        &options,
        Some(&store),
    )
    .await
    .unwrap();
    assert_eq!(roles(&third.chat), ["user", "assistant", "tool"]);
    assert!(third.dropped.is_empty(), "{}", third.dropped);

    // Unknown id: OpenAI's 404, with or without a store.
    for store in [Some(&store as &dyn ResponseStore), None] {
        let err = to_chat(
            &request(json!({"model": "m", "previous_response_id": "resp_nope", "input": "x"})),
            &options,
            store,
        )
        .await
        .unwrap_err();
        assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
        assert_eq!(err.code(), "previous_response_not_found");
    }
}

#[tokio::test]
async fn malformed_known_items_are_400s_naming_the_field() {
    let cases = [
        (
            json!([{"type": "function_call", "name": "f"}]),
            "input[0].call_id",
        ),
        (
            json!([{"type": "function_call", "call_id": "c"}]),
            "input[0].name",
        ),
        (
            json!([{"type": "function_call_output", "output": "x"}]),
            "input[0].call_id",
        ),
        (json!(["just a string"]), "input[0]"),
        (
            json!([{"type": "message", "role": "user", "content": 5}]),
            "input[0].content",
        ),
    ];
    for (input, param) in cases {
        let err = error_of(json!({"model": "m", "input": input})).await;
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{param}");
        assert_eq!(err.param(), Some(param));
    }
    let err = error_of(json!({"model": "m", "input": "x", "tools": [{"type": "function"}]})).await;
    assert_eq!(err.param(), Some("tools[0].name"));
    for body in [json!({"model": "m"}), json!({"model": "m", "input": []})] {
        let err = error_of(body).await;
        assert_eq!(err.param(), Some("input"));
    }
}

#[tokio::test]
async fn bodies_parse_leniently() {
    let t = translate_body(json!({"model": "m", "input": "x", "brand_new_field": {"a": 1}})).await;
    assert_eq!(t.dropped.as_slice(), ["field:brand_new_field"]);
    let config = ResponsesConfig::default();
    let err = to_chat(b"{not json", &config, None).await.unwrap_err();
    assert_eq!(err.code(), "invalid_json");
    let err = to_chat(br#"{"model":"m","temperature":"hot"}"#, &config, None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
    assert_eq!(err.code(), "invalid_request");
    assert_eq!(err.param(), Some("temperature"));
}

#[test]
fn to_chat_is_send() {
    fn assert_send<T: Send>(_: T) {}
    let store = MemoryResponseStore::default();
    let config = ResponsesConfig::default();
    assert_send(to_chat(b"{}", &config, Some(&store as &dyn ResponseStore)));
}

#[tokio::test]
async fn reasoning_between_text_and_a_call_joins_the_same_assistant_message() {
    let codec = ReasoningCodec::new("k");
    let t = translate_with(
        json!({"model": "hy3", "input": [
            {"type": "message", "role": "user", "content": "q"},
            {"type": "message", "role": "assistant", "content": "Let me look."},
            {"type": "reasoning", "summary": [], "encrypted_content": codec.seal("ls first")},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "r"}
        ]}),
        &ResponsesConfig::default()
            .with_reasoning_history(true)
            .with_codec(codec),
    )
    .await;
    assert_eq!(roles(&t.chat), ["user", "assistant", "tool"]);
    let assistant = &t.chat.messages[1];
    assert_eq!(text(assistant), "Let me look.");
    assert_eq!(assistant.extra["reasoning_content"], "ls first");
    assert_eq!(assistant.tool_calls.as_ref().unwrap().len(), 1);
}

/// Every item and part shape the reader takes, in one request (what Codex and the SDKs send,
/// and the odd ones).
#[tokio::test]
async fn every_item_and_part_shape_is_read() {
    let codec = ReasoningCodec::new("s");
    let sealed = codec.seal("earlier thought");
    let config = ResponsesConfig::default()
        .with_reasoning_history(true)
        .with_codec(codec);
    let body = json!({
        "model": "gpt-5", "store": false, "stream": true, "instructions": "Be brief.",
        "temperature": 0.2, "max_output_tokens": 50, "parallel_tool_calls": false,
        "reasoning": {"effort": "low", "summary": "auto"}, "text": {"verbosity": "low"},
        "metadata": {"k": "v"}, "user": "u", "prompt_cache_key": "p", "unknown_field": 1,
        "tool_choice": {"type": "function", "name": "shell"},
        "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object"}},
                  {"type": "namespace", "name": "ns", "tools": [{"name": "a.b"}]},
                  {"type": "web_search"}],
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Rules."}]},
            {"role": "user", "content": [{"type": "input_text", "text": "Look"}, "plain",
                {"type": "input_image", "image_url": "https://x/y.png", "detail": "high"},
                {"type": "input_image", "image_url": {"url": "https://x/z.png"}, "detail": "auto"},
                {"type": "mystery"}, {"text": "no type"}]},
            {"type": "reasoning", "encrypted_content": sealed, "summary": []},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "On it."},
                {"type": "refusal", "refusal": "no"}, {"type": "input_image", "image_url": "https://x/a.png"}]},
            {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{\"cmd\":\"ls\"}"},
            {"type": "function_call", "id": "c2", "name": "b", "namespace": "ns", "arguments": {"z": 1}},
            {"type": "function_call", "call_id": "c3", "name": "made_up", "arguments": ""},
            {"type": "function_call_output", "call_id": "c1", "output": "a\nb"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "x"}]},
            {"type": "function_call_output", "call_id": "c3", "output": null},
            {"type": "function_call_output", "call_id": "c4"},
            {"type": "web_search_call", "id": "w"},
            {"role": "critic", "content": "hm"},
            {"type": "message", "role": "user", "content": null},
            {"id": "x"}
        ]
    });
    let t = translate_with(body.clone(), &config).await;
    assert_eq!(
        roles(&t.chat),
        [
            "system",
            "user",
            "assistant",
            "tool",
            "tool",
            "tool",
            "tool",
            "user",
            "user"
        ]
    );
    assert_eq!(text(&t.chat.messages[0]), "Be brief.\n\nRules.");
    let Some(Content::Parts(parts)) = &t.chat.messages[1].content else {
        panic!("parts expected: {:?}", t.chat.messages[1]);
    };
    assert_eq!(parts.len(), 4);
    assert_eq!(parts[0].text(), Some("Look"));
    assert_eq!(parts[1].text(), Some("plain"));
    assert_eq!(
        parts[2].image_url(),
        Some(&ImageUrl {
            url: "https://x/y.png".into(),
            detail: Some("high".into())
        })
    );
    assert_eq!(
        parts[3].image_url(),
        Some(&ImageUrl {
            url: "https://x/z.png".into(),
            detail: None
        })
    );
    let assistant = &t.chat.messages[2];
    assert_eq!(text(assistant), "On it.\nno");
    assert_eq!(assistant.extra["reasoning_content"], "earlier thought");
    let calls = assistant.tool_calls.as_ref().unwrap();
    let ids: Vec<_> = calls.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["c1", "c2", "c3"]);
    assert_eq!(calls[0].function.name, "shell");
    assert_eq!(calls[0].function.arguments, "{\"cmd\":\"ls\"}");
    assert_eq!(
        t.tool_names().original(&calls[1].function.name),
        ("b", Some("ns"))
    );
    assert_eq!(calls[1].function.arguments, "{\"z\":1}");
    assert_eq!(calls[2].function.name, "made_up");
    assert_eq!(calls[2].function.arguments, "{}");
    let outputs: Vec<_> = t.chat.messages[3..7]
        .iter()
        .map(|m| (m.tool_call_id.as_deref().unwrap(), text(m)))
        .collect();
    assert_eq!(
        outputs,
        [
            ("c1", "a\nb".to_owned()),
            ("c2", "x".to_owned()),
            ("c3", String::new()),
            ("c4", String::new())
        ]
    );
    assert_eq!(text(&t.chat.messages[7]), "hm");
    assert_eq!(t.chat.messages[8].content, None);
    assert_eq!(
        t.dropped.as_slice(),
        [
            "tool:web_search",
            "part:mystery",
            "part:unknown",
            "part:input_image",
            "item:web_search_call",
            "role:critic",
            "item:unknown",
            "field:reasoning.effort",
            "field:unknown_field"
        ]
    );
    assert_eq!(
        t.chat.extra["tool_choice"],
        json!({"type": "function", "function": {"name": "shell"}})
    );
    assert_eq!(t.chat.extra["parallel_tool_calls"], false);
    assert_eq!(t.chat.extra["max_tokens"], 50);
    assert_eq!(t.chat.tools.as_ref().unwrap().len(), 2);
    assert!(t.chat.is_stream());
    assert!(
        !t.store() && t.input_items.is_empty(),
        "store: false keeps nothing"
    );
    assert!(t.context.reasoning_summary);
    assert_eq!(t.context.model, "gpt-5");
    assert_eq!(t.context.echo.tools.len(), 3);
    assert_eq!(t.context.echo.metadata, json!({"k": "v"}));
    assert_eq!(t.context.echo.user.as_deref(), Some("u"));
    assert_eq!(
        t.context.echo.text,
        json!({"verbosity": "low", "format": {"type": "text"}})
    );

    // Without reasoning history the sealed reasoning is dropped silently; the rest is the same.
    let off = translate_body(body).await;
    assert!(off
        .chat
        .messages
        .iter()
        .all(|m| !m.extra.contains_key("reasoning_content")));
    assert_eq!(off.dropped, t.dropped);
    assert_eq!(roles(&off.chat), roles(&t.chat));
}

/// The shapes at the edges: each read as the translation has always read it.
#[tokio::test]
async fn odd_shapes_are_read_or_refused_by_name() {
    let with = |input: Value| json!({"model": "m", "store": false, "input": input});
    // A part that is not an object nor a string is reported; an object output is sent as its
    // `content`, or as JSON.
    let t = translate_body(with(json!([{"role": "user", "content": [5, "a"]}]))).await;
    assert_eq!(text(&t.chat.messages[0]), "a");
    assert_eq!(t.dropped.as_slice(), ["part:unknown"]);
    let t = translate_body(with(json!([
        {"type": "function_call", "call_id": "c", "name": "f"},
        {"type": "function_call_output", "call_id": "c", "output": {"content": "x"}},
        {"type": "function_call", "call_id": "d", "name": "f"},
        {"type": "function_call_output", "call_id": "d", "output": {"rows": 2}},
        {"type": "function_call", "call_id": "e", "name": "f"},
        {"type": "function_call_output", "call_id": "e", "output": 7}
    ])))
    .await;
    let outputs: Vec<_> = t
        .chat
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .map(text)
        .collect();
    assert_eq!(outputs, ["x", "{\"rows\":2}", "7"]);
    // A `call_id` that is there but not a string is not replaced by `id`.
    let err = error_of(with(
        json!([{"type": "function_call", "call_id": null, "id": "c", "name": "f"}]),
    ))
    .await;
    assert_eq!(err.param(), Some("input[0].call_id"));
    // An image with neither a URL nor a file id, and one whose URL object has no `url`.
    for image_url in [Value::Null, json!({"href": "x"}), json!(5)] {
        let err = error_of(with(json!([{"role": "user", "content": [
            {"type": "input_image", "image_url": image_url}]}])))
        .await;
        assert_eq!(err.param(), Some("input[0].content[0]"));
        assert!(err.to_string().contains("needs an image_url"), "{err}");
    }
    // An item reference without a store is dropped; with nothing else the request still goes.
    let t = translate_body(with(json!([{"type": "item_reference", "id": "msg_1"}]))).await;
    assert!(t.chat.messages.is_empty());
    assert_eq!(t.dropped.as_slice(), ["item:item_reference"]);
    // Blank model, an input that is neither a string nor a list.
    let err = error_of(json!({"model": " ", "input": "hi"})).await;
    assert_eq!(err.param(), Some("model"));
    let err = error_of(json!({"model": "m", "input": {"role": "user"}})).await;
    assert_eq!(err.param(), Some("input"));
    assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn wrong_types_and_duplicate_keys_are_400s_naming_the_field() {
    let config = ResponsesConfig::default();
    let cases: [(&[u8], &str); 6] = [
        (br#"{"model": "a", "model": "b", "input": "x"}"#, "model"),
        (
            br#"{"model": "m", "input": "x", "reasoning": {"effort": 5}}"#,
            "reasoning.effort",
        ),
        (
            br#"{"model": "m", "input": "x", "tools": {"a": 1}}"#,
            "tools",
        ),
        (br#"{"model": "m", "input": "x", "text": "json"}"#, "text"),
        (
            br#"{"model": "m", "input": "x", "stream": "yes"}"#,
            "stream",
        ),
        (
            br#"{"model": "m", "input": "x", "max_output_tokens": -1}"#,
            "max_output_tokens",
        ),
    ];
    for (body, param) in cases {
        let err = to_chat(body, &config, None).await.unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{param}");
        assert_eq!(err.code(), "invalid_request", "{param}");
        assert_eq!(err.param(), Some(param), "{err}");
    }
    let duplicates: [&[u8]; 3] = [
        br#"{"model": "m", "input": "x", "model": "n"}"#,
        br#"{"model": "m", "input": [{"role": "user", "role": "assistant", "content": "hi"}]}"#,
        br#"{"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": "a", "text": "b"}]}]}"#,
    ];
    for body in duplicates {
        let err = to_chat(body, &config, None).await.unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains("duplicate field"), "{err}");
    }
    let err = to_chat(duplicates[2], &config, None).await.unwrap_err();
    assert!(
        err.param()
            .is_some_and(|p| p.starts_with("input[0].content[0]")),
        "{:?}",
        err.param()
    );
    // Not an object at all.
    let err = to_chat(b"[1]", &config, None).await.unwrap_err();
    assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
    assert_eq!(err.param(), None);
}

#[tokio::test]
async fn a_stored_turn_keeps_the_items_as_sent() {
    let store = MemoryResponseStore::default();
    let config = ResponsesConfig::default();
    let first = to_chat(
        &request(json!({"model": "m", "input": [
            {"type": "message", "id": "msg_client1", "role": "user", "status": "completed",
             "content": [{"type": "input_text", "text": "hi", "annotations": []}]}
        ]})),
        &config,
        Some(&store),
    )
    .await
    .unwrap();
    assert_eq!(
        first.input_items,
        [
            json!({"type": "message", "id": "msg_client1", "role": "user", "status": "completed",
             "content": [{"type": "input_text", "text": "hi", "annotations": []}]})
        ]
    );
    let completion: crate::chat::ChatCompletion = serde_json::from_value(json!({"choices": [{
        "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]}))
    .unwrap();
    let response = from_completion(&completion, &first.context);
    let id = response.id.clone();
    store.put(first.to_stored(response)).await.unwrap();
    // The stored items are read again through the same types: the replay is the same turn.
    let next = to_chat(
        &request(json!({"model": "m", "previous_response_id": id, "input": "and?"})),
        &config,
        Some(&store),
    )
    .await
    .unwrap();
    assert_eq!(roles(&next.chat), ["user", "assistant", "user"]);
    assert_eq!(text(&next.chat.messages[0]), "hi");
    assert_eq!(text(&next.chat.messages[1]), "hello");
    assert_eq!(next.input_items.len(), 3);
    assert_eq!(
        next.input_items[2],
        json!({"type": "message", "role": "user", "content": "and?"})
    );
}
