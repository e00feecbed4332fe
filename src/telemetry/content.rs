//! Message contents on an attempt span, only when the operator opts in
//! (`otel_capture_content`): `gen_ai.input.messages` and `gen_ai.output.messages` in the JSON
//! shape of the GenAI semantic conventions 1.41 (`gen-ai-input-messages.json`,
//! `gen-ai-output-messages.json`: `[{"role", "parts": [{"type": "text", "content"}, {"type":
//! "reasoning", "content"}, {"type": "tool_call", "id", "name", "arguments"}, {"type":
//! "tool_call_response", "id", "response"}, …]}]`, an output message with its
//! `finish_reason`). An image URL is a `uri` part (`modality`, `uri`); an inline image (a
//! `data:` URL) is a `blob` part with its `modality` and `mime_type` but without the
//! conventions' `content`: the bytes of a screenshot are no attribute value.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// `gen_ai.input.messages` of a chat request (the JSON body sent upstream).
pub(super) fn input_messages(request: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Request {
        messages: Vec<Value>,
    }
    let request: Request = serde_json::from_slice(request).ok()?;
    let messages: Vec<Value> = request.messages.iter().map(|m| message(m, None)).collect();
    serde_json::to_string(&messages).ok()
}

/// `gen_ai.output.messages` of a whole chat completion: one message per choice.
pub(super) fn output_messages(answer: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Choice {
        #[serde(default)]
        message: Value,
        finish_reason: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        choices: Vec<Choice>,
    }
    let answer: Answer = serde_json::from_slice(answer).ok()?;
    let messages: Vec<Value> = answer
        .choices
        .iter()
        .map(|c| message(&c.message, Some(c.finish_reason.as_deref().unwrap_or(""))))
        .collect();
    serde_json::to_string(&messages).ok()
}

/// One OpenAI chat message in the conventions' shape.
fn message(m: &Value, finish_reason: Option<&str>) -> Value {
    let role = m.get("role").and_then(Value::as_str).unwrap_or("assistant");
    let mut parts = Vec::new();
    if role == "tool" {
        parts.push(json!({
            "type": "tool_call_response",
            "id": m.get("tool_call_id"),
            "response": m.get("content"),
        }));
    } else {
        // Hunyuan's and DeepSeek's thinking, sent back with an assistant turn or answered.
        if let Some(Value::String(thought)) = m.get("reasoning_content") {
            if !thought.is_empty() {
                parts.push(json!({"type": "reasoning", "content": thought}));
            }
        }
        match m.get("content") {
            Some(Value::String(text)) if !text.is_empty() => {
                parts.push(json!({"type": "text", "content": text}));
            }
            Some(Value::Array(items)) => parts.extend(items.iter().map(part)),
            _ => {}
        }
        for call in m
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let function = call.get("function");
            parts.push(tool_call(
                call.get("id").and_then(Value::as_str),
                function
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                function
                    .and_then(|f| f.get("arguments"))
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            ));
        }
    }
    let mut out = Map::new();
    out.insert("role".into(), role.into());
    out.insert("parts".into(), parts.into());
    if let Some(reason) = finish_reason {
        out.insert("finish_reason".into(), reason.into());
    }
    Value::Object(out)
}

/// One content part: text as it is, an image as a `uri` (a URL) or a `blob` without its bytes
/// (a `data:` URL), any other type by its name.
fn part(item: &Value) -> Value {
    let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => json!({"type": "text", "content": item.get("text")}),
        "image_url" => {
            let url = item
                .get("image_url")
                .and_then(|i| i.get("url"))
                .and_then(Value::as_str)
                .unwrap_or("");
            match url.strip_prefix("data:") {
                Some(data) => {
                    let mime = data.split([';', ',']).next().unwrap_or("");
                    json!({"type": "blob", "modality": "image", "mime_type": mime})
                }
                None => json!({"type": "uri", "modality": "image", "uri": url}),
            }
        }
        other => json!({ "type": other }),
    }
}

/// A `tool_call` part; `arguments` as JSON when they are JSON.
fn tool_call(id: Option<&str>, name: &str, arguments: &str) -> Value {
    let arguments = serde_json::from_str::<Value>(arguments).unwrap_or_else(|_| arguments.into());
    json!({"type": "tool_call", "id": id, "name": name, "arguments": arguments})
}

/// The `data:` lines of a streamed answer as they come in chunks (a line may be cut between
/// two), put together into its output messages.
#[derive(Debug, Default)]
pub(super) struct Lines {
    /// The start of a line the last chunk cut.
    partial: Vec<u8>,
    output: StreamedOutput,
}

impl Lines {
    /// Takes in one chunk of the stream.
    pub(super) fn chunk(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            if self.partial.is_empty() {
                self.line(&rest[..end]);
            } else {
                let mut joined = std::mem::take(&mut self.partial);
                joined.extend_from_slice(&rest[..end]);
                self.line(&joined);
            }
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
    }

    fn line(&mut self, line: &[u8]) {
        if let Some(data) = line.strip_prefix(b"data:") {
            self.output.read(data.trim_ascii());
        }
    }

    /// `gen_ai.output.messages` of what the stream said (`None`: it said nothing).
    pub(super) fn messages(&mut self) -> Option<String> {
        let partial = std::mem::take(&mut self.partial);
        self.line(&partial);
        self.output.messages()
    }
}

/// The output of a streamed answer, put together from its chunks' deltas.
#[derive(Debug, Default)]
pub(super) struct StreamedOutput {
    /// By choice index.
    choices: BTreeMap<u64, StreamedChoice>,
}

#[derive(Debug, Default)]
struct StreamedChoice {
    role: Option<String>,
    /// `reasoning_content` deltas.
    reasoning: String,
    text: String,
    /// By tool call index: id, name, arguments so far.
    tool_calls: BTreeMap<u64, (Option<String>, String, String)>,
    finish_reason: Option<String>,
}

impl StreamedOutput {
    /// Takes in one chunk (the JSON of a `data:` line); anything else is ignored.
    pub(super) fn read(&mut self, data: &[u8]) {
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        for choice in chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let out = self.choices.entry(index).or_default();
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                out.finish_reason = Some(reason.to_owned());
            }
            let Some(delta) = choice.get("delta") else {
                continue;
            };
            if let Some(role) = delta.get("role").and_then(Value::as_str) {
                out.role = Some(role.to_owned());
            }
            if let Some(thought) = delta.get("reasoning_content").and_then(Value::as_str) {
                out.reasoning.push_str(thought);
            }
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                out.text.push_str(text);
            }
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let at = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                let entry = out.tool_calls.entry(at).or_default();
                if let Some(id) = call.get("id").and_then(Value::as_str) {
                    entry.0 = Some(id.to_owned());
                }
                let function = call.get("function");
                if let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str) {
                    entry.1.push_str(name);
                }
                if let Some(args) = function
                    .and_then(|f| f.get("arguments"))
                    .and_then(Value::as_str)
                {
                    entry.2.push_str(args);
                }
            }
        }
    }

    /// `gen_ai.output.messages` of what the stream said (`None`: it said nothing).
    pub(super) fn messages(&self) -> Option<String> {
        if self.choices.is_empty() {
            return None;
        }
        let messages: Vec<Value> = self
            .choices
            .values()
            .map(|c| {
                let mut parts = Vec::new();
                if !c.reasoning.is_empty() {
                    parts.push(json!({"type": "reasoning", "content": c.reasoning}));
                }
                if !c.text.is_empty() {
                    parts.push(json!({"type": "text", "content": c.text}));
                }
                for (id, name, arguments) in c.tool_calls.values() {
                    parts.push(tool_call(id.as_deref(), name, arguments));
                }
                json!({
                    "role": c.role.as_deref().unwrap_or("assistant"),
                    "parts": parts,
                    "finish_reason": c.finish_reason.as_deref().unwrap_or(""),
                })
            })
            .collect();
        serde_json::to_string(&messages).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_become_the_conventions_messages() {
        let request = br#"{"model":"m","messages":[
            {"role":"system","content":"Be brief."},
            {"role":"user","content":[{"type":"text","text":"What is this?"},
                {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
                "function":{"name":"look","arguments":"{\"x\":1}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"a cat"}]}"#;
        let messages: Value = serde_json::from_str(&input_messages(request).unwrap()).unwrap();
        assert_eq!(
            messages,
            json!([
                {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
                {"role": "user", "parts": [{"type": "text", "content": "What is this?"},
                    {"type": "blob", "modality": "image", "mime_type": "image/png"}]},
                {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1",
                    "name": "look", "arguments": {"x": 1}}]},
                {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1",
                    "response": "a cat"}]}
            ])
        );
    }

    #[test]
    fn answers_whole_and_streamed_become_output_messages() {
        let whole = br#"{"id":"x","choices":[{"index":0,"finish_reason":"stop",
            "message":{"role":"assistant","content":"Hi there"}}]}"#;
        let expected = json!([{"role": "assistant", "finish_reason": "stop",
            "parts": [{"type": "text", "content": "Hi there"}]}]);
        let got: Value = serde_json::from_str(&output_messages(whole).unwrap()).unwrap();
        assert_eq!(got, expected);

        let mut streamed = StreamedOutput::default();
        assert_eq!(streamed.messages(), None);
        streamed.read(br#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}"#);
        streamed.read(br#"{"choices":[{"index":0,"delta":{"content":" there"}}]}"#);
        streamed.read(br#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#);
        streamed.read(b"[DONE]");
        let got: Value = serde_json::from_str(&streamed.messages().unwrap()).unwrap();
        assert_eq!(got, expected);
    }

    #[test]
    fn thinking_is_a_reasoning_part_in_and_out() {
        let request = br#"{"messages":[{"role":"user","content":"2+2?"},
            {"role":"assistant","content":"4","reasoning_content":"Two and two."},
            {"role":"user","content":"And 3+3?"}]}"#;
        let messages: Value = serde_json::from_str(&input_messages(request).unwrap()).unwrap();
        assert_eq!(
            messages[1],
            json!({"role": "assistant", "parts": [
                {"type": "reasoning", "content": "Two and two."},
                {"type": "text", "content": "4"}]})
        );
        let whole = br#"{"choices":[{"finish_reason":"stop","message":{"role":"assistant",
            "content":"6","reasoning_content":"Three and three."}}]}"#;
        let expected = json!([{"role": "assistant", "finish_reason": "stop", "parts": [
            {"type": "reasoning", "content": "Three and three."},
            {"type": "text", "content": "6"}]}]);
        let got: Value = serde_json::from_str(&output_messages(whole).unwrap()).unwrap();
        assert_eq!(got, expected);
        let mut streamed = StreamedOutput::default();
        streamed.read(br#"{"choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"Three and "}}]}"#);
        streamed.read(br#"{"choices":[{"index":0,"delta":{"reasoning_content":"three."}}]}"#);
        streamed
            .read(br#"{"choices":[{"index":0,"delta":{"content":"6"},"finish_reason":"stop"}]}"#);
        let got: Value = serde_json::from_str(&streamed.messages().unwrap()).unwrap();
        assert_eq!(got, expected);
    }

    #[test]
    fn stream_lines_cut_between_chunks_are_read_whole() {
        let mut lines = Lines::default();
        lines.chunk(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi");
        lines.chunk(b" there\"},\"finish_reason\":\"stop\"}]}\r\n\r\ndata: [DONE]");
        let got: Value = serde_json::from_str(&lines.messages().unwrap()).unwrap();
        assert_eq!(
            got,
            json!([{"role": "assistant", "finish_reason": "stop",
                "parts": [{"type": "text", "content": "Hi there"}]}])
        );
    }

    #[test]
    fn streamed_tool_calls_are_put_together() {
        let mut streamed = StreamedOutput::default();
        streamed.read(br#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"look","arguments":"{\"x\""}}]}}]}"#);
        streamed.read(br#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"}]}"#);
        let got: Value = serde_json::from_str(&streamed.messages().unwrap()).unwrap();
        assert_eq!(
            got,
            json!([{"role": "assistant", "finish_reason": "tool_calls", "parts": [
                {"type": "tool_call", "id": "c1", "name": "look", "arguments": {"x": 1}}]}])
        );
    }
}
