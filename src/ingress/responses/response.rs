//! The Responses `response` object, and [`from_completion`] for a non-streamed answer.
//!
//! A chat completion becomes, in this order, a `reasoning` item (when the model sent
//! `reasoning_content`), a `message` item (when it sent text that is not blank; Hunyuan often
//! sends a blank beside tool calls) and one `function_call` item per tool call, with the
//! client's tool name (and namespace) restored. `finish_reason: length` makes the response
//! `incomplete` with reason `max_output_tokens`; Hunyuan's `sensitive` (and OpenAI's
//! `content_filter`) make it `incomplete` with reason `content_filter`.
//!
//! Ids: the response is `resp_<48 hex>`; its items are `msg_`, `fc_` or `rs_` followed by the
//! same 48 hex digits and the item's output index as 4 hex digits, so an `item_reference` leads
//! back to the stored response that holds the item ([`response_id_of_item`]).

use super::reasoning::ReasoningCodec;
use super::tool_names::ToolNames;
use crate::chat::{ChatCompletion, Usage};
use serde::{Deserialize, Serialize};
use serde_json::{json, Number, Value};

/// A response's status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    /// Being generated (the stream's first events).
    #[default]
    InProgress,
    /// Finished normally.
    Completed,
    /// Cut short (token limit, content filter); see `incomplete_details`.
    Incomplete,
    /// Failed; see `error`.
    Failed,
}

/// An output item's status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Still streaming.
    #[default]
    InProgress,
    /// Done.
    Completed,
    /// Cut short.
    Incomplete,
}

/// One item of a response's `output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// The assistant's text.
    Message {
        /// `msg_…`.
        id: String,
        /// The item's status.
        status: ItemStatus,
        /// Always `assistant`.
        role: String,
        /// The text parts.
        content: Vec<OutputContent>,
    },
    /// A call of one of the client's function tools.
    FunctionCall {
        /// `fc_…`.
        id: String,
        /// The id the client answers with a `function_call_output`.
        call_id: String,
        /// The tool's name as the client declared it.
        name: String,
        /// The namespace of a tool declared inside a `namespace` tool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// The arguments, a JSON string.
        arguments: String,
        /// The item's status.
        status: ItemStatus,
    },
    /// The model's reasoning.
    Reasoning {
        /// `rs_…`.
        id: String,
        /// The reasoning as a summary (when the client asked for one), else empty.
        summary: Vec<SummaryPart>,
        /// The reasoning as text (when the client asked for no summary).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<Vec<ReasoningPart>>,
        /// The reasoning sealed by the proxy, for stateless replay ([`ReasoningCodec`]).
        #[serde(default)]
        encrypted_content: Option<String>,
    },
}

impl OutputItem {
    /// The item's id.
    pub fn id(&self) -> &str {
        match self {
            OutputItem::Message { id, .. }
            | OutputItem::FunctionCall { id, .. }
            | OutputItem::Reasoning { id, .. } => id,
        }
    }

    /// Sets the status of a message or function call (reasoning items carry none).
    pub(crate) fn set_status(&mut self, new: ItemStatus) {
        match self {
            OutputItem::Message { status, .. } | OutputItem::FunctionCall { status, .. } => {
                *status = new
            }
            OutputItem::Reasoning { .. } => {}
        }
    }
}

/// A part of a message item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputContent {
    /// Text.
    OutputText {
        /// The text.
        text: String,
        /// Citations; always empty here.
        #[serde(default)]
        annotations: Vec<Value>,
    },
}

/// A part of a reasoning item's `summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SummaryPart {
    /// Summary text.
    SummaryText {
        /// The text.
        text: String,
    },
}

/// A part of a reasoning item's `content`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReasoningPart {
    /// Reasoning text.
    ReasoningText {
        /// The text.
        text: String,
    },
}

/// Why a response is incomplete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncompleteDetails {
    /// `max_output_tokens` or `content_filter`.
    pub reason: String,
}

/// Why a response failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseErrorBody {
    /// `server_error`, `rate_limit_exceeded`, `invalid_prompt`…
    pub code: String,
    /// A sentence written by the proxy.
    pub message: String,
}

/// Token usage in Responses' terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseUsage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Cached prompt tokens (always 0: Hunyuan reports none).
    pub input_tokens_details: InputTokensDetails,
    /// Answer tokens.
    pub output_tokens: u64,
    /// Reasoning tokens (always 0: Hunyuan reports none).
    pub output_tokens_details: OutputTokensDetails,
    /// Both.
    pub total_tokens: u64,
}

/// `usage.input_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    /// Tokens served from a prompt cache.
    pub cached_tokens: u64,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    /// Tokens spent reasoning.
    pub reasoning_tokens: u64,
}

impl From<Usage> for ResponseUsage {
    fn from(u: Usage) -> Self {
        ResponseUsage {
            input_tokens: u.prompt_tokens,
            input_tokens_details: InputTokensDetails::default(),
            output_tokens: u.completion_tokens,
            output_tokens_details: OutputTokensDetails::default(),
            total_tokens: if u.total_tokens > 0 {
                u.total_tokens
            } else {
                u.prompt_tokens + u.completion_tokens
            },
        }
    }
}

/// The `response` object: the answer of `POST /v1/responses`, the payload of the stream's
/// `response.*` lifecycle events, and what `GET /v1/responses/{id}` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResponseObject {
    /// `resp_…`.
    pub id: String,
    /// Always `response`.
    pub object: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The status.
    pub status: ResponseStatus,
    /// Why it failed.
    pub error: Option<ResponseErrorBody>,
    /// Why it is incomplete.
    pub incomplete_details: Option<IncompleteDetails>,
    /// The request's `instructions`, echoed.
    pub instructions: Option<Value>,
    /// The request's `max_output_tokens`, echoed.
    pub max_output_tokens: Option<u64>,
    /// The model as the client named it.
    pub model: String,
    /// The output items.
    pub output: Vec<OutputItem>,
    /// The request's `parallel_tool_calls` (default true), echoed.
    pub parallel_tool_calls: bool,
    /// The request's `previous_response_id`, echoed.
    pub previous_response_id: Option<String>,
    /// The request's `reasoning` (`effort`, `summary`), echoed.
    pub reasoning: Value,
    /// The request's `store` (default true), echoed.
    pub store: bool,
    /// The request's `temperature`, echoed.
    pub temperature: Option<Number>,
    /// The request's `text` (default `{"format":{"type":"text"}}`), echoed.
    pub text: Value,
    /// The request's `tool_choice` (default `auto`), echoed.
    pub tool_choice: Value,
    /// The request's `tools`, echoed as given.
    pub tools: Vec<Value>,
    /// The request's `top_p`, echoed.
    pub top_p: Option<Number>,
    /// Always `disabled`.
    pub truncation: String,
    /// Token usage, when known.
    pub usage: Option<ResponseUsage>,
    /// The request's `user`, echoed.
    pub user: Option<String>,
    /// The request's `metadata` (default `{}`), echoed.
    pub metadata: Value,
}

impl ResponseObject {
    /// The text of every message item, concatenated (the SDKs' `output_text`).
    pub fn output_text(&self) -> String {
        let mut out = String::new();
        for item in &self.output {
            if let OutputItem::Message { content, .. } = item {
                for OutputContent::OutputText { text, .. } in content {
                    out.push_str(text);
                }
            }
        }
        out
    }
}

/// The request's fields a response echoes.
#[derive(Debug, Clone, PartialEq)]
pub struct Echo {
    /// `instructions`.
    pub instructions: Option<Value>,
    /// `tools`, as given.
    pub tools: Vec<Value>,
    /// `tool_choice` (default `auto`).
    pub tool_choice: Value,
    /// `parallel_tool_calls` (default true).
    pub parallel_tool_calls: bool,
    /// `previous_response_id`.
    pub previous_response_id: Option<String>,
    /// `store` (default true).
    pub store: bool,
    /// `temperature`.
    pub temperature: Option<Number>,
    /// `top_p`.
    pub top_p: Option<Number>,
    /// `max_output_tokens`.
    pub max_output_tokens: Option<u64>,
    /// `metadata` (default `{}`).
    pub metadata: Value,
    /// `user`.
    pub user: Option<String>,
    /// `reasoning` (`{"effort","summary"}`).
    pub reasoning: Value,
    /// `text` (default `{"format":{"type":"text"}}`).
    pub text: Value,
}

impl Default for Echo {
    fn default() -> Self {
        Echo {
            instructions: None,
            tools: Vec::new(),
            tool_choice: json!("auto"),
            parallel_tool_calls: true,
            previous_response_id: None,
            store: true,
            temperature: None,
            top_p: None,
            max_output_tokens: None,
            metadata: json!({}),
            user: None,
            reasoning: json!({"effort": null, "summary": null}),
            text: json!({"format": {"type": "text"}}),
        }
    }
}

/// Everything the answer side needs from the request: ids, the client's model name, the
/// tool-name map, the reasoning codec and display, and the fields to echo. Made by
/// [`to_chat`](super::to_chat).
#[derive(Debug, Clone)]
pub struct ResponseContext {
    /// The response's id, `resp_…` (known before the answer, e.g. for a header or the store).
    pub id: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The model as the client named it.
    pub model: String,
    /// The tool names sent upstream and the client's originals.
    pub tool_names: ToolNames,
    /// Seals reasoning into `encrypted_content`.
    pub codec: ReasoningCodec,
    /// Show reasoning as a summary (`summary_text`, the client asked for `reasoning.summary`)
    /// rather than as `reasoning_text` content.
    pub reasoning_summary: bool,
    /// The request's fields to echo.
    pub echo: Echo,
}

impl ResponseContext {
    /// A context with a fresh id, for `model`, echoing the defaults.
    pub fn new(model: impl Into<String>) -> Self {
        ResponseContext {
            id: super::new_id("resp"),
            created_at: super::unix_now(),
            model: model.into(),
            tool_names: ToolNames::default(),
            codec: ReasoningCodec::default(),
            reasoning_summary: false,
            echo: Echo::default(),
        }
    }

    /// The id of the item at `output_index`, e.g. `msg_<hex><0001>`.
    pub fn item_id(&self, prefix: &str, output_index: usize) -> String {
        let suffix = self.id.strip_prefix("resp_").unwrap_or(&self.id);
        format!("{prefix}_{suffix}{output_index:04x}")
    }

    /// The response object with no output yet, in `status`.
    pub fn skeleton(&self, status: ResponseStatus) -> ResponseObject {
        let echo = &self.echo;
        ResponseObject {
            id: self.id.clone(),
            object: "response".to_owned(),
            created_at: self.created_at,
            status,
            error: None,
            incomplete_details: None,
            instructions: echo.instructions.clone(),
            max_output_tokens: echo.max_output_tokens,
            model: self.model.clone(),
            output: Vec::new(),
            parallel_tool_calls: echo.parallel_tool_calls,
            previous_response_id: echo.previous_response_id.clone(),
            reasoning: echo.reasoning.clone(),
            store: echo.store,
            temperature: echo.temperature.clone(),
            text: echo.text.clone(),
            tool_choice: echo.tool_choice.clone(),
            tools: echo.tools.clone(),
            top_p: echo.top_p.clone(),
            truncation: "disabled".to_owned(),
            usage: None,
            user: echo.user.clone(),
            metadata: echo.metadata.clone(),
        }
    }

    /// [`skeleton`](Self::skeleton), the echoed fields moved instead of copied.
    fn into_skeleton(self, status: ResponseStatus) -> ResponseObject {
        let echo = self.echo;
        ResponseObject {
            id: self.id,
            object: "response".to_owned(),
            created_at: self.created_at,
            status,
            error: None,
            incomplete_details: None,
            instructions: echo.instructions,
            max_output_tokens: echo.max_output_tokens,
            model: self.model,
            output: Vec::new(),
            parallel_tool_calls: echo.parallel_tool_calls,
            previous_response_id: echo.previous_response_id,
            reasoning: echo.reasoning,
            store: echo.store,
            temperature: echo.temperature,
            text: echo.text,
            tool_choice: echo.tool_choice,
            tools: echo.tools,
            top_p: echo.top_p,
            truncation: "disabled".to_owned(),
            usage: None,
            user: echo.user,
            metadata: echo.metadata,
        }
    }

    /// A finished reasoning item holding `text`.
    pub(crate) fn reasoning_item(&self, output_index: usize, text: &str) -> OutputItem {
        let (summary, content) = if self.reasoning_summary {
            (
                vec![SummaryPart::SummaryText {
                    text: text.to_owned(),
                }],
                None,
            )
        } else {
            (
                Vec::new(),
                Some(vec![ReasoningPart::ReasoningText {
                    text: text.to_owned(),
                }]),
            )
        };
        OutputItem::Reasoning {
            id: self.item_id("rs", output_index),
            summary,
            content,
            encrypted_content: Some(self.codec.seal(text)),
        }
    }

    /// A message item holding `text`.
    pub(crate) fn message_item(
        &self,
        output_index: usize,
        text: &str,
        status: ItemStatus,
    ) -> OutputItem {
        OutputItem::Message {
            id: self.item_id("msg", output_index),
            status,
            role: "assistant".to_owned(),
            content: vec![OutputContent::OutputText {
                text: text.to_owned(),
                annotations: Vec::new(),
            }],
        }
    }

    /// A function-call item for a call of the tool sent upstream as `sent_name`, under the
    /// client's name and namespace.
    pub(crate) fn function_call_item(
        &self,
        output_index: usize,
        call_id: &str,
        sent_name: &str,
        arguments: &str,
        status: ItemStatus,
    ) -> OutputItem {
        let (name, namespace) = self.tool_names.original(sent_name);
        OutputItem::FunctionCall {
            id: self.item_id("fc", output_index),
            call_id: call_id.to_owned(),
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
            arguments: arguments.to_owned(),
            status,
        }
    }
}

/// The response id an item id (`msg_…`, `fc_…`, `rs_…`) of this proxy belongs to.
pub fn response_id_of_item(item_id: &str) -> Option<String> {
    let (_, rest) = item_id.split_once('_')?;
    if rest.len() <= 4 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(format!("resp_{}", &rest[..rest.len() - 4]))
}

/// The status and incomplete reason for a chat `finish_reason`.
pub(crate) fn status_for(
    finish_reason: Option<&str>,
) -> (ResponseStatus, Option<IncompleteDetails>) {
    let reason = match finish_reason {
        Some("length") => "max_output_tokens",
        Some("sensitive") | Some("content_filter") => "content_filter",
        _ => return (ResponseStatus::Completed, None),
    };
    (
        ResponseStatus::Incomplete,
        Some(IncompleteDetails {
            reason: reason.to_owned(),
        }),
    )
}

/// The response object for a non-streamed chat completion.
pub fn from_completion(completion: &ChatCompletion, ctx: &ResponseContext) -> ResponseObject {
    let (status, output) = output_of(completion, ctx);
    finish(ctx.skeleton(status.0), completion, status.1, output)
}

/// [`from_completion`], the context's echoed fields moved into the response.
pub(crate) fn from_completion_owned(
    completion: &ChatCompletion,
    ctx: ResponseContext,
) -> ResponseObject {
    let (status, output) = output_of(completion, &ctx);
    finish(ctx.into_skeleton(status.0), completion, status.1, output)
}

fn finish(
    mut response: ResponseObject,
    completion: &ChatCompletion,
    incomplete: Option<IncompleteDetails>,
    output: Vec<OutputItem>,
) -> ResponseObject {
    response.output = output;
    response.incomplete_details = incomplete;
    response.usage = completion.usage.map(ResponseUsage::from);
    response
}

/// The status, incomplete reason and output items of a non-streamed chat completion.
#[allow(clippy::type_complexity)]
fn output_of(
    completion: &ChatCompletion,
    ctx: &ResponseContext,
) -> ((ResponseStatus, Option<IncompleteDetails>), Vec<OutputItem>) {
    let choice = completion.choices.first();
    let (status, incomplete) = status_for(choice.and_then(|c| c.finish_reason.as_deref()));
    let mut output = Vec::new();
    if let Some(choice) = choice {
        let message = &choice.message;
        if let Some(reasoning) = message
            .extra
            .get("reasoning_content")
            .and_then(Value::as_str)
            .filter(|r| !r.trim().is_empty())
        {
            output.push(ctx.reasoning_item(output.len(), reasoning));
        }
        if let Some(text) = message.content.as_deref().filter(|t| !t.trim().is_empty()) {
            output.push(ctx.message_item(output.len(), text, ItemStatus::Completed));
        }
        for call in message.tool_calls.iter().flatten() {
            let item = ctx.function_call_item(
                output.len(),
                &call.id,
                &call.function.name,
                &call.function.arguments,
                ItemStatus::Completed,
            );
            output.push(item);
        }
    }
    if status == ResponseStatus::Incomplete {
        if let Some(last) = output.last_mut() {
            last.set_status(ItemStatus::Incomplete);
        }
    }
    ((status, incomplete), output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(body: Value) -> ChatCompletion {
        serde_json::from_value(body).unwrap()
    }

    fn ctx() -> ResponseContext {
        let mut ctx = ResponseContext::new("hunyuan-t1-latest");
        ctx.tool_names.insert(Some("multi_agent_v1"), "spawn_agent");
        ctx
    }

    #[test]
    fn text_answer_becomes_one_message_item() {
        let ctx = ctx();
        let response = from_completion(
            &completion(json!({
                "id": "x", "model": "hunyuan-2.0-thinking-20251109",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
                "note": "以上内容为AI生成"
            })),
            &ctx,
        );
        let value = serde_json::to_value(&response).unwrap();
        assert_eq!(value["object"], "response");
        assert_eq!(value["status"], "completed");
        assert_eq!(
            value["model"], "hunyuan-t1-latest",
            "the model the client asked for"
        );
        assert!(value["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(value["output"][0]["type"], "message");
        assert_eq!(value["output"][0]["role"], "assistant");
        assert_eq!(value["output"][0]["status"], "completed");
        assert_eq!(
            value["output"][0]["content"],
            json!([{"type": "output_text", "text": "Hi!", "annotations": []}])
        );
        assert_eq!(
            value["usage"],
            json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
                   "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0},
                   "total_tokens": 13})
        );
        assert_eq!(value["tool_choice"], "auto");
        assert_eq!(value["parallel_tool_calls"], true);
        assert_eq!(value["store"], true);
        assert_eq!(value["incomplete_details"], Value::Null);
        assert_eq!(response.output_text(), "Hi!");
        let back: ResponseObject = serde_json::from_value(value).unwrap();
        assert_eq!(back, response, "the object survives the store's round trip");
    }

    #[test]
    fn tool_calls_keep_the_clients_names_and_blank_text_is_dropped() {
        let ctx = ctx();
        let response = from_completion(
            &completion(json!({
                "choices": [{"message": {"role": "assistant", "content": " ",
                    "reasoning_content": "Need to spawn a helper.",
                    "tool_calls": [
                        {"id": "call_abc", "type": "function", "function": {"name": "multi_agent_v1__spawn_agent", "arguments": "{\"message\":\"go\"}"}},
                        {"id": "call_def", "type": "function", "function": {"name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}}
                    ]}, "finish_reason": "tool_calls"}]
            })),
            &ctx,
        );
        assert_eq!(response.status, ResponseStatus::Completed);
        let value = serde_json::to_value(&response.output).unwrap();
        assert_eq!(value.as_array().unwrap().len(), 3);
        assert_eq!(value[0]["type"], "reasoning");
        assert_eq!(value[0]["content"][0]["text"], "Need to spawn a helper.");
        assert_eq!(value[0]["summary"], json!([]));
        let sealed = value[0]["encrypted_content"].as_str().unwrap();
        assert_eq!(
            ctx.codec.open(sealed).as_deref(),
            Some("Need to spawn a helper.")
        );
        assert_eq!(value[1]["type"], "function_call");
        assert_eq!(value[1]["name"], "spawn_agent");
        assert_eq!(value[1]["namespace"], "multi_agent_v1");
        assert_eq!(value[1]["call_id"], "call_abc");
        assert_eq!(value[1]["arguments"], "{\"message\":\"go\"}");
        assert!(value[1]["id"].as_str().unwrap().starts_with("fc_"));
        assert_eq!(value[2]["name"], "exec_command");
        assert!(value[2].get("namespace").is_none());
        assert_eq!(value[2]["status"], "completed");
        // Item ids lead back to the response.
        assert_eq!(
            response_id_of_item(response.output[2].id()).as_deref(),
            Some(response.id.as_str())
        );
    }

    #[test]
    fn reasoning_is_a_summary_when_the_client_asked_for_one() {
        let mut ctx = ctx();
        ctx.reasoning_summary = true;
        let response = from_completion(
            &completion(
                json!({"choices": [{"message": {"role": "assistant", "content": "4",
                "reasoning_content": "2+2"}, "finish_reason": "stop"}]}),
            ),
            &ctx,
        );
        let value = serde_json::to_value(&response.output[0]).unwrap();
        assert_eq!(
            value["summary"],
            json!([{"type": "summary_text", "text": "2+2"}])
        );
        assert!(value.get("content").is_none());
    }

    #[test]
    fn length_and_sensitive_make_the_response_incomplete() {
        let ctx = ctx();
        for (finish, reason) in [
            ("length", "max_output_tokens"),
            ("sensitive", "content_filter"),
        ] {
            let response = from_completion(
                &completion(
                    json!({"choices": [{"message": {"role": "assistant", "content": "partial"}, "finish_reason": finish}]}),
                ),
                &ctx,
            );
            assert_eq!(response.status, ResponseStatus::Incomplete, "{finish}");
            assert_eq!(response.incomplete_details.as_ref().unwrap().reason, reason);
            let value = serde_json::to_value(&response).unwrap();
            assert_eq!(value["status"], "incomplete");
            assert_eq!(value["output"][0]["status"], "incomplete");
        }
    }

    #[test]
    fn foreign_item_ids_lead_nowhere() {
        assert_eq!(response_id_of_item("msg_abc"), None);
        assert_eq!(response_id_of_item("msg_zzzzzzzz0001"), None);
        assert_eq!(response_id_of_item("nounderscore"), None);
        assert_eq!(
            response_id_of_item("fc_abcdef0003").as_deref(),
            Some("resp_abcdef")
        );
    }
}
