//! The response side: what to change in Hunyuan's answer, decided once per request
//! ([`ResponsePlan`]) and applied event by event ([`StreamRewriter`]) or to a whole JSON
//! answer ([`ResponsePlan::rewrite_completion`]).
//!
//! - streamed tool calls are re-emitted OpenAI-style: `id`, `type` and `name` only in the first
//!   piece of each call, arguments as they come (Hunyuan repeats the id in every chunk);
//! - a trailing stop string Hunyuan kept is cut (OpenAI stops *before* it); in a stream the
//!   text that could be the start of a stop string is held back until it is known not to be;
//! - rewritten tool names are mapped back to the client's;
//! - Hunyuan's `note` field is dropped;
//! - a final usage chunk is synthesized when the client asked for one and the upstream sent
//!   none. Its counts are **estimates** (characters / 4), not the upstream's token counts.
//!
//! Events that need none of this are forwarded as their original bytes.

use super::config::{FixConfig, Rule};
use super::rules::ToolNameMap;
use super::splice::{without_members, Finder, QUOTED_NOTE as NOTE};
use crate::chat::{
    ChatChunk, ChatCompletion, ChatRequest, Choice, ChunkChoice, Content, Delta, SseEvent,
    ToolCallDelta, Usage,
};
use bytes::Bytes;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// What the response side does for one request.
#[derive(Debug, Clone, Default)]
pub struct ResponsePlan {
    /// Stop strings to cut from the end of the answer (empty: no trimming).
    pub stop: Vec<String>,
    /// Tool names to map back.
    pub tool_names: ToolNameMap,
    /// Re-emit streamed tool calls in OpenAI's delta shape.
    pub tool_call_deltas: bool,
    /// Drop the top-level `note` field.
    pub drop_note: bool,
    /// Synthesize a usage chunk if the upstream sends none; holds the prompt's estimated
    /// token count.
    pub synthesize_usage: Option<u64>,
    /// Drop usage the upstream sends: the proxy asked for it (TokenHub sends none otherwise),
    /// the client did not.
    pub drop_usage: bool,
}

/// Whether a request asks for a streamed usage chunk (`stream_options.include_usage`).
pub fn asks_for_usage(chat: &ChatRequest) -> bool {
    chat.is_stream()
        && chat
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
}

impl ResponsePlan {
    /// The plan for a fixed request; `client_asked_usage` is [`asks_for_usage`] of the
    /// request as the client sent it.
    pub fn new(
        chat: &ChatRequest,
        config: &FixConfig,
        tool_names: ToolNameMap,
        client_asked_usage: bool,
    ) -> Self {
        let stop = match (&chat.stop, config.enabled(Rule::StopTrim)) {
            (Some(stop), true) => stop
                .iter()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        ResponsePlan {
            stop,
            tool_names,
            tool_call_deltas: config.enabled(Rule::ToolCallDeltas),
            drop_note: config.drop_note,
            synthesize_usage: (client_asked_usage && config.synthesize_usage)
                .then(|| estimate_prompt_tokens(chat)),
            drop_usage: !client_asked_usage && asks_for_usage(chat),
        }
    }

    /// Whether a JSON answer needs rewriting.
    pub fn touches_json(&self) -> bool {
        self.drop_note || !self.stop.is_empty() || !self.tool_names.is_empty()
    }

    /// Whether a stream needs rewriting.
    pub fn touches_stream(&self) -> bool {
        self.touches_json()
            || self.tool_call_deltas
            || self.synthesize_usage.is_some()
            || self.drop_usage
    }

    /// The same rewrite as [`rewrite_completion`](Self::rewrite_completion), on an answer a
    /// layer has parsed already (one a dialect ingress takes typed, [`ChatAnswer`]).
    ///
    /// [`ChatAnswer`]: crate::chat::ChatAnswer
    pub fn fix_completion(&self, answer: &mut ChatCompletion) {
        if self.drop_note {
            answer.extra.remove("note");
        }
        self.fix_choices(&mut answer.choices);
    }

    /// A trailing stop string cut from each finished choice, tool names mapped back.
    fn fix_choices(&self, choices: &mut [Choice]) {
        for choice in choices {
            if choice.finish_reason.as_deref() == Some("stop") {
                if let Some(content) = &mut choice.message.content {
                    trim_stop(content, &self.stop);
                }
            }
            for call in choice.message.tool_calls.iter_mut().flatten() {
                if let Some(original) = self.tool_names.original(&call.function.name) {
                    call.function.name = original.to_owned();
                }
            }
        }
    }

    /// The rewritten JSON answer, or `None` to send the original bytes.
    pub fn rewrite_completion(&self, body: &[u8]) -> Option<Bytes> {
        let note = self.drop_note && NOTE.find(body).is_some();
        if !note && self.stop.is_empty() && self.tool_names.is_empty() {
            return None;
        }
        if self.stop.is_empty() && self.tool_names.is_empty() {
            // Only the note goes: cut it out of the bytes when the answer is plainly valid.
            let mut out = Vec::with_capacity(body.len());
            if let Some(found) = without_members(body, b"note", &mut out) {
                return (found.removed > 0).then(|| Bytes::from(out));
            }
        }
        let text = std::str::from_utf8(body).ok()?;
        let RawObject(members) = serde_json::from_str(text).ok()?;
        let mut new_choices = None;
        if !self.stop.is_empty() || !self.tool_names.is_empty() {
            let raw = members.iter().find(|(k, _)| *k == "choices")?.1;
            let mut choices: Vec<Choice> = serde_json::from_str(raw.get()).ok()?;
            self.fix_choices(&mut choices);
            new_choices = Some(serde_json::to_string(&choices).ok()?);
        }
        let mut json = String::with_capacity(body.len());
        write_object(&mut json, &members, |key, value| match key {
            "note" if self.drop_note => None,
            "choices" if new_choices.is_some() => new_choices.as_deref(),
            _ => Some(value.get()),
        });
        Some(Bytes::from(json))
    }
}

/// A rough prompt size: characters of every message's text and tool arguments, / 4.
fn estimate_prompt_tokens(chat: &ChatRequest) -> u64 {
    let chars: usize = chat
        .messages
        .iter()
        .map(|m| {
            let text = match &m.content {
                Some(Content::Text(t)) => t.chars().count(),
                Some(c @ Content::Parts(_)) => c.joined_text().chars().count(),
                None => 0,
            };
            let args: usize = m
                .tool_calls
                .iter()
                .flatten()
                .map(|c| c.function.arguments.chars().count() + c.function.name.len())
                .sum();
            text + args + 4
        })
        .sum();
    estimate_tokens(chars)
}

fn estimate_tokens(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

static USAGE: Finder = Finder::new(|| memchr::memmem::Finder::new(b"\"usage\""));
static TOOL_CALLS: Finder = Finder::new(|| memchr::memmem::Finder::new(b"\"tool_calls\""));

/// Whether `data` holds the finder's needle (memchr's vectorized search, built once).
fn has(finder: &Finder, data: &str) -> bool {
    finder.find(data.as_bytes()).is_some()
}

/// Cuts one trailing stop string (the longest that matches).
fn trim_stop(text: &mut String, stop: &[String]) -> bool {
    let hit = stop
        .iter()
        .filter(|s| text.ends_with(s.as_str()))
        .map(String::len)
        .max();
    match hit {
        Some(len) => {
            text.truncate(text.len() - len);
            true
        }
        None => false,
    }
}

/// The length of the longest suffix of `text` that is a prefix of (or equal to) a stop string.
fn held_len(text: &str, stop: &[String]) -> usize {
    let mut best = 0;
    for s in stop {
        let max = s.len().min(text.len());
        for k in (best + 1..=max).rev() {
            if text.is_char_boundary(text.len() - k)
                && s.is_char_boundary(k)
                && text.as_bytes()[text.len() - k..] == s.as_bytes()[..k]
            {
                best = k;
                break;
            }
        }
    }
    best
}

/// One tool call seen in a stream.
#[derive(Debug)]
struct CallSlot {
    choice: u32,
    upstream_index: u32,
    id: Option<String>,
    named: bool,
}

/// What to do with one event.
#[derive(Debug, PartialEq, Eq)]
pub enum EventAction {
    /// Forward the event's original bytes.
    Forward,
    /// Send these bytes instead.
    Replace(Bytes),
    /// Send nothing for this event.
    Skip,
}

/// Per-stream state of the response rewriting.
#[derive(Debug)]
pub struct StreamRewriter {
    plan: ResponsePlan,
    calls: Vec<CallSlot>,
    /// Text held back per choice because it may be the start of a stop string.
    held: Vec<(u32, String)>,
    usage_seen: bool,
    completion_chars: usize,
    /// `id`, `created`, `model` of the stream, for chunks the proxy writes itself.
    meta: Option<(String, u64, String)>,
    finished: bool,
}

impl StreamRewriter {
    /// A rewriter following `plan`.
    pub fn new(plan: ResponsePlan) -> Self {
        StreamRewriter {
            plan,
            calls: Vec::new(),
            held: Vec::new(),
            usage_seen: false,
            completion_chars: 0,
            meta: None,
            finished: false,
        }
    }

    /// Decides what to send for one event (not the `[DONE]` one: see [`Self::finish`]).
    ///
    /// Only the members that change are parsed: the chunk's top level is read as raw JSON
    /// values (borrowed from the event), `choices` is parsed only when tool calls or stop
    /// strings need it, and every other member is written back byte for byte.
    pub fn on_event(&mut self, event: &SseEvent) -> EventAction {
        let data = event.data.as_str();
        if data.is_empty() || !self.wants(data) {
            return EventAction::Forward;
        }
        if let Some(action) = self.only_note(data) {
            return action;
        }
        let Ok(RawObject(members)) = serde_json::from_str::<RawObject<'_>>(data) else {
            return EventAction::Forward;
        };
        // An error event mid-stream is not a chunk: pass it on exactly as it came.
        if members.iter().any(|(key, _)| *key == "error") {
            return EventAction::Forward;
        }
        let mut changed = false;
        let mut new_choices: Option<String> = None;
        let track_meta = self.plan.synthesize_usage.is_some() || !self.plan.stop.is_empty();
        let choice_work = !self.plan.stop.is_empty()
            || ((self.plan.tool_call_deltas || !self.plan.tool_names.is_empty())
                && data.contains("\"tool_calls\""));
        for (key, value) in &members {
            match *key {
                "note" if self.plan.drop_note => changed = true,
                "usage" if value.get() != "null" => {
                    self.usage_seen = true;
                    if self.plan.drop_usage {
                        changed = true;
                    }
                }
                "choices" if choice_work => {
                    let Ok(mut choices) = serde_json::from_str::<Vec<ChunkChoice>>(value.get())
                    else {
                        return EventAction::Forward;
                    };
                    if self.rewrite_choices(&mut choices) {
                        changed = true;
                        new_choices = serde_json::to_string(&choices).ok();
                    }
                }
                "choices" if self.plan.synthesize_usage.is_some() => {
                    if let Ok(choices) = serde_json::from_str::<Vec<TextOnly<'_>>>(value.get()) {
                        self.completion_chars += choices
                            .iter()
                            .map(|c| c.delta.content.as_deref().map_or(0, str::len))
                            .sum::<usize>();
                    }
                }
                _ => {}
            }
        }
        if track_meta && self.meta.is_none() {
            self.meta = Some(read_meta(&members));
        }
        if !changed {
            return EventAction::Forward;
        }
        let dropped_usage = |key: &str, value: &RawValue| {
            self.plan.drop_usage && key == "usage" && value.get() != "null"
        };
        // A usage-only chunk the client did not ask for goes altogether.
        if members.iter().any(|(k, v)| dropped_usage(k, v))
            && members
                .iter()
                .any(|(k, v)| *k == "choices" && v.get().trim() == "[]")
        {
            return EventAction::Skip;
        }
        // One `data:` line, written in place, unless the upstream spread the JSON over several.
        let one_line = !data.contains('\n');
        let mut out = String::with_capacity(data.len() + 8);
        if one_line {
            out.push_str("data: ");
        }
        write_object(&mut out, &members, |key, value| match key {
            "note" if self.plan.drop_note => None,
            _ if dropped_usage(key, value) => None,
            "choices" if new_choices.is_some() => new_choices.as_deref(),
            _ => Some(value.get()),
        });
        if one_line {
            out.push_str("\n\n");
            EventAction::Replace(Bytes::from(out))
        } else {
            EventAction::Replace(SseEvent::encode(&out))
        }
    }

    /// What to send when the answer ends (before the upstream's `data: [DONE]`, or at the end
    /// of a stream without one): held-back text and the synthesized usage chunk, when due.
    /// Later calls return nothing.
    pub fn finish(&mut self) -> Vec<Bytes> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        let mut out = Vec::new();
        let held: Vec<ChunkChoice> = self
            .held
            .drain(..)
            .filter(|(_, text)| !text.is_empty())
            .map(|(index, text)| ChunkChoice {
                index,
                delta: Delta {
                    content: Some(text),
                    ..Default::default()
                },
                ..Default::default()
            })
            .collect();
        if !held.is_empty() {
            let mut chunk = self.own_chunk();
            chunk.choices = held;
            out.push(SseEvent::encode_json(&chunk));
        }
        if let (Some(prompt), false) = (self.plan.synthesize_usage, self.usage_seen) {
            let completion = estimate_tokens(self.completion_chars);
            let mut chunk = self.own_chunk();
            chunk.usage = Some(Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                total_tokens: prompt + completion,
            });
            out.push(SseEvent::encode_json(&chunk));
        }
        out
    }

    fn own_chunk(&self) -> ChatChunk {
        let (id, created, model) = self.meta.clone().unwrap_or_default();
        ChatChunk {
            id,
            object: "chat.completion.chunk".into(),
            created,
            model,
            ..Default::default()
        }
    }

    /// The fast path for an event that needs nothing but the note removed: the note is cut
    /// out of the bytes. `None` when the event needs more (or the splice is unsure), for
    /// [`Self::on_event`]'s parsing path.
    fn only_note(&self, data: &str) -> Option<EventAction> {
        let plan = &self.plan;
        let only_note = plan.drop_note
            && plan.synthesize_usage.is_none()
            && plan.stop.is_empty()
            && !(plan.drop_usage && has(&USAGE, data))
            && !((plan.tool_call_deltas || !plan.tool_names.is_empty()) && has(&TOOL_CALLS, data))
            && memchr::memchr(b'\n', data.as_bytes()).is_none();
        if !only_note {
            return None;
        }
        let mut out = Vec::with_capacity(data.len() + 8);
        out.extend_from_slice(b"data: ");
        let found = without_members(data.as_bytes(), b"note", &mut out)?;
        // An error event mid-stream is not a chunk: pass it on exactly as it came.
        if found.removed == 0 || found.error {
            return Some(EventAction::Forward);
        }
        out.extend_from_slice(b"\n\n");
        Some(EventAction::Replace(Bytes::from(out)))
    }

    /// A cheap look at the raw data: does this event need parsing?
    fn wants(&self, data: &str) -> bool {
        let plan = &self.plan;
        plan.synthesize_usage.is_some()
            || !plan.stop.is_empty()
            || (plan.drop_note && has(&NOTE, data))
            || (plan.drop_usage && has(&USAGE, data))
            || ((plan.tool_call_deltas || !plan.tool_names.is_empty()) && has(&TOOL_CALLS, data))
    }

    /// Applies the plan to a chunk's choices; returns whether they changed.
    fn rewrite_choices(&mut self, choices: &mut [ChunkChoice]) -> bool {
        let mut changed = false;
        for choice in choices {
            let delta = &mut choice.delta;
            if self.plan.synthesize_usage.is_some() {
                self.completion_chars += delta.content.as_deref().map_or(0, str::len);
                for call in delta.tool_calls.iter().flatten() {
                    if let Some(f) = &call.function {
                        self.completion_chars += f.arguments.as_deref().map_or(0, str::len);
                    }
                }
            }
            if let Some(calls) = &mut delta.tool_calls {
                changed |= self.reshape_calls(choice.index, calls);
                if calls.is_empty() {
                    delta.tool_calls = None;
                }
            }
            if !self.plan.stop.is_empty() {
                changed |= self.hold_back(
                    choice.index,
                    &mut choice.delta.content,
                    choice.finish_reason.as_deref(),
                );
            }
        }
        changed
    }

    /// Tool-call pieces in OpenAI's shape; names mapped back. Returns whether they changed.
    fn reshape_calls(&mut self, choice: u32, calls: &mut Vec<ToolCallDelta>) -> bool {
        let mut changed = false;
        calls.retain_mut(|call| {
            if let Some(f) = &mut call.function {
                if let Some(name) = f
                    .name
                    .as_deref()
                    .and_then(|n| self.plan.tool_names.original(n))
                {
                    f.name = Some(name.to_owned());
                    changed = true;
                }
            }
            if !self.plan.tool_call_deltas {
                return true;
            }
            let keep = reshape_call(&mut self.calls, choice, call, &mut changed);
            changed |= !keep;
            keep
        });
        changed
    }

    /// Holds back text that may start a stop string; at the end of the choice cuts a trailing
    /// stop string. Returns whether the content changed.
    fn hold_back(
        &mut self,
        choice: u32,
        content: &mut Option<String>,
        finish: Option<&str>,
    ) -> bool {
        let pos = match self.held.iter().position(|(c, _)| *c == choice) {
            Some(pos) => pos,
            None => {
                self.held.push((choice, String::new()));
                self.held.len() - 1
            }
        };
        let held = &mut self.held[pos].1;
        if content.is_none() && finish.is_none() {
            return false;
        }
        let had_content = content.is_some();
        let had_held = !held.is_empty();
        // Without held-back text the chunk's own string is used as is.
        let mut text = match content.take() {
            Some(own) if !had_held => own,
            own => {
                let mut text = std::mem::take(held);
                text.push_str(own.as_deref().unwrap_or(""));
                text
            }
        };
        if let Some(reason) = finish {
            let cut = reason == "stop" && trim_stop(&mut text, &self.plan.stop);
            if had_content || !text.is_empty() {
                *content = Some(text);
            }
            return cut || had_held;
        }
        let keep = held_len(&text, &self.plan.stop);
        *held = text.split_off(text.len() - keep);
        *content = Some(text);
        had_held || keep > 0
    }
}

/// A JSON object's members in order, their values unparsed and borrowed.
struct RawObject<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<&'de str>()? {
                    members.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(RawObject(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// Appends a JSON object made of `members` to `out`, each value as `value_of` says (`None`
/// leaves the member out). Keys are written as they were read: borrowed keys hold no escapes.
fn write_object<'a>(
    out: &mut String,
    members: &[(&'a str, &'a RawValue)],
    mut value_of: impl FnMut(&'a str, &'a RawValue) -> Option<&'a str>,
) {
    out.push('{');
    let mut first = true;
    for &(key, raw) in members {
        let Some(value) = value_of(key, raw) else {
            continue;
        };
        if !first {
            out.push(',');
        }
        first = false;
        out.push('"');
        out.push_str(key);
        out.push_str("\":");
        out.push_str(value);
    }
    out.push('}');
}

/// Just the text of a streamed choice, for counting.
#[derive(Deserialize)]
struct TextOnly<'a> {
    #[serde(borrow, default)]
    delta: TextDelta<'a>,
}

#[derive(Deserialize, Default)]
struct TextDelta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
}

/// `id`, `created` and `model` of a chunk.
fn read_meta(members: &[(&str, &RawValue)]) -> (String, u64, String) {
    let get = |name: &str| {
        members
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.get())
    };
    let text = |name: &str| {
        get(name)
            .and_then(|raw| serde_json::from_str::<String>(raw).ok())
            .unwrap_or_default()
    };
    let created = get("created").and_then(|raw| raw.parse().ok()).unwrap_or(0);
    (text("id"), created, text("model"))
}

/// Rewrites one tool-call piece in OpenAI's shape. Returns whether to keep it; sets `changed`
/// when it differs from what the upstream sent.
fn reshape_call(
    slots: &mut Vec<CallSlot>,
    choice: u32,
    call: &mut ToolCallDelta,
    changed: &mut bool,
) -> bool {
    let upstream_index = call.index;
    let id = call.id.as_deref().filter(|id| !id.is_empty());
    let found = slots.iter().position(|slot| {
        slot.choice == choice
            && match (id, slot.id.as_deref()) {
                (Some(id), Some(seen)) => id == seen,
                (None, _) => slot.upstream_index == upstream_index,
                (Some(_), None) => false,
            }
    });
    let pos = found.unwrap_or(slots.len());
    // OpenAI numbers calls per choice from 0.
    let index = slots[..pos].iter().filter(|s| s.choice == choice).count() as u32;
    *changed |= call.index != index;
    call.index = index;
    let Some(pos) = found else {
        let f = call.function.get_or_insert_with(Default::default);
        let named = f.name.as_deref().is_some_and(|n| !n.is_empty());
        *changed |= f.arguments.is_none() || call.kind.is_none();
        f.arguments.get_or_insert_with(String::new);
        call.kind.get_or_insert_with(|| "function".to_owned());
        slots.push(CallSlot {
            choice,
            upstream_index,
            id: call.id.clone().filter(|id| !id.is_empty()),
            named,
        });
        return true;
    };
    let slot = &mut slots[pos];
    *changed |= call.id.take().is_some() | call.kind.take().is_some();
    let Some(f) = &mut call.function else {
        return false;
    };
    match f.name.as_deref() {
        // A name that only arrives in a later piece is passed on once.
        Some(n) if !n.is_empty() && !slot.named => slot.named = true,
        Some(_) => {
            f.name = None;
            *changed = true;
        }
        None => {}
    }
    if f.arguments.as_deref() == Some("") {
        f.arguments = None;
        *changed = true;
    }
    f.name.is_some() || f.arguments.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::SseParser;
    use crate::chat::Stop;
    use crate::fix::rules::fix_request_with_names;
    use serde_json::{json, Value};

    fn plan() -> ResponsePlan {
        ResponsePlan {
            drop_note: true,
            tool_call_deltas: true,
            ..Default::default()
        }
    }

    fn events(values: &[Value]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        for v in values {
            p.push(&SseEvent::encode_json(v));
        }
        std::iter::from_fn(|| p.next_event()).collect()
    }

    /// Runs a stream through the rewriter; returns the JSON of every event sent.
    fn run(plan: ResponsePlan, chunks: &[Value]) -> Vec<Value> {
        let mut r = StreamRewriter::new(plan);
        let mut out = Vec::new();
        for e in events(chunks) {
            match r.on_event(&e) {
                EventAction::Forward => out.push(e.raw.clone()),
                EventAction::Replace(b) => out.push(b),
                EventAction::Skip => {}
            }
        }
        out.extend(r.finish());
        let mut p = SseParser::new();
        for b in out {
            p.push(&b);
        }
        std::iter::from_fn(|| p.next_event())
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect()
    }

    fn hunyuan_chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({"id": "x1", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "note": "以上内容为AI生成", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    /// What an OpenAI-SDK-style accumulator builds from the deltas.
    fn accumulate(chunks: &[Value]) -> (String, Vec<(String, String, String)>) {
        let mut text = String::new();
        let mut calls: Vec<(String, String, String)> = Vec::new();
        for c in chunks {
            for choice in c["choices"].as_array().into_iter().flatten() {
                text.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
                for tc in choice["delta"]["tool_calls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let i = tc["index"].as_u64().unwrap() as usize;
                    if calls.len() <= i {
                        calls.resize(i + 1, Default::default());
                    }
                    let slot = &mut calls[i];
                    slot.0.push_str(tc["id"].as_str().unwrap_or(""));
                    slot.1
                        .push_str(tc["function"]["name"].as_str().unwrap_or(""));
                    slot.2
                        .push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
                }
            }
        }
        (text, calls)
    }

    #[test]
    fn hunyuan_tool_call_stream_becomes_openai_shaped() {
        let tc = |name: &str, args: &str| {
            json!({"role": "assistant", "content": "", "reasoning_content": "", "tool_calls": [
                {"index": 0, "id": "call_abc", "type": "function", "function": {"name": name, "arguments": args}}]})
        };
        let out = run(
            plan(),
            &[
                hunyuan_chunk(tc("get_weather", ""), None),
                hunyuan_chunk(tc("", "{\"city\":\"SZ\"}"), None),
                hunyuan_chunk(json!({"role": "assistant", "content": "Checking."}), None),
                hunyuan_chunk(
                    json!({"role": "assistant", "content": ""}),
                    Some("tool_calls"),
                ),
            ],
        );
        assert!(out.iter().all(|c| c.get("note").is_none()));
        let first = &out[0]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(first["id"], "call_abc");
        assert_eq!(first["type"], "function");
        assert_eq!(first["function"]["name"], "get_weather");
        let second = &out[1]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            second,
            &json!({"index": 0, "function": {"arguments": "{\"city\":\"SZ\"}"}})
        );
        let (text, calls) = accumulate(&out);
        assert_eq!(text, "Checking.");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].0, "call_abc");
        assert_eq!(calls[0].1, "get_weather");
        let args: Value = serde_json::from_str(&calls[0].2).unwrap();
        assert_eq!(args, json!({"city": "SZ"}));
    }

    #[test]
    fn parallel_calls_on_one_upstream_index_get_their_own_index() {
        let piece = |id: &str, name: &str, args: &str| {
            hunyuan_chunk(
                json!({"tool_calls": [{"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": args}}]}),
                None,
            )
        };
        let out = run(
            plan(),
            &[
                piece("c1", "a", ""),
                piece("c1", "", "{}"),
                piece("c2", "b", ""),
                piece("c2", "", "{\"x\":1}"),
            ],
        );
        let (_, calls) = accumulate(&out);
        assert_eq!(calls.len(), 2);
        assert_eq!((calls[1].0.as_str(), calls[1].1.as_str()), ("c2", "b"));
        assert_eq!(calls[1].2, "{\"x\":1}");
    }

    #[test]
    fn untouched_events_are_forwarded_as_is() {
        let mut r = StreamRewriter::new(plan());
        let openai = json!({"id": "x", "choices": [{"index": 0, "delta": {"content": "hi"}}]});
        let e = &events(&[openai])[0];
        assert_eq!(r.on_event(e), EventAction::Forward);
        assert!(r.finish().is_empty());
    }

    #[test]
    fn only_the_note_is_removed_other_members_keep_their_bytes() {
        let mut r = StreamRewriter::new(plan());
        let mut p = SseParser::new();
        p.push(b"data: {\"id\":\"x\",\"note\":\"n\",\"x_extra\": {\"a\" : [1, 2.50]},\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\u00e9\"}}]}\n\n");
        let e = p.next_event().unwrap();
        let EventAction::Replace(bytes) = r.on_event(&e) else {
            panic!("the note must go")
        };
        assert_eq!(
            &bytes[..],
            b"data: {\"id\":\"x\",\"x_extra\": {\"a\" : [1, 2.50]},\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\u00e9\"}}]}\n\n"
        );
    }

    #[test]
    fn usage_the_client_did_not_ask_for_is_dropped() {
        let p = ResponsePlan {
            drop_usage: true,
            ..plan()
        };
        let usage = json!({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2});
        let mut last = hunyuan_chunk(json!({"content": "x"}), Some("stop"));
        last["usage"] = usage.clone();
        let mut usage_only = hunyuan_chunk(json!({}), None);
        usage_only["choices"] = json!([]);
        usage_only["usage"] = usage;
        let out = run(p, &[last, usage_only]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].get("usage").is_none());
        assert_eq!(out[0]["choices"][0]["delta"]["content"], "x");
    }

    #[test]
    fn json_spread_over_several_data_lines_stays_valid() {
        let mut r = StreamRewriter::new(plan());
        let mut p = SseParser::new();
        p.push(b"data: {\"id\": \"x\",\ndata: \"note\": \"n\",\ndata: \"choices\": []}\n\n");
        let e = p.next_event().unwrap();
        let EventAction::Replace(bytes) = r.on_event(&e) else {
            panic!("the note must go")
        };
        p.push(&bytes);
        let out: Value = serde_json::from_str(&p.next_event().unwrap().data).unwrap();
        assert_eq!(out, json!({"id": "x", "choices": []}));
    }

    #[test]
    fn error_events_pass_unchanged() {
        let mut r = StreamRewriter::new(ResponsePlan {
            synthesize_usage: Some(1),
            ..plan()
        });
        let e =
            &events(&[json!({"error": {"message": "sensitive", "code": "2001"}, "note": "n"})])[0];
        assert_eq!(r.on_event(e), EventAction::Forward);
    }

    #[test]
    fn stop_string_is_cut_across_chunks() {
        let p = ResponsePlan {
            stop: vec!["END".into(), "\n\n".into()],
            ..plan()
        };
        for pieces in [
            vec!["Hello wor", "ld EN", "D"],
            vec!["Hello world E", "ND"],
            vec!["Hello world END"],
            vec!["Hello", " world ", "E", "N", "D"],
        ] {
            let mut chunks: Vec<Value> = pieces
                .iter()
                .map(|t| hunyuan_chunk(json!({"content": t}), None))
                .collect();
            chunks.push(hunyuan_chunk(json!({"content": ""}), Some("stop")));
            let (text, _) = accumulate(&run(p.clone(), &chunks));
            assert_eq!(text, "Hello world ", "{pieces:?}");
        }
        // A partial match that turns out not to be a stop string is released.
        let chunks = [
            hunyuan_chunk(json!({"content": "THE EN"}), None),
            hunyuan_chunk(json!({"content": "DING"}), None),
            hunyuan_chunk(json!({"content": ""}), Some("length")),
        ];
        let (text, _) = accumulate(&run(p.clone(), &chunks));
        assert_eq!(text, "THE ENDING");
    }

    #[test]
    fn usage_is_synthesized_when_asked_and_missing() {
        let p = ResponsePlan {
            synthesize_usage: Some(10),
            ..plan()
        };
        let out = run(
            p.clone(),
            &[hunyuan_chunk(json!({"content": "12345678"}), Some("stop"))],
        );
        let usage = &out.last().unwrap()["usage"];
        assert_eq!(
            usage,
            &json!({"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12})
        );
        assert_eq!(out.last().unwrap()["id"], "x1");
        let mut with_usage = hunyuan_chunk(json!({"content": "x"}), Some("stop"));
        with_usage["usage"] =
            json!({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2});
        let out = run(p, &[with_usage]);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn completion_drops_note_trims_stop_and_maps_names() {
        let chat: ChatRequest = serde_json::from_value(json!({
            "model": "m", "messages": [{"role": "user", "content": "q"}], "stop": ["END"]
        }))
        .unwrap();
        assert!(matches!(chat.stop, Some(Stop::Many(_))));
        let mut fixed = chat.clone();
        fixed.tools = Some(vec![serde_json::from_value(
            json!({"type": "function", "function": {"name": "a.b"}}),
        )
        .unwrap()]);
        let (_, names) = fix_request_with_names(&mut fixed, &FixConfig::default()).unwrap();
        let p = ResponsePlan::new(&chat, &FixConfig::default(), names, false);
        let body = json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m", "note": "n",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "done END",
              "tool_calls": [{"id": "c", "type": "function", "function": {"name": "a_b", "arguments": "{}"}}]}}]});
        let out: Value =
            serde_json::from_slice(&p.rewrite_completion(body.to_string().as_bytes()).unwrap())
                .unwrap();
        assert!(out.get("note").is_none());
        assert_eq!(out["choices"][0]["message"]["content"], "done ");
        assert_eq!(
            out["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "a.b"
        );
        let tokenhub = ResponsePlan::new(
            &chat,
            &FixConfig::tokenhub().with_drop_note(false),
            ToolNameMap::default(),
            false,
        );
        assert!(tokenhub
            .rewrite_completion(body.to_string().as_bytes())
            .is_none());
    }
}
