//! A bounded fuzz harness (proptest) over the request parser and the FixLayer's rules:
//! arbitrary bytes and arbitrary JSON shaped like a chat request never panic; the parser either
//! accepts the request, and what it accepted survives a serialize/parse round trip unchanged,
//! or answers a 4xx; an accepted request, once fixed, either passes the mock Hunyuan's
//! validator or is refused with a 4xx.

use hunyuan_proxy::chat::{parse_chat, parse_completion, ChatRequest};
use hunyuan_proxy::fix::{fix_request, FixConfig};
use hunyuan_proxy::mock::{validate, MockPolicy};
use proptest::prelude::*;
use serde_json::{json, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("user"),
            Just("assistant"),
            Just("tool"),
            Just("system"),
            Just("developer"),
            Just("text"),
            Just("image_url"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("role".to_owned()),
                    Just("content".to_owned()),
                    Just("type".to_owned()),
                    Just("text".to_owned()),
                    Just("image_url".to_owned()),
                    Just("url".to_owned()),
                    Just("tool_calls".to_owned()),
                    Just("id".to_owned()),
                    Just("function".to_owned()),
                    Just("name".to_owned()),
                    Just("arguments".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_request() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just(json!("hunyuan-turbos-latest")), arb_json()],
        prop::collection::vec(arb_json(), 0..8),
        arb_json(),
        prop::option::of(arb_json()),
    )
        .prop_map(|(model, messages, stream, tools)| {
            let mut body = json!({"model": model, "messages": messages, "stream": stream});
            if let Some(tools) = tools {
                body["tools"] = tools;
            }
            body
        })
}

/// Requests that parse: any role order, empty and odd contents, tool chains with odd names,
/// and the sampling fields Hunyuan is strict about, with values in and out of range.
fn arb_parseable_request() -> impl Strategy<Value = Value> {
    let content = prop_oneof![
        Just(Value::Null),
        Just(json!("")),
        Just(json!("  ")),
        "[a-z ]{1,12}".prop_map(Value::String),
        Just(json!([{"type": "text", "text": "part"}])),
        Just(json!([])),
    ];
    let message = (
        prop_oneof![
            Just("system"),
            Just("developer"),
            Just("user"),
            Just("assistant"),
            Just("tool")
        ],
        content,
        prop::option::of(prop_oneof![Just("call_a"), Just("call_b")]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(role, content, call_id, with_calls, with_reasoning)| {
            let mut m = json!({"role": role, "content": content});
            if role == "tool" {
                if let Some(id) = call_id {
                    m["tool_call_id"] = json!(id);
                }
            }
            if role == "assistant" && with_calls {
                m["tool_calls"] = json!([{"id": call_id.unwrap_or("call_a"), "type": "function",
                    "function": {"name": "fs.read file", "arguments": "{}"}}]);
            }
            if role == "assistant" && with_reasoning {
                m["reasoning_content"] = json!("thinking");
            }
            m
        });
    (
        prop::collection::vec(message, 1..60),
        prop::option::of(-1.0f64..3.0),
        prop::option::of(-0.5f64..1.5),
        prop::option::of(0u32..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(messages, temperature, top_p, n, penalties, tools)| {
            let mut body = json!({"model": "hunyuan-turbos-latest", "messages": messages});
            if let Some(t) = temperature {
                body["temperature"] = json!(t);
            }
            if let Some(p) = top_p {
                body["top_p"] = json!(p);
            }
            if let Some(n) = n {
                body["n"] = json!(n);
            }
            if penalties {
                body["frequency_penalty"] = json!(0);
                body["presence_penalty"] = json!(0.5);
                body["parallel_tool_calls"] = json!(true);
            }
            if tools {
                body["tools"] = json!([{"type": "function", "function": {
                    "name": "fs.read file", "strict": true, "parameters": {"type": "object"}}}]);
            }
            body
        })
}

fn check(bytes: &[u8]) {
    match parse_chat(bytes) {
        Ok(chat) => {
            let again: ChatRequest =
                serde_json::from_slice(&serde_json::to_vec(&chat).unwrap()).unwrap();
            assert_eq!(again, chat, "round trip changed the request");
            check_fixed(chat);
        }
        Err(err) => {
            assert!(err.status().is_client_error(), "{err:?} is not a 4xx");
            let envelope: Value = serde_json::from_slice(&err.to_body()).unwrap();
            assert!(envelope["error"]["message"].is_string());
        }
    }
    if let Err(err) = parse_completion(bytes) {
        assert!(err.status().is_client_error(), "{err:?} is not a 4xx");
    }
}

/// After the fixer a request is either refused with a 4xx or accepted by the mock's validator.
/// Images on a text model are the cascade's business, not the fixer's, so such requests are
/// only checked for not panicking.
fn check_fixed(mut chat: ChatRequest) {
    let has_images = chat.has_images();
    match fix_request(&mut chat, &FixConfig::default()) {
        Ok(_) => {
            if has_images {
                return;
            }
            let body = serde_json::to_value(&chat).unwrap();
            if let Err(rejection) = validate(&body, MockPolicy::Legacy) {
                panic!(
                    "fixed request refused by the validator: {} {:?}\n{body}",
                    rejection.status,
                    rejection.message()
                );
            }
        }
        Err(err) => assert!(err.status().is_client_error(), "{err:?} is not a 4xx"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check(&bytes);
    }

    #[test]
    fn arbitrary_chat_shaped_json_is_accepted_or_a_4xx(body in arb_request()) {
        check(&serde_json::to_vec(&body).unwrap());
    }

    #[test]
    fn parseable_requests_are_fixed_into_valid_ones_or_a_4xx(body in arb_parseable_request()) {
        let bytes = serde_json::to_vec(&body).unwrap();
        let chat = parse_chat(&bytes).expect("the strategy makes parseable requests");
        check_fixed(chat);
    }

    #[test]
    fn mutated_valid_requests_are_accepted_or_a_4xx(
        cut in 0usize..200,
        flip in 0usize..200,
        byte in any::<u8>(),
    ) {
        let valid = serde_json::to_vec(&json!({
            "model": "hunyuan-turbos-latest",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "ok"}
            ],
            "stream": true
        }))
        .unwrap();
        let mut bytes = valid.clone();
        let flip = flip % bytes.len();
        bytes[flip] = byte;
        check(&bytes);
        check(&valid[..cut.min(valid.len())]);
    }
}
