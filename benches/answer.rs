//! What reading a chat answer costs: the canned ~450-byte answer of the server bench, a
//! tool-call answer with reasoning, and a stream chunk, each read into the crate's types
//! against the same shapes read by serde's derive with `#[serde(flatten)]` extra maps (what the
//! crate used before its one-pass reader), in the same run.
//!
//! Run with: `cargo bench --bench answer`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hunyuan_proxy::chat::{ChatChunk, ChatCompletion, FunctionCall, Usage};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::hint::black_box;

/// The server bench's canned answer (`scripts/bench-nginx.sh`).
const PLAIN: &str = r#"{"id":"3a3f0c1e0f8b4d6f9a2b7c5d1e4f6a8b","object":"chat.completion","created":1764200000,"model":"hunyuan-turbos-latest","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! I am Hunyuan. How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":42,"completion_tokens":13,"total_tokens":55},"note":"以上内容为AI生成，不代表开发者立场，请勿删除或修改本标记"}"#;

/// A thinking model's tool-call answer.
const TOOL: &str = r#"{"id":"a1","object":"chat.completion","created":1764200000,"model":"deepseek-v4-flash","system_fingerprint":"fp_1","choices":[{"index":0,"logprobs":null,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,"reasoning_content":"The user wants the files listed; call ls on the root first, then read the README.","tool_calls":[{"id":"call_00000000000000000001","type":"function","function":{"name":"ls","arguments":"{\"path\":\".\"}"}},{"id":"call_00000000000000000002","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"README.md\"}"}}]}}],"usage":{"prompt_tokens":420,"completion_tokens":61,"total_tokens":481}}"#;

/// One event's data of a Hunyuan stream.
const CHUNK: &str = r#"{"id":"3a3f0c1e","object":"chat.completion.chunk","created":1764200000,"model":"hunyuan-turbos-latest","choices":[{"index":0,"delta":{"role":"assistant","content":" small","reasoning_content":""},"finish_reason":null}],"note":"以上内容为AI生成，不代表开发者立场，请勿删除或修改本标记"}"#;

// The same shapes with serde's derive and flattened extra maps.
#[allow(dead_code)]
#[derive(Deserialize)]
struct FlatCompletion {
    #[serde(default)]
    id: String,
    #[serde(default)]
    object: String,
    #[serde(default)]
    created: u64,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<FlatChoice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct FlatChoice {
    #[serde(default)]
    index: u32,
    message: FlatMessage,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct FlatMessage {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<FlatCall>>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct FlatCall {
    id: String,
    #[serde(rename = "type", default)]
    kind: String,
    function: FunctionCall,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct FlatChunk {
    #[serde(default)]
    id: String,
    #[serde(default)]
    object: String,
    #[serde(default)]
    created: u64,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<FlatChunkChoice>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct FlatChunkChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: FlatDelta,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[allow(dead_code)]
#[derive(Deserialize, Default)]
struct FlatDelta {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

fn bench_answer(c: &mut Criterion) {
    for (name, json) in [("plain", PLAIN), ("tool", TOOL)] {
        let mut group = c.benchmark_group(format!("answer/{name}"));
        group.throughput(Throughput::Bytes(json.len() as u64));
        group.bench_function("one_pass", |b| {
            b.iter(|| serde_json::from_str::<ChatCompletion>(black_box(json)).unwrap())
        });
        group.bench_function("derive_flatten", |b| {
            b.iter(|| serde_json::from_str::<FlatCompletion>(black_box(json)).unwrap())
        });
        group.finish();
    }
    let mut group = c.benchmark_group("answer/chunk");
    group.throughput(Throughput::Bytes(CHUNK.len() as u64));
    group.bench_function("one_pass", |b| {
        b.iter(|| serde_json::from_str::<ChatChunk>(black_box(CHUNK)).unwrap())
    });
    group.bench_function("derive_flatten", |b| {
        b.iter(|| serde_json::from_str::<FlatChunk>(black_box(CHUNK)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_answer);
criterion_main!(benches);
