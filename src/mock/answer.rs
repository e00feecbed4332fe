//! Deterministic answers: what the mock says to a valid request, non-streamed and streamed.

use super::validate::{decode_data_url, hex, is_vision_model};
use super::MockPolicy;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The `note` Hunyuan adds to every answer and every chunk.
pub(crate) const NOTE: &str = "以上内容为AI生成，不代表开发者立场，请勿删除或修改本标记";

/// A tool call the mock decided to make.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallAnswer {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// The mock's answer to one valid request, before it is shaped as JSON or SSE.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub id: String,
    pub model: String,
    pub content: String,
    pub reasoning: Option<String>,
    pub tool_call: Option<CallAnswer>,
    pub finish_reason: &'static str,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// TokenHub answers a streamed request with a usage chunk only when asked.
    pub usage_chunk: bool,
    /// TokenHub's usage details (`cached_tokens`, `reasoning_tokens`); `None` for Hunyuan.
    pub usage_details: Option<UsageDetails>,
}

/// TokenHub's `prompt_tokens_details.cached_tokens` and
/// `completion_tokens_details.reasoning_tokens`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct UsageDetails {
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
}

/// How a model answers, beyond the request: whether it describes the images it sees and whether
/// it thinks aloud (`reasoning_content`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Voice {
    pub sees_images: bool,
    pub reasons: bool,
}

/// Whether the mock gives `model` a `reasoning_content` (its name contains `thinking` or `t1`).
pub(crate) fn is_reasoning_model(model: &str) -> bool {
    model.contains("thinking") || model.contains("t1")
}

/// The text of a message's `content` (a string, or its text parts joined by newlines).
fn text_of(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn role_of(message: &Value) -> &str {
    message.get("role").and_then(Value::as_str).unwrap_or("")
}

/// A rough, deterministic token count: one token per four characters, at least one.
fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

/// `n` characters of `[a-z0-9]` derived from `digest`.
fn alnum(digest: &[u8], n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    digest
        .iter()
        .cycle()
        .take(n)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// One line per image of `message`: `Description of image <12 hex>: …`. The digest is over the
/// decoded bytes of a data URL and over the URL string of an http(s) URL (never fetched).
fn describe_images(message: &Value) -> Vec<String> {
    let Some(parts) = message.get("content").and_then(Value::as_array) else {
        return Vec::new();
    };
    parts
        .iter()
        .filter(|p| p.get("type").and_then(Value::as_str) == Some("image_url"))
        .filter_map(|p| match p.get("image_url") {
            Some(Value::Object(o)) => o.get("url").and_then(Value::as_str),
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        })
        .map(|url| match decode_data_url(url) {
            Some(bytes) => {
                let mime = url
                    .strip_prefix("data:")
                    .and_then(|r| r.split(';').next())
                    .unwrap_or("image");
                let digest = hex(&Sha256::digest(&bytes)[..6]);
                format!(
                    "Description of image {digest}: an inline {mime} picture of {} bytes.",
                    bytes.len()
                )
            }
            None => {
                let digest = hex(&Sha256::digest(url.as_bytes())[..6]);
                format!("Description of image {digest}: a remote picture (not fetched).")
            }
        })
        .collect()
}

/// The value written as `name=<value>` in `text`: the name at the start or after a character
/// that cannot be part of a name; the value runs to the end of the line, trailing spaces cut.
fn assigned_value<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    let pattern = format!("{name}=");
    text.match_indices(&pattern)
        .find(|(at, _)| {
            text[..*at]
                .chars()
                .next_back()
                .is_none_or(|c| !is_name_char(c))
        })
        .map(|(at, _)| {
            let value = &text[at + pattern.len()..];
            value[..value.find('\n').unwrap_or(value.len())].trim_end()
        })
}

/// Whether `c` can be part of a tool or property name.
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// The arguments the mock calls `tool` with: each required property gets a value of its
/// declared type; a string the value written as `name=<value>` in `steer` (the user text from
/// the `Use <tool>` that chose the tool on), else the last user text.
fn arguments_for(tool: &Value, user_text: &str, steer: Option<&str>) -> String {
    let params = tool.pointer("/function/parameters");
    let required = params
        .and_then(|p| p.get("required"))
        .and_then(Value::as_array);
    let mut args = Map::new();
    for name in required.into_iter().flatten().filter_map(Value::as_str) {
        let kind = params
            .and_then(|p| p.get("properties"))
            .and_then(|p| p.get(name))
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("string");
        let value = match kind {
            "integer" | "number" => json!(0),
            "boolean" => json!(false),
            "array" => json!([]),
            "object" => json!({}),
            "null" => Value::Null,
            _ => json!(steer
                .and_then(|text| assigned_value(text, name))
                .unwrap_or(user_text)),
        };
        args.insert(name.to_owned(), value);
    }
    Value::Object(args).to_string()
}

/// What the last user text asks of the mock.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Steer<'a> {
    /// Call this tool; the `&str` is the user text from the `Use` on.
    Tool(&'a Value, &'a str),
    /// Answer with text.
    NoTool,
}

fn tool_name(tool: &Value) -> &str {
    tool.pointer("/function/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The last `Use <name>` of `user_text` that names one of `tools` (the name followed by a
/// character that cannot be part of a name, or the end), or says `Use no tool`. The last one
/// wins, because Claude Code puts its `<system-reminder>` texts before the prompt.
fn steer<'a>(tools: &'a [Value], user_text: &'a str) -> Option<Steer<'a>> {
    let mut found = None;
    for (at, _) in user_text.match_indices("Use ") {
        let rest = &user_text[at + 4..];
        let names = |name: &str| {
            !name.is_empty()
                && rest
                    .strip_prefix(name)
                    .is_some_and(|after| after.chars().next().is_none_or(|c| !is_name_char(c)))
        };
        if names("no tool") {
            found = Some(Steer::NoTool);
        } else if let Some(tool) = tools.iter().find(|t| names(tool_name(t))) {
            found = Some(Steer::Tool(tool, &user_text[at..]));
        }
    }
    found
}

/// The tool the mock calls, if any, with the user text that steered it there: none when
/// `tool_choice` is `"none"`; the one `tool_choice` names; else the one the last user text
/// names with `Use <name>` (none for `Use no tool`, unless `tool_choice` is `"required"`);
/// else the first offered.
fn chosen_tool<'a>(body: &'a Value, user_text: &'a str) -> Option<(&'a Value, Option<&'a str>)> {
    let tools = body.get("tools")?.as_array()?;
    let by_text = |required: bool| match steer(tools, user_text) {
        Some(Steer::Tool(tool, from)) => Some((tool, Some(from))),
        Some(Steer::NoTool) if !required => None,
        _ => tools.first().map(|t| (t, None)),
    };
    match body.get("tool_choice") {
        Some(Value::String(s)) if s == "none" => None,
        Some(Value::String(s)) if s == "required" => by_text(true),
        Some(choice @ Value::Object(_)) => {
            let wanted = choice.pointer("/function/name").and_then(Value::as_str);
            tools
                .iter()
                .find(|t| t.pointer("/function/name").and_then(Value::as_str) == wanted)
                .or_else(|| tools.first())
                .map(|t| (t, None))
        }
        _ => by_text(false),
    }
}

/// How many characters of a tool message the answer after it quotes.
const TOOL_QUOTE_CHARS: usize = 200;

/// Cuts `content` at the first stop string: after it under the legacy policy (Hunyuan keeps
/// the stop string), before it under TokenHub (which cuts like OpenAI).
fn apply_stop(content: &mut String, body: &Value, policy: MockPolicy) {
    let stops: Vec<&str> = match body.get("stop") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let first = stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| content.find(s).map(|at| (at, s.len())))
        .min();
    if let Some((at, len)) = first {
        let end = match policy {
            MockPolicy::Legacy => at + len,
            MockPolicy::TokenHub => at,
        };
        content.truncate(end);
    }
}

/// The mock's deterministic answer to a request that passed validation, the model's voice
/// read from its name (see the [module docs](super)).
pub(crate) fn answer(body: &Value, policy: MockPolicy) -> Answer {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let voice = Voice {
        sees_images: is_vision_model(model),
        reasons: is_reasoning_model(model),
    };
    answer_as(body, policy, voice)
}

/// The mock's deterministic answer to a request that passed validation, in `voice`.
pub(crate) fn answer_as(body: &Value, policy: MockPolicy, voice: Voice) -> Answer {
    // Streamed or not, the same conversation gets the same ids.
    let mut conversation = body.clone();
    if let Some(obj) = conversation.as_object_mut() {
        obj.remove("stream");
        obj.remove("stream_options");
    }
    let digest = Sha256::digest(serde_json::to_vec(&conversation).unwrap_or_default());
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let messages: &[Value] = body
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let last = messages.last();
    let last_role = last.map(role_of).unwrap_or_default();
    let last_user = messages.iter().rev().find(|m| role_of(m) == "user");
    let user_text = last_user.map(text_of).unwrap_or_default();
    let echoed = match last {
        Some(m) if last_role == "user" => text_of(m),
        Some(m) if last_role == "tool" => text_of(m).chars().take(TOOL_QUOTE_CHARS).collect(),
        _ => user_text.clone(),
    };

    let mut tool_call = None;
    let mut content;
    let mut finish_reason = "stop";
    let images = last_user.map(describe_images).unwrap_or_default();
    if voice.sees_images && !images.is_empty() {
        content = images.join("\n");
    } else if let Some((tool, steered)) =
        chosen_tool(body, &user_text).filter(|_| last_role == "user")
    {
        let name = tool_name(tool).to_owned();
        tool_call = Some(CallAnswer {
            id: format!("call_{}", alnum(&digest[12..], 20)),
            arguments: arguments_for(tool, &user_text, steered),
            name: name.clone(),
        });
        content = format!("I will call {name} to answer this.");
        finish_reason = "tool_calls";
    } else {
        content = format!("Echo: {echoed}");
    }
    if tool_call.is_none() {
        apply_stop(&mut content, body, policy);
    }
    let reasoning = voice
        .reasons
        .then(|| format!("Thinking about: {user_text}"));

    let prompt_tokens = messages.iter().map(|m| tokens(&text_of(m))).sum();
    let completion_tokens = tokens(&content)
        + reasoning.as_deref().map(tokens).unwrap_or(0)
        + tool_call
            .as_ref()
            .map(|c| tokens(&c.arguments))
            .unwrap_or(0);
    let usage_chunk = policy == MockPolicy::TokenHub
        && body.pointer("/stream_options/include_usage") == Some(&Value::Bool(true));
    // TokenHub reports what its prefix cache served: here, every message before the last.
    let usage_details = (policy == MockPolicy::TokenHub).then(|| UsageDetails {
        cached_tokens: messages
            .iter()
            .take(messages.len().saturating_sub(1))
            .map(|m| tokens(&text_of(m)))
            .sum(),
        reasoning_tokens: reasoning.as_deref().map(tokens).unwrap_or(0),
    });
    Answer {
        id: hex(&digest[..16]),
        model,
        content,
        reasoning,
        tool_call,
        finish_reason,
        prompt_tokens,
        completion_tokens,
        usage_chunk,
        usage_details,
    }
}

impl Answer {
    /// The usage this answer reports.
    pub(crate) fn sent_usage(&self) -> super::SentUsage {
        let details = self.usage_details.unwrap_or(UsageDetails {
            cached_tokens: 0,
            reasoning_tokens: 0,
        });
        super::SentUsage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            cached_tokens: details.cached_tokens,
            reasoning_tokens: details.reasoning_tokens,
        }
    }

    fn usage(&self) -> Value {
        let mut usage = json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        });
        if let Some(details) = self.usage_details {
            usage["prompt_tokens_details"] = json!({"cached_tokens": details.cached_tokens});
            usage["completion_tokens_details"] =
                json!({"reasoning_tokens": details.reasoning_tokens});
        }
        usage
    }

    /// The non-streamed `chat.completion` body.
    pub(crate) fn completion(&self, created: u64) -> Value {
        let mut message = json!({"role": "assistant", "content": self.content});
        if let Some(reasoning) = &self.reasoning {
            message["reasoning_content"] = json!(reasoning);
        }
        if let Some(call) = &self.tool_call {
            message["tool_calls"] = json!([{
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }]);
        }
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            "usage": self.usage(),
            "note": NOTE,
        })
    }

    fn chunk(&self, created: u64, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            "note": NOTE,
        })
    }

    /// The SSE events of the streamed answer, `data: [DONE]` last.
    ///
    /// Hunyuan's shape: every delta repeats `role` and carries `reasoning_content` (`""` when
    /// none); text comes word by word; a tool call comes in two chunks that both carry the full
    /// `id` and `type` (name first with empty arguments, then `name: ""` with the whole
    /// arguments), followed by the explanation text; no chunk carries `usage` (except the
    /// TokenHub usage chunk when `stream_options.include_usage` asked for it).
    pub(crate) fn events(&self, created: u64) -> Vec<Bytes> {
        let delta = |content: &str, reasoning: &str| json!({"role": "assistant", "content": content, "reasoning_content": reasoning});
        let mut chunks = Vec::new();
        if let Some(reasoning) = &self.reasoning {
            for word in reasoning.split_inclusive(' ') {
                chunks.push(self.chunk(created, delta("", word), None));
            }
        }
        if let Some(call) = &self.tool_call {
            let mut first = delta("", "");
            first["tool_calls"] = json!([{
                "index": 0, "id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }]);
            chunks.push(self.chunk(created, first, None));
            let mut second = delta("", "");
            second["tool_calls"] = json!([{
                "index": 0, "id": call.id, "type": "function",
                "function": {"name": "", "arguments": call.arguments},
            }]);
            chunks.push(self.chunk(created, second, None));
        }
        for word in self.content.split_inclusive(' ') {
            chunks.push(self.chunk(created, delta(word, ""), None));
        }
        chunks.push(self.chunk(created, delta("", ""), Some(self.finish_reason)));
        if self.usage_chunk {
            let mut usage = self.chunk(created, Value::Null, None);
            usage["choices"] = json!([]);
            usage["usage"] = self.usage();
            chunks.push(usage);
        }
        let mut events: Vec<Bytes> = chunks
            .iter()
            .map(crate::chat::SseEvent::encode_json)
            .collect();
        events.push(crate::chat::SseEvent::encode(crate::chat::sse::DONE));
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_is_deterministic() {
        let body = json!({"model": "hunyuan-turbos-latest", "messages": [{"role": "user", "content": "hi there"}]});
        let a = answer(&body, MockPolicy::Legacy);
        assert_eq!(a, answer(&body, MockPolicy::Legacy));
        assert_eq!(a.content, "Echo: hi there");
        assert_eq!(a.finish_reason, "stop");
        assert!(a.reasoning.is_none());
    }

    #[test]
    fn tool_call_arguments_follow_required_properties() {
        let body = json!({
            "model": "hunyuan-2.0-thinking-20251109",
            "messages": [{"role": "user", "content": "Paris"}],
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"type": "string"}},
                "required": ["city", "days"],
            }}}],
        });
        let a = answer(&body, MockPolicy::Legacy);
        let call = a.tool_call.unwrap();
        assert_eq!(call.name, "weather");
        assert_eq!(call.id.len(), 25);
        assert!(call.id[5..]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        let args: Value = serde_json::from_str(&call.arguments).unwrap();
        assert_eq!(args, json!({"city": "Paris", "days": 0}));
        assert_eq!(a.finish_reason, "tool_calls");
        assert!(!a.content.is_empty());
        assert_eq!(a.reasoning.as_deref(), Some("Thinking about: Paris"));
    }

    #[test]
    fn stop_kept_under_legacy_cut_under_tokenhub() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "one two three"}], "stop": ["two", "zzz"]});
        assert_eq!(answer(&body, MockPolicy::Legacy).content, "Echo: one two");
        assert_eq!(answer(&body, MockPolicy::TokenHub).content, "Echo: one ");
    }

    #[test]
    fn vision_describes_each_image() {
        // "hello" in base64.
        let body = json!({"model": "hunyuan-vision", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/x.jpg"}},
        ]}]});
        let a = answer(&body, MockPolicy::Legacy);
        let lines: Vec<&str> = a.content.lines().collect();
        let hello = hex(&Sha256::digest(b"hello")[..6]);
        let url = hex(&Sha256::digest(b"https://example.com/x.jpg")[..6]);
        assert!(lines[0].starts_with(&format!("Description of image {hello}: ")));
        assert!(lines[1].starts_with(&format!("Description of image {url}: ")));
        assert_eq!(lines.len(), 2);
    }
    fn agent_tools() -> Value {
        let tool = |name: &str, props: Value, required: Value| {
            json!({"type": "function", "function": {"name": name, "parameters": {
                "type": "object", "properties": props, "required": required}}})
        };
        json!([
            tool(
                "Agent",
                json!({"prompt": {"type": "string"}}),
                json!(["prompt"])
            ),
            tool(
                "Bash",
                json!({"command": {"type": "string"}, "timeout": {"type": "number"}}),
                json!(["command", "timeout"])
            ),
            tool(
                "BashOutput",
                json!({"id": {"type": "string"}}),
                json!(["id"])
            ),
            tool(
                "Read",
                json!({"file_path": {"type": "string"}, "path": {"type": "string"}}),
                json!(["file_path", "path"])
            ),
        ])
    }

    fn steered(text: &str) -> Answer {
        let body = json!({"model": "hunyuan-turbos-latest", "tools": agent_tools(),
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>Use Read to see files</system-reminder>"},
                {"type": "text", "text": text}]}]});
        answer(&body, MockPolicy::Legacy)
    }

    #[test]
    fn use_tool_in_the_text_picks_the_tool_and_its_string_arguments() {
        let a = steered("Use Bash with command=echo hi there  \nthen stop");
        let call = a.tool_call.expect("a call");
        assert_eq!(call.name, "Bash");
        let args: Value = serde_json::from_str(&call.arguments).unwrap();
        assert_eq!(args, json!({"command": "echo hi there", "timeout": 0}));
        // A longer tool name is not taken for a shorter one, nor `path=` inside `file_path=`.
        let call = steered("Use BashOutput with id=7").tool_call.unwrap();
        assert_eq!(call.name, "BashOutput");
        let a = steered("Use Read with file_path=/tmp/a b.png");
        let args: Value = serde_json::from_str(&a.tool_call.unwrap().arguments).unwrap();
        let whole = "<system-reminder>Use Read to see files</system-reminder>\nUse Read with file_path=/tmp/a b.png";
        assert_eq!(args, json!({"file_path": "/tmp/a b.png", "path": whole}));
    }

    #[test]
    fn the_last_use_wins_and_use_no_tool_answers_text() {
        // The reminder's `Use Read` comes first; the prompt's `Use Bash` wins.
        assert_eq!(
            steered("Use Bash with command=ls").tool_call.unwrap().name,
            "Bash"
        );
        assert_eq!(steered("hello").tool_call.unwrap().name, "Read");
        let a = steered("say hi. Use no tool.");
        assert!(a.tool_call.is_none());
        assert_eq!(a.finish_reason, "stop");
        assert!(
            a.content.starts_with("Echo: <system-reminder>"),
            "{}",
            a.content
        );
        // A name that is not offered, or no steering at all: the first offered tool, as before.
        for text in ["Use Grep with pattern=x", "hello", "Use Bashful"] {
            let body = json!({"model": "m", "tools": agent_tools(),
                "messages": [{"role": "user", "content": text}]});
            let call = answer(&body, MockPolicy::Legacy).tool_call.unwrap();
            assert_eq!(call.name, "Agent", "{text}");
            assert_eq!(call.arguments, json!({"prompt": text}).to_string());
        }
    }

    #[test]
    fn tool_choice_still_rules_over_the_text() {
        let mut body = json!({"model": "m", "tools": agent_tools(),
            "messages": [{"role": "user", "content": "Use Bash with command=ls"}]});
        body["tool_choice"] = json!("none");
        assert!(answer(&body, MockPolicy::Legacy).tool_call.is_none());
        body["tool_choice"] = json!({"type": "function", "function": {"name": "Read"}});
        assert_eq!(
            answer(&body, MockPolicy::Legacy).tool_call.unwrap().name,
            "Read"
        );
        body["tool_choice"] = json!("required");
        body["messages"][0]["content"] = json!("Use no tool");
        assert_eq!(
            answer(&body, MockPolicy::Legacy).tool_call.unwrap().name,
            "Agent"
        );
    }

    #[test]
    fn the_answer_after_a_tool_quotes_the_start_of_its_result() {
        let long = format!("Description of image abc: {}", "x".repeat(500));
        let body = json!({"model": "m", "tools": agent_tools(), "messages": [
            {"role": "user", "content": "Use Read with file_path=a.png"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "Read", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": long}]});
        let a = answer(&body, MockPolicy::Legacy);
        assert!(a.tool_call.is_none());
        let quoted: String = long.chars().take(200).collect();
        assert_eq!(a.content, format!("Echo: {quoted}"));
    }
}
