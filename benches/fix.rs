//! What the FixLayer costs: fixing a realistic agent conversation (typed structs already
//! parsed), and rewriting a Hunyuan event stream compared with passing it through.
//!
//! Run with: `cargo bench --bench fix`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures_util::FutureExt;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hunyuan_proxy::chat::{ChatRequest, SseEvent};
use hunyuan_proxy::fix::{fix_request, FixBody, FixConfig, ResponsePlan};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::hint::black_box;

/// A 50-message agent conversation the way Cline-style clients send it: system and developer
/// prompts, tool rounds with `null` content beside the calls, parallel calls, a user message
/// straight after tool results, penalties and `parallel_tool_calls`.
fn agent_conversation() -> ChatRequest {
    let mut messages = vec![
        json!({"role": "system", "content": "You are a coding agent. Use tools to inspect and edit files."}),
        json!({"role": "developer", "content": "Answer in English. Prefer small diffs."}),
        json!({"role": "user", "content": "The tests in crate foo fail after the last refactor; find out why and fix it."}),
    ];
    let mut call = 0;
    while messages.len() < 47 {
        call += 1;
        let id = format!("call_{call:020}");
        let parallel = call % 4 == 0;
        let mut calls = vec![
            json!({"id": id, "type": "function", "function": {"name": "read_file",
            "arguments": format!("{{\"path\":\"src/module_{call}.rs\"}}")}}),
        ];
        if parallel {
            calls.push(
                json!({"id": format!("{id}b"), "type": "function", "function": {"name": "search",
                "arguments": "{\"query\":\"fn parse\"}"}}),
            );
        }
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": calls}));
        messages.push(json!({"role": "tool", "tool_call_id": id,
            "content": "pub fn parse(input: &str) -> Result<Ast, Error> {\n    todo!()\n}\n".repeat(8)}));
        if parallel {
            messages.push(json!({"role": "tool", "tool_call_id": format!("{id}b"), "content": "src/lib.rs:12: fn parse"}));
        }
        if call % 5 == 0 {
            messages.push(json!({"role": "user", "content": "Also check the error type."}));
        }
    }
    messages
        .push(json!({"role": "assistant", "content": "I found the problem: `parse` is a stub."}));
    messages.push(json!({"role": "user", "content": "Great, fix it."}));
    messages.truncate(50);
    let body = json!({
        "model": "hunyuan-2.0-thinking-20251109",
        "messages": messages,
        "tools": [
            {"type": "function", "function": {"name": "read_file", "strict": true, "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}
        ],
        "temperature": 0.2,
        "presence_penalty": 0,
        "parallel_tool_calls": true,
        "stream": true,
    });
    let chat: ChatRequest = serde_json::from_value(body).unwrap();
    assert_eq!(chat.messages.len(), 50);
    chat
}

fn bench_fix_request(c: &mut Criterion) {
    let config = FixConfig::default();
    let chat = agent_conversation();
    let mut fixed = chat.clone();
    let report = fix_request(&mut fixed, &config).unwrap();
    eprintln!("rules fired on the agent conversation: {:?}", report.rules);

    let mut group = c.benchmark_group("fix_request");
    group.bench_function("agent_50_messages", |b| {
        b.iter_batched_ref(
            || chat.clone(),
            |chat| black_box(fix_request(chat, &config).unwrap()),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("agent_already_fixed", |b| {
        b.iter_batched_ref(
            || fixed.clone(),
            |chat| black_box(fix_request(chat, &config).unwrap()),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

const EVENTS: usize = 1000;

/// A Hunyuan stream: text word by word, with `note`, repeated `role` and `reasoning_content`
/// in every chunk, a tool call in the middle, `[DONE]` last; delivered a few events per frame.
fn hunyuan_stream() -> Vec<Bytes> {
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": "0123456789abcdef0123456789abcdef", "object": "chat.completion.chunk",
            "created": 1_764_000_000, "model": "hunyuan-2.0-instruct-20251111", "note": "以上内容为AI生成",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events: Vec<Bytes> = Vec::with_capacity(EVENTS);
    for i in 0..EVENTS - 4 {
        events.push(SseEvent::encode_json(&chunk(
            json!({"role": "assistant", "content": format!("word{i} "), "reasoning_content": ""}),
            None,
        )));
    }
    for args in ["", "{\"path\":\"src/lib.rs\"}"] {
        events.push(SseEvent::encode_json(&chunk(
            json!({"role": "assistant", "content": "", "reasoning_content": "", "tool_calls": [
                {"index": 0, "id": "call_abcdefghij0123456789", "type": "function",
                 "function": {"name": if args.is_empty() { "read_file" } else { "" }, "arguments": args}}]}),
            None,
        )));
    }
    events.push(SseEvent::encode_json(&chunk(
        json!({"role": "assistant", "content": "", "reasoning_content": ""}),
        Some("tool_calls"),
    )));
    events.push(SseEvent::encode("[DONE]"));
    assert_eq!(events.len(), EVENTS);
    // Frames of four events, as a network read would deliver them.
    events.chunks(4).map(|c| Bytes::from(c.concat())).collect()
}

/// The same stream already in OpenAI's shape: nothing for the fixer to do.
fn openai_stream() -> Vec<Bytes> {
    let mut events: Vec<Bytes> = (0..EVENTS - 1)
        .map(|i| {
            SseEvent::encode_json(&json!({"id": "x", "object": "chat.completion.chunk", "created": 1,
                "model": "m", "choices": [{"index": 0, "delta": {"content": format!("word{i} ")}, "finish_reason": null}]}))
        })
        .collect();
    events.push(SseEvent::encode("[DONE]"));
    events.chunks(4).map(|c| Bytes::from(c.concat())).collect()
}

type Frames =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn body_of(frames: &[Bytes]) -> Frames {
    let frames: Vec<_> = frames.iter().cloned().map(|b| Ok(Frame::data(b))).collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

fn drain<B: http_body::Body<Data = Bytes>>(body: B) -> usize
where
    B::Error: std::fmt::Debug,
{
    let collected = body.collect().now_or_never().unwrap().unwrap();
    collected.to_bytes().len()
}

fn bench_stream(c: &mut Criterion) {
    let plan = ResponsePlan {
        drop_note: true,
        tool_call_deltas: true,
        ..Default::default()
    };
    let hunyuan = hunyuan_stream();
    let openai = openai_stream();
    let mut group = c.benchmark_group("stream_1000_events");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("pass_through", |b| {
        b.iter_batched(|| body_of(&hunyuan), drain, BatchSize::SmallInput)
    });
    group.bench_function("fix_hunyuan_stream", |b| {
        b.iter_batched(
            || FixBody::stream(body_of(&hunyuan), plan.clone()),
            drain,
            BatchSize::SmallInput,
        )
    });
    group.bench_function("fix_openai_shaped_stream", |b| {
        b.iter_batched(
            || FixBody::stream(body_of(&openai), plan.clone()),
            drain,
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_fix_request, bench_stream);
criterion_main!(benches);
