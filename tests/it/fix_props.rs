//! Property tests of the fixer: arbitrary OpenAI-valid conversations (any role order, empty
//! contents, tool chains, developer/system anywhere, prefills, images, 0–100 messages) come
//! out acceptable to the mock's validator, unchanged by a second fix, with every tool-call id,
//! every non-empty user text and image, and the order of messages kept.

use hunyuan_proxy::chat::{ChatRequest, Content, ContentPart, Message, Role};
use hunyuan_proxy::fix::{fix_request, FixConfig, Rule};
use hunyuan_proxy::mock::{validate, MockPolicy};
use proptest::prelude::*;
use serde_json::{json, Value};

/// One generated piece of a conversation.
#[derive(Debug, Clone)]
enum Item {
    System(Blank),
    Developer(Blank),
    User(Blank, u8),
    Assistant(Blank),
    /// An assistant turn with calls and (some of) their results.
    ToolRound {
        calls: u8,
        answered: u8,
        blank: bool,
    },
    /// A tool result that answers nothing.
    OrphanTool(Blank),
}

/// How a message's content is written.
#[derive(Debug, Clone, Copy)]
enum Blank {
    Text,
    Empty,
    Spaces,
    Null,
    EmptyParts,
    Parts,
}

fn blank() -> impl Strategy<Value = Blank> {
    prop_oneof![
        6 => Just(Blank::Text),
        1 => Just(Blank::Empty),
        1 => Just(Blank::Spaces),
        1 => Just(Blank::Null),
        1 => Just(Blank::EmptyParts),
        2 => Just(Blank::Parts),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        1 => blank().prop_map(Item::System),
        1 => blank().prop_map(Item::Developer),
        5 => (blank(), 0u8..3).prop_map(|(b, images)| Item::User(b, images)),
        4 => blank().prop_map(Item::Assistant),
        3 => (1u8..4, 0u8..4, any::<bool>())
            .prop_map(|(calls, answered, blank)| Item::ToolRound { calls, answered, blank }),
        1 => blank().prop_map(Item::OrphanTool),
    ]
}

const TOOLS: [&str; 3] = ["get_weather", "fs.read", "search web"];

/// Builds the conversation; texts are unique markers such as `<u7>` so they can be traced.
fn build(items: &[Item], vision: bool) -> ChatRequest {
    let mut messages = Vec::new();
    let mut n = 0usize;
    let mut next = |prefix: &str| {
        n += 1;
        format!("<{prefix}{n}>")
    };
    let content = |b: Blank, text: String, images: u8, vision: bool| -> Option<Content> {
        let mut parts: Vec<ContentPart> = Vec::new();
        let text = match b {
            Blank::Text | Blank::Parts => text,
            Blank::Spaces => " ".into(),
            _ => String::new(),
        };
        match b {
            Blank::Null => {}
            Blank::EmptyParts => {}
            Blank::Parts => parts.push(ContentPart::text_part(text.clone())),
            _ if images > 0 && vision => parts.push(ContentPart::text_part(text.clone())),
            _ => {}
        }
        if vision {
            for i in 0..images {
                parts.push(
                    serde_json::from_value(json!({"type": "image_url",
                        "image_url": {"url": format!("https://img.example/{text}{i}.png")}}))
                    .unwrap(),
                );
            }
        }
        match b {
            Blank::Null => None,
            Blank::EmptyParts | Blank::Parts => Some(Content::Parts(parts)),
            _ if !parts.is_empty() => Some(Content::Parts(parts)),
            _ => Some(Content::Text(text)),
        }
    };
    let mut call_no = 0usize;
    for item in items {
        match *item {
            Item::System(b) => messages.push(msg(Role::System, content(b, next("s"), 0, vision))),
            Item::Developer(b) => {
                messages.push(msg(Role::Developer, content(b, next("d"), 0, vision)))
            }
            Item::User(b, images) => {
                messages.push(msg(Role::User, content(b, next("u"), images, vision)))
            }
            Item::Assistant(b) => {
                messages.push(msg(Role::Assistant, content(b, next("a"), 0, false)))
            }
            Item::ToolRound {
                calls,
                answered,
                blank,
            } => {
                let text = if blank { None } else { Some(next("a")) };
                let mut a = msg(Role::Assistant, text.map(Content::Text));
                let ids: Vec<String> = (0..calls)
                    .map(|_| {
                        call_no += 1;
                        format!("call_{call_no}")
                    })
                    .collect();
                a.tool_calls = Some(
                    ids.iter()
                        .enumerate()
                        .map(|(i, id)| {
                            serde_json::from_value(json!({"id": id, "type": "function",
                                "function": {"name": TOOLS[i % 3], "arguments": "{\"q\":1}"}}))
                            .unwrap()
                        })
                        .collect(),
                );
                messages.push(a);
                for id in ids.iter().take(answered as usize) {
                    let mut t = msg(Role::Tool, Some(Content::Text(next("t"))));
                    t.tool_call_id = Some(id.clone());
                    messages.push(t);
                }
            }
            Item::OrphanTool(b) => {
                let mut t = msg(Role::Tool, content(b, next("o"), 0, false));
                t.tool_call_id = Some("call_orphan".into());
                messages.push(t);
            }
        }
    }
    let tools = (!vision).then(|| {
        TOOLS
            .iter()
            .map(|name| {
                serde_json::from_value(json!({"type": "function",
                    "function": {"name": name, "strict": true, "parameters": {"type": "object"}}}))
                .unwrap()
            })
            .collect()
    });
    ChatRequest {
        model: if vision {
            "hunyuan-vision"
        } else {
            "hunyuan-2.0-instruct-20251111"
        }
        .into(),
        messages,
        tools,
        ..Default::default()
    }
}

fn msg(role: Role, content: Option<Content>) -> Message {
    let mut m = Message::text(role, "");
    m.content = content;
    m
}

fn text_of(m: &Message) -> String {
    m.content
        .as_ref()
        .map(Content::joined_text)
        .unwrap_or_default()
}

fn images_of(m: &Message) -> Vec<String> {
    match &m.content {
        Some(Content::Parts(parts)) => parts
            .iter()
            .filter_map(|p| p.image_url().map(|i| i.url.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

fn call_ids(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().flatten().map(|c| c.id.clone()))
        .collect()
}

/// Markers (`<u3>`) with one of the given prefixes, in order of appearance.
fn markers(messages: &[Message], prefixes: &str) -> Vec<String> {
    let mut out = Vec::new();
    for m in messages {
        let text = text_of(m);
        let mut rest = text.as_str();
        while let Some(start) = rest.find(['<']) {
            let Some(end) = rest[start..].find('>') else {
                break;
            };
            let marker = &rest[start..start + end + 1];
            if marker[1..].starts_with(|c| prefixes.contains(c)) {
                out.push(marker.to_owned());
            }
            rest = &rest[start + end + 1..];
        }
    }
    out
}

fn conversation() -> impl Strategy<Value = (Vec<Item>, bool)> {
    (prop::collection::vec(item(), 0..100), any::<bool>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn fixed_conversations_pass_the_legacy_validator((items, vision) in conversation()) {
        let mut chat = build(&items, vision);
        fix_request(&mut chat, &FixConfig::default()).unwrap();
        let body = serde_json::to_value(&chat).unwrap();
        if let Err(rejection) = validate(&body, MockPolicy::Legacy) {
            prop_assert!(false, "{rejection}\n{body:#}");
        }
        // Idempotent.
        let before = chat.clone();
        let again = fix_request(&mut chat, &FixConfig::default()).unwrap();
        prop_assert!(again.rules.is_empty(), "second fix fired {:?}", again.rules);
        prop_assert_eq!(chat, before);
    }

    #[test]
    fn fixed_conversations_pass_the_tokenhub_validator((items, vision) in conversation()) {
        let mut chat = build(&items, vision);
        fix_request(&mut chat, &FixConfig::tokenhub()).unwrap();
        let body = serde_json::to_value(&chat).unwrap();
        if let Err(rejection) = validate(&body, MockPolicy::TokenHub) {
            prop_assert!(false, "{rejection}\n{body:#}");
        }
        let before = chat.clone();
        fix_request(&mut chat, &FixConfig::tokenhub()).unwrap();
        prop_assert_eq!(chat, before);
    }

    #[test]
    fn nothing_is_lost_or_reordered((items, vision) in conversation()) {
        let input = build(&items, vision);
        let mut chat = input.clone();
        // Without the length rule nothing may be dropped.
        let config = FixConfig::default().with_rule(Rule::Length, false);
        fix_request(&mut chat, &config).unwrap();
        let body = serde_json::to_value(&chat).unwrap();
        // (The 40-message limit is the length rule's job; check the rest.)
        if chat.messages.len() <= 40 {
            prop_assert!(validate(&body, MockPolicy::Legacy).is_ok());
        }
        prop_assert_eq!(call_ids(&chat.messages), call_ids(&input.messages));
        let tool_ids = |ms: &[Message]| -> Vec<String> {
            ms.iter().filter_map(|m| m.tool_call_id.clone()).filter(|id| id != "call_orphan").collect()
        };
        prop_assert_eq!(tool_ids(&chat.messages), tool_ids(&input.messages));
        for prefix in ["u", "a", "t", "o", "s", "d"] {
            prop_assert_eq!(
                markers(&chat.messages, prefix),
                markers(&input.messages, prefix),
                "markers {}", prefix
            );
        }
        let urls = |ms: &[Message]| -> Vec<String> { ms.iter().flat_map(images_of).collect() };
        prop_assert_eq!(urls(&chat.messages), urls(&input.messages));
        // Markers of every kind keep their relative order across kinds, too.
        prop_assert_eq!(markers(&chat.messages, "uato"), markers(&input.messages, "uato"));
    }
}

#[test]
fn markers_are_found() {
    let m = vec![Message::text(Role::User, "<u1>\n\n<a2> x <u3>")];
    assert_eq!(markers(&m, "u"), ["<u1>", "<u3>"]);
    assert_eq!(markers(&m, "ua"), ["<u1>", "<a2>", "<u3>"]);
    let _: Value = json!(null);
}

mod stream {
    use bytes::Bytes;
    use futures_util::FutureExt;
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};
    use hunyuan_proxy::chat::{SseEvent, SseParser};
    use hunyuan_proxy::fix::{FixBody, ResponsePlan};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// Splits `text` at the given char positions.
    fn pieces(text: &str, mut cuts: Vec<usize>) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        cuts.retain(|&c| c < chars.len());
        cuts.sort_unstable();
        cuts.dedup();
        let mut out = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([chars.len()]) {
            out.push(chars[start..cut].iter().collect());
            start = cut;
        }
        out
    }

    /// The Hunyuan stream of `contents` ending with `finish`, cut into frames at byte offsets.
    fn stream_bytes(contents: &[String], finish: &str, frame_cuts: &[usize]) -> Vec<Bytes> {
        let chunk = |content: &str, finish: Option<&str>| {
            SseEvent::encode_json(
                &json!({"id": "x", "object": "chat.completion.chunk", "created": 1,
                "model": "m", "note": "n", "choices": [{"index": 0,
                "delta": {"role": "assistant", "content": content, "reasoning_content": ""},
                "finish_reason": finish}]}),
            )
        };
        let mut all: Vec<u8> = Vec::new();
        for c in contents {
            all.extend_from_slice(&chunk(c, None));
        }
        all.extend_from_slice(&chunk("", Some(finish)));
        all.extend_from_slice(&SseEvent::encode("[DONE]"));
        let mut cuts: Vec<usize> = frame_cuts.iter().map(|c| c % all.len()).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut frames = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([all.len()]) {
            frames.push(Bytes::copy_from_slice(&all[start..cut]));
            start = cut;
        }
        frames
    }

    fn run(frames: Vec<Bytes>, plan: ResponsePlan) -> (String, Vec<Value>) {
        let body = StreamBody::new(futures_util::stream::iter(
            frames
                .into_iter()
                .map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b))),
        ));
        let out = FixBody::stream(body, plan)
            .collect()
            .now_or_never()
            .unwrap()
            .unwrap()
            .to_bytes();
        let mut parser = SseParser::new();
        parser.push(&out);
        let mut text = String::new();
        let mut chunks = Vec::new();
        while let Some(event) = parser.next_event() {
            if event.is_done() {
                continue;
            }
            let chunk: Value = serde_json::from_str(&event.data).unwrap();
            for choice in chunk["choices"].as_array().unwrap() {
                text.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
            }
            chunks.push(chunk);
        }
        (text, chunks)
    }

    proptest! {
        #[test]
        fn a_trailing_stop_string_is_cut_however_the_stream_is_split(
            text in "[ab é]{0,30}",
            stop in "[ab é]{1,4}",
            cuts in prop::collection::vec(0usize..40, 0..8),
            frame_cuts in prop::collection::vec(any::<usize>(), 0..12),
        ) {
            let plan = ResponsePlan { stop: vec![stop.clone()], drop_note: true, ..Default::default() };
            // Hunyuan kept the stop string: the answer ends with it.
            let full = format!("{text}{stop}");
            let (got, chunks) = run(stream_bytes(&pieces(&full, cuts.clone()), "stop", &frame_cuts), plan.clone());
            prop_assert_eq!(&got, &text);
            prop_assert!(chunks.iter().all(|c| c.get("note").is_none()));
            // Without a stop finish nothing is cut, however much looked like a stop string.
            let (got, _) = run(stream_bytes(&pieces(&full, cuts), "length", &frame_cuts), plan);
            prop_assert_eq!(got, full);
        }
    }
}

mod configs {
    use super::{build, conversation};
    use hunyuan_proxy::fix::{fix_request, FixConfig, FixPolicy, PrefillMode, Rule};
    use proptest::prelude::*;

    fn config() -> impl Strategy<Value = FixConfig> {
        (
            any::<bool>(),
            prop::collection::vec(prop::option::of(any::<bool>()), Rule::ALL.len()),
            2usize..50,
            any::<bool>(),
        )
            .prop_map(|(tokenhub, switches, max, fold)| {
                let mut config = FixConfig::default()
                    .with_policy(if tokenhub {
                        FixPolicy::TokenHub
                    } else {
                        FixPolicy::Legacy
                    })
                    .with_max_messages(max)
                    .with_prefill(if fold {
                        PrefillMode::FoldIntoUser
                    } else {
                        PrefillMode::ContinueTurn
                    });
                for (rule, switch) in Rule::ALL.iter().zip(switches) {
                    if let Some(on) = switch {
                        config = config.with_rule(*rule, on);
                    }
                }
                config
            })
    }

    proptest! {
        /// Any combination of switches: no panic, and fixing twice changes nothing more.
        #[test]
        fn any_rule_combination_is_safe_and_idempotent(
            (items, vision) in conversation(),
            config in config(),
        ) {
            let mut chat = build(&items, vision);
            fix_request(&mut chat, &config).unwrap();
            let before = chat.clone();
            fix_request(&mut chat, &config).unwrap();
            prop_assert_eq!(chat, before);
        }
    }
}
