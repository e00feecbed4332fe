//! A bounded fuzz pass (proptest) over every ingress parser through the whole HTTP stack
//! (chat, completions, Messages and its count_tokens, Responses): arbitrary bytes and arbitrary JSON
//! shaped like each dialect's request never make the proxy panic or answer 5xx; streamed
//! answers are read to their end.

use crate::common::TestProxy;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// One proxy (and mock) for every case, on a runtime of its own.
fn harness() -> &'static (tokio::runtime::Runtime, TestProxy) {
    static HARNESS: OnceLock<(tokio::runtime::Runtime, TestProxy)> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let proxy = runtime.block_on(TestProxy::start());
        (runtime, proxy)
    })
}

/// POSTs `body` to `path` and fails on a 5xx (a panic in the stack is a 500), reading the
/// whole answer so that a stream that breaks shows too.
fn post(path: &str, content_type: &str, body: Vec<u8>) -> Result<(), TestCaseError> {
    let (runtime, t) = harness();
    let (status, text) = runtime.block_on(async {
        let response = t.post_raw(path, content_type, body).await;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (status, text)
    });
    prop_assert!(!status.is_server_error(), "{path}: {status} {text}");
    if status.is_success() && (text.starts_with("data:") || text.starts_with("event:")) {
        prop_assert!(!text.contains("\"upstream_error\""), "{path}: {text}");
    }
    Ok(())
}

fn arb_json(
    keys: &'static [&'static str],
    words: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-3.0f64..3.0).prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(words).prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(keys).prop_map(str::to_owned),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const CHAT_KEYS: &[&str] = &[
    "role",
    "content",
    "type",
    "text",
    "image_url",
    "url",
    "tool_calls",
    "id",
    "function",
    "name",
    "arguments",
    "tool_call_id",
    "reasoning_content",
];
const CHAT_WORDS: &[&str] = &[
    "user",
    "assistant",
    "tool",
    "system",
    "developer",
    "text",
    "image_url",
    "function",
    "data:image/png;base64,iVBORw0KGgo=",
];
const MESSAGES_KEYS: &[&str] = &[
    "role",
    "content",
    "type",
    "text",
    "source",
    "media_type",
    "data",
    "id",
    "name",
    "input",
    "tool_use_id",
    "is_error",
    "thinking",
    "signature",
    "cache_control",
];
const MESSAGES_WORDS: &[&str] = &[
    "user",
    "assistant",
    "text",
    "image",
    "tool_use",
    "tool_result",
    "thinking",
    "base64",
    "image/png",
    "iVBORw0KGgo=",
    "ephemeral",
];

fn chat_body() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(json!("hunyuan-turbos-latest")),
            arb_json(CHAT_KEYS, CHAT_WORDS)
        ],
        prop::collection::vec(arb_json(CHAT_KEYS, CHAT_WORDS), 0..6),
        prop_oneof![
            Just(json!(true)),
            Just(json!(false)),
            arb_json(CHAT_KEYS, CHAT_WORDS)
        ],
        prop::option::of(arb_json(CHAT_KEYS, CHAT_WORDS)),
    )
        .prop_map(|(model, messages, stream, tools)| {
            let mut body = json!({"model": model, "messages": messages, "stream": stream});
            if let Some(tools) = tools {
                body["tools"] = tools;
            }
            body
        })
}

fn completions_body() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(json!("hunyuan-turbos-latest")),
            arb_json(CHAT_KEYS, CHAT_WORDS)
        ],
        prop_oneof![
            ".{0,20}".prop_map(Value::String),
            arb_json(CHAT_KEYS, CHAT_WORDS)
        ],
        prop_oneof![
            Just(json!(true)),
            Just(json!(false)),
            arb_json(CHAT_KEYS, CHAT_WORDS)
        ],
        prop::option::of(arb_json(CHAT_KEYS, CHAT_WORDS)),
    )
        .prop_map(|(model, prompt, stream, extra)| {
            let mut body = json!({"model": model, "prompt": prompt, "stream": stream});
            if let Some(extra) = extra {
                body["max_tokens"] = extra;
            }
            body
        })
}

const RESPONSES_KEYS: &[&str] = &[
    "type",
    "role",
    "content",
    "text",
    "image_url",
    "call_id",
    "name",
    "arguments",
    "output",
    "id",
    "encrypted_content",
    "summary",
    "tools",
    "namespace",
    "parameters",
];
const RESPONSES_WORDS: &[&str] = &[
    "message",
    "user",
    "assistant",
    "developer",
    "system",
    "input_text",
    "output_text",
    "input_image",
    "function_call",
    "function_call_output",
    "reasoning",
    "item_reference",
    "function",
    "namespace",
    "web_search",
    "data:image/png;base64,iVBORw0KGgo=",
];

fn responses_body() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(json!("hunyuan-turbos-latest")),
            arb_json(RESPONSES_KEYS, RESPONSES_WORDS)
        ],
        prop_oneof![
            ".{0,12}".prop_map(Value::String),
            prop::collection::vec(arb_json(RESPONSES_KEYS, RESPONSES_WORDS), 0..6)
                .prop_map(Value::Array),
            arb_json(RESPONSES_KEYS, RESPONSES_WORDS),
        ],
        prop::option::of(arb_json(RESPONSES_KEYS, RESPONSES_WORDS)),
        prop_oneof![
            Just(json!(true)),
            Just(json!(false)),
            arb_json(RESPONSES_KEYS, RESPONSES_WORDS)
        ],
        prop::option::of(arb_json(RESPONSES_KEYS, RESPONSES_WORDS)),
    )
        .prop_map(|(model, input, instructions, stream, tools)| {
            let mut body =
                json!({"model": model, "input": input, "stream": stream, "store": false});
            if let Some(instructions) = instructions {
                body["instructions"] = instructions;
            }
            if let Some(tools) = tools {
                body["tools"] = tools;
            }
            body
        })
}

/// Well-formed Responses inputs with odd item mixes, so that the answer path (and the stream
/// translator) runs too.
fn plausible_responses() -> impl Strategy<Value = Value> {
    let item = prop_oneof![
        (
            prop_oneof![Just("user"), Just("assistant"), Just("developer")],
            ".{0,10}"
        )
            .prop_map(|(role, t)| json!({"type": "message", "role": role, "content": t})),
        Just(
            json!({"type": "function_call", "call_id": "call_1", "name": "exec_command",
            "arguments": "{\"cmd\":\"ls\"}"})
        ),
        ".{0,10}".prop_map(
            |t| json!({"type": "function_call_output", "call_id": "call_1", "output": t})
        ),
        Just(json!({"type": "reasoning", "summary": [], "encrypted_content": "not-ours"})),
        Just(json!({"type": "unknown_item_type"})),
    ];
    (prop::collection::vec(item, 1..5), any::<bool>()).prop_map(|(input, stream)| {
        json!({"model": "hunyuan-turbos-latest", "input": input, "stream": stream, "store": false,
            "tools": [{"type": "function", "name": "exec_command",
                "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}]})
    })
}

fn messages_body() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(json!("claude-sonnet-4-5")),
            arb_json(MESSAGES_KEYS, MESSAGES_WORDS)
        ],
        prop::collection::vec(arb_json(MESSAGES_KEYS, MESSAGES_WORDS), 0..6),
        prop::option::of(arb_json(MESSAGES_KEYS, MESSAGES_WORDS)),
        prop_oneof![
            Just(json!(true)),
            Just(json!(false)),
            arb_json(MESSAGES_KEYS, MESSAGES_WORDS)
        ],
        prop::option::of(arb_json(MESSAGES_KEYS, MESSAGES_WORDS)),
    )
        .prop_map(|(model, messages, system, stream, tools)| {
            let mut body = json!({
                "model": model, "max_tokens": 256, "messages": messages, "stream": stream,
            });
            if let Some(system) = system {
                body["system"] = system;
            }
            if let Some(tools) = tools {
                body["tools"] = tools;
            }
            body
        })
}

/// Well-formed Messages conversations with odd block mixes, so that the answer path (and
/// the stream translator) runs too, not only the refusals.
fn plausible_messages() -> impl Strategy<Value = Value> {
    let block = prop_oneof![
        ".{0,10}".prop_map(|t| json!({"type": "text", "text": t})),
        Just(
            json!({"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}})
        ),
        ".{0,10}"
            .prop_map(|t| json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": t})),
        Just(json!({"type": "thinking", "thinking": "hmm", "signature": "sig"})),
    ];
    let message = (
        prop_oneof![Just("user"), Just("assistant")],
        prop_oneof![
            ".{0,10}".prop_map(Value::String),
            prop::collection::vec(block, 0..3).prop_map(Value::Array),
        ],
    )
        .prop_map(|(role, content)| json!({"role": role, "content": content}));
    (prop::collection::vec(message, 1..5), any::<bool>()).prop_map(|(messages, stream)| {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": messages, "stream": stream})
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_never_a_5xx(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        route in prop::sample::select(&["/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/messages/count_tokens", "/v1/responses"][..]),
    ) {
        post(route, "application/json", bytes)?;
    }

    #[test]
    fn chat_shaped_json_is_never_a_5xx(body in chat_body()) {
        post("/v1/chat/completions", "application/json", body.to_string().into_bytes())?;
    }

    #[test]
    fn completions_shaped_json_is_never_a_5xx(body in completions_body()) {
        post("/v1/completions", "application/json", body.to_string().into_bytes())?;
    }

    #[test]
    fn messages_shaped_json_is_never_a_5xx(body in messages_body()) {
        post("/v1/messages", "application/json", body.to_string().into_bytes())?;
        post("/v1/messages/count_tokens", "application/json", body.to_string().into_bytes())?;
    }

    #[test]
    fn responses_shaped_json_is_never_a_5xx(body in responses_body()) {
        post("/v1/responses", "application/json", body.to_string().into_bytes())?;
    }

    #[test]
    fn plausible_responses_inputs_are_never_a_5xx(body in plausible_responses()) {
        post("/v1/responses", "application/json", body.to_string().into_bytes())?;
    }

    #[test]
    fn plausible_messages_conversations_are_never_a_5xx(body in plausible_messages()) {
        post("/v1/messages", "application/json", body.to_string().into_bytes())?;
    }
}
