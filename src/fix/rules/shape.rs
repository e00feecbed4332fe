//! [`Rule::ContentShape`](crate::fix::Rule::ContentShape): part lists in the shape each model
//! takes.
//!
//! For a model that does not see images ([`FixConfig::vision`](crate::fix::FixConfig::vision))
//! a text-only part list is flattened to one string
//! (parts joined by newlines). A message with images but no text part gets one (R9: Hunyuan's
//! vision models want text beside images).

use super::IMAGE_ONLY_TEXT;
use crate::chat::{Content, ContentPart, Message};

/// Applies the rule; returns whether anything changed. `sees_images` is asked at most once,
/// and only when a text-only part list is found (most requests have none).
pub(super) fn apply(messages: &mut [Message], sees_images: impl Fn() -> bool) -> bool {
    let mut vision = None;
    let mut changed = false;
    for m in messages.iter_mut() {
        let Some(Content::Parts(parts)) = &mut m.content else {
            continue;
        };
        let images = parts.iter().any(|p| p.image_url().is_some());
        let texts = parts.iter().any(|p| p.text().is_some());
        if images && !texts {
            parts.insert(0, ContentPart::text_part(IMAGE_ONLY_TEXT));
            changed = true;
        } else if !images && !*vision.get_or_insert_with(&sees_images) {
            let joined = m
                .content
                .as_ref()
                .map(Content::joined_text)
                .unwrap_or_default();
            m.content = Some(Content::Text(joined));
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::chat::Role;

    #[test]
    fn table() {
        let t = ContentPart::text_part;
        // (message, vision, expected content)
        let cases: Vec<(Message, bool, Content)> = vec![
            (user("q"), false, Content::Text("q".into())),
            (
                parts(Role::User, vec![t("a"), t("b")]),
                false,
                Content::Text("a\nb".into()),
            ),
            (
                parts(Role::User, vec![t("a"), t("b")]),
                true,
                Content::Parts(vec![t("a"), t("b")]),
            ),
            (
                parts(Role::User, vec![image("https://x/1.png")]),
                true,
                Content::Parts(vec![t(IMAGE_ONLY_TEXT), image("https://x/1.png")]),
            ),
            (
                parts(Role::User, vec![t("see"), image("https://x/1.png")]),
                true,
                Content::Parts(vec![t("see"), image("https://x/1.png")]),
            ),
            (
                parts(Role::Tool, vec![t("out")]),
                false,
                Content::Text("out".into()),
            ),
        ];
        for (i, (m, vision, want)) in cases.into_iter().enumerate() {
            let mut list = vec![m];
            apply(&mut list, || vision);
            assert_eq!(list[0].content.as_ref(), Some(&want), "case {i}");
            assert!(!apply(&mut list, || vision), "case {i} not idempotent");
        }
    }
}
