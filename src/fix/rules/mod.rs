//! The request-side rules, one small function per rule, and [`fix_request`] which runs them.
//! Rule numbers such as R1 refer to the table in `docs/hunyuan-api.md`; `docs/fixing.md` maps
//! each rule to the numbers it enforces.
//!
//! Each rule takes the typed request, changes only what Hunyuan would refuse, and says
//! whether it changed anything. Every rule is idempotent on its own, and the order below makes
//! the whole fixer idempotent: a fixed conversation passes every rule unchanged.
//!
//! 1. [`Rule::Fields`]: drop unsupported fields, refuse out-of-range values (400).
//! 2. [`Rule::ToolNames`]: rewrite tool names outside `[A-Za-z0-9_-]`, reversibly.
//! 3. [`Rule::System`]: one system message, at index 0.
//! 4. [`Rule::Alternation`]: `user (assistant (user | tool+))*`.
//! 5. [`Rule::Ending`]: end with user or tool.
//! 6. [`Rule::EmptyContent`]: no empty content.
//! 7. [`Rule::Length`]: at most `max_messages`, trimmed in whole turns so 4–6 still hold.
//! 8. [`Rule::ContentShape`]: flat text for text models, a text part beside images.

mod alternation;
mod empty;
mod ending;
mod fields;
mod length;
mod shape;
mod system;
mod tool_names;

pub use tool_names::ToolNameMap;

use super::config::{FixConfig, Rule};
use crate::chat::{ChatRequest, Content, ContentPart, Message, Role};
use crate::error::ProxyError;
pub use crate::extensions::FixReport;

/// The user turn put before a conversation that starts with the assistant.
pub const OPENING_USER_TEXT: &str = "Hello.";
/// The assistant turn put between a tool result and a user message.
pub const BRIDGE_ASSISTANT_TEXT: &str = "(tool results received)";
/// The content given to an empty user message.
pub const EMPTY_USER_TEXT: &str = "(empty message)";
/// The content given to an empty tool result.
pub const EMPTY_TOOL_TEXT: &str = "(no output)";
/// The content given to an empty assistant message without tool calls.
pub const EMPTY_ASSISTANT_TEXT: &str = "(no answer)";
/// The text part added to a message that has images but no text.
pub const IMAGE_ONLY_TEXT: &str = "(image attached)";

/// Records a rule that changed something.
fn record(report: &mut FixReport, rule: Rule, changed: bool) {
    if changed {
        report.rules.push(rule.name());
    }
}

/// Makes `chat` acceptable to Hunyuan under `config`'s policy, in place.
///
/// Returns which rules fired, or a 400 for input that cannot be fixed without changing its
/// meaning (`n > 1`, `temperature`/`top_p`/`seed` out of range). Running it twice changes
/// nothing the second time.
///
/// ```
/// use hunyuan_proxy::chat::{ChatRequest, Message, Role};
/// use hunyuan_proxy::fix::{fix_request, FixConfig};
///
/// let mut chat = ChatRequest {
///     model: "hunyuan-turbos-latest".into(),
///     messages: vec![
///         Message::text(Role::User, "Hi"),
///         Message::text(Role::User, "Are you there?"),
///         Message::text(Role::Developer, "Be brief."),
///     ],
///     ..Default::default()
/// };
/// let report = fix_request(&mut chat, &FixConfig::default()).unwrap();
/// assert_eq!(report.rules, ["system", "alternation"]);
/// assert_eq!(chat.messages[0].role, Role::System);
/// assert_eq!(chat.messages.len(), 2);
/// ```
pub fn fix_request(chat: &mut ChatRequest, config: &FixConfig) -> Result<FixReport, ProxyError> {
    fix_request_with_names(chat, config).map(|(report, _)| report)
}

/// [`fix_request`], also returning the tool names it rewrote (for mapping answers back).
pub fn fix_request_with_names(
    chat: &mut ChatRequest,
    config: &FixConfig,
) -> Result<(FixReport, ToolNameMap), ProxyError> {
    let mut report = FixReport::default();
    let mut names = ToolNameMap::default();
    if config.enabled(Rule::Fields) {
        let changed = fields::apply(chat, config.policy())?;
        record(&mut report, Rule::Fields, changed);
    }
    if config.enabled(Rule::ToolNames) {
        let changed = tool_names::apply(chat, &mut names);
        record(&mut report, Rule::ToolNames, changed);
    }
    let messages = &mut chat.messages;
    if config.enabled(Rule::System) {
        record(&mut report, Rule::System, system::apply(messages));
    }
    if config.enabled(Rule::Alternation) {
        record(&mut report, Rule::Alternation, alternation::apply(messages));
    }
    if config.enabled(Rule::Ending) {
        record(&mut report, Rule::Ending, ending::apply(messages, config));
    }
    if config.enabled(Rule::EmptyContent) {
        record(&mut report, Rule::EmptyContent, empty::apply(messages));
    }
    if config.enabled(Rule::Length) {
        record(
            &mut report,
            Rule::Length,
            length::apply(messages, config.max_messages),
        );
    }
    if config.enabled(Rule::ContentShape) {
        let model = &chat.model;
        let changed = shape::apply(&mut chat.messages, || config.vision.sees_images(model));
        record(&mut report, Rule::ContentShape, changed);
    }
    Ok((report, names))
}

/// Whether content counts as empty for the fixer: absent, blank text, or parts with no image
/// and only blank text. (Hunyuan accepts whitespace; the fixer still fills it, because a blank
/// turn carries nothing for the model either.)
pub(crate) fn is_blank(content: Option<&Content>) -> bool {
    match content {
        None => true,
        Some(Content::Text(text)) => text.trim().is_empty(),
        Some(Content::Parts(parts)) => parts
            .iter()
            .all(|p| p.text().is_some_and(|t| t.trim().is_empty())),
    }
}

/// The role a rule sees for a message: `developer` counts as `system`.
pub(crate) fn is_system(message: &Message) -> bool {
    matches!(message.role, Role::System | Role::Developer)
}

/// Joins two contents: texts with a blank line, anything with parts as concatenated parts (so
/// images survive). Blank sides are skipped.
pub(crate) fn join_content(a: Option<Content>, b: Option<Content>) -> Option<Content> {
    if is_blank(b.as_ref()) && !is_blank(a.as_ref()) {
        return a;
    }
    if is_blank(a.as_ref()) {
        return b.or(a);
    }
    match (a, b) {
        (Some(Content::Text(mut x)), Some(Content::Text(y))) => {
            x.push_str("\n\n");
            x.push_str(&y);
            Some(Content::Text(x))
        }
        (a, b) => {
            let mut parts = into_parts(a);
            parts.extend(into_parts(b));
            Some(Content::Parts(parts))
        }
    }
}

/// The content as parts, without blank text parts.
fn into_parts(content: Option<Content>) -> Vec<ContentPart> {
    match content {
        None => Vec::new(),
        Some(Content::Text(t)) if t.trim().is_empty() => Vec::new(),
        Some(Content::Text(t)) => vec![ContentPart::Text { text: t }],
        Some(Content::Parts(parts)) => parts
            .into_iter()
            .filter(|p| p.text().is_none_or(|t| !t.trim().is_empty()))
            .collect(),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Short constructors for table tests.
    use crate::chat::{Content, ContentPart, FunctionCall, ImageUrl, Message, Role, ToolCall};
    use serde_json::Map;

    pub fn msg(role: Role, text: &str) -> Message {
        Message::text(role, text)
    }
    pub fn sys(t: &str) -> Message {
        msg(Role::System, t)
    }
    pub fn dev(t: &str) -> Message {
        msg(Role::Developer, t)
    }
    pub fn user(t: &str) -> Message {
        msg(Role::User, t)
    }
    pub fn asst(t: &str) -> Message {
        msg(Role::Assistant, t)
    }
    pub fn call(id: &str, name: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            kind: "function".into(),
            function: FunctionCall {
                name: name.into(),
                arguments: "{}".into(),
            },
            extra: Map::new(),
        }
    }
    pub fn asst_calls(t: Option<&str>, calls: &[(&str, &str)]) -> Message {
        let mut m = asst(t.unwrap_or(""));
        if t.is_none() {
            m.content = None;
        }
        m.tool_calls = Some(calls.iter().map(|(id, n)| call(id, n)).collect());
        m
    }
    pub fn tool(id: &str, t: &str) -> Message {
        let mut m = msg(Role::Tool, t);
        m.tool_call_id = Some(id.into());
        m
    }
    pub fn image(url: &str) -> ContentPart {
        ContentPart::ImageUrl {
            image_url: ImageUrl {
                url: url.into(),
                detail: None,
            },
        }
    }
    pub fn parts(role: Role, parts: Vec<ContentPart>) -> Message {
        let mut m = msg(role, "");
        m.content = Some(Content::Parts(parts));
        m
    }
    /// The roles as a compact string: s u a t d.
    pub fn roles(messages: &[Message]) -> String {
        messages
            .iter()
            .map(|m| match m.role {
                Role::System => 's',
                Role::Developer => 'd',
                Role::User => 'u',
                Role::Assistant => 'a',
                Role::Tool => 't',
            })
            .collect()
    }
    pub fn text(m: &Message) -> String {
        m.content
            .as_ref()
            .map(Content::joined_text)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::chat::Role;

    #[test]
    fn join_content_skips_blanks_and_keeps_images() {
        let a = Some(Content::Text("a".into()));
        let b = Some(Content::Text("b".into()));
        assert_eq!(
            join_content(a.clone(), b),
            Some(Content::Text("a\n\nb".into()))
        );
        assert_eq!(join_content(a.clone(), Some(Content::Text(" ".into()))), a);
        assert_eq!(join_content(None, a.clone()), a);
        let img = parts(Role::User, vec![image("https://x/1.png")]).content;
        let joined = join_content(a, img).unwrap();
        assert_eq!(
            joined,
            Content::Parts(vec![ContentPart::text_part("a"), image("https://x/1.png")])
        );
    }

    #[test]
    fn blank_means_no_text_and_no_image() {
        assert!(is_blank(None));
        assert!(is_blank(Some(&Content::Text(" \n".into()))));
        assert!(is_blank(Some(&Content::Parts(vec![]))));
        assert!(is_blank(Some(&Content::Parts(vec![
            ContentPart::text_part("")
        ]))));
        assert!(!is_blank(Some(&Content::Parts(vec![image("https://x")]))));
        assert!(!is_blank(Some(&Content::Text("x".into()))));
    }

    #[test]
    fn fix_request_is_idempotent_on_a_broken_agent_conversation() {
        let mut chat = ChatRequest {
            model: "hunyuan-2.0-instruct-20251111".into(),
            messages: vec![
                asst("Hi, how can I help?"),
                dev("be brief"),
                user("weather?"),
                user(""),
                asst_calls(None, &[("call_1", "get.weather")]),
                tool("call_1", ""),
                user("thanks"),
                asst("You're"),
            ],
            ..Default::default()
        };
        let config = FixConfig::default();
        let report = fix_request(&mut chat, &config).unwrap();
        assert_eq!(roles(&chat.messages), "suauatauau");
        assert!(report.rules.contains(&"system") && report.rules.contains(&"ending"));
        let before = chat.clone();
        let again = fix_request(&mut chat, &config).unwrap();
        assert!(again.rules.is_empty(), "{:?}", again.rules);
        assert_eq!(chat, before);
    }
}
