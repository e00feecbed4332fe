//! A chat request made fit for a debug log: image data elided, override fields (which may
//! carry a client's key) removed.

use crate::chat::{ChatRequest, Content, ContentPart, OVERRIDE_FIELDS};
use serde_json::Value;

/// The request as JSON text for a debug log: each `data:` image URL is replaced by its media
/// type and size (`data:image/png;base64,<123456 bytes elided>`), `http(s)` image URLs are kept,
/// and the fields a client could use to redirect or re-key the upstream are dropped.
pub fn loggable_json(chat: &ChatRequest) -> String {
    let mut value = match serde_json::to_value(chat) {
        Ok(value) => value,
        Err(_) => return String::from("<unserializable request>"),
    };
    if let Some(obj) = value.as_object_mut() {
        for field in OVERRIDE_FIELDS {
            obj.remove(*field);
        }
    }
    for (i, message) in chat.messages.iter().enumerate() {
        let Some(Content::Parts(parts)) = &message.content else {
            continue;
        };
        for (j, part) in parts.iter().enumerate() {
            if let ContentPart::ImageUrl { image_url } = part {
                if let Some(elided) = elide_data_url(&image_url.url) {
                    value["messages"][i]["content"][j]["image_url"]["url"] = Value::String(elided);
                }
            }
        }
    }
    value.to_string()
}

fn elide_data_url(url: &str) -> Option<String> {
    let rest = url.strip_prefix("data:")?;
    let (head, data) = rest.split_once(',').unwrap_or((rest, ""));
    Some(format!("data:{head},<{} bytes elided>", data.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn images_and_override_fields_are_left_out() {
        let chat: ChatRequest = serde_json::from_value(json!({
            "model": "m",
            "api_key": "sk-client-secret",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAABBBB"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
            ]}]
        }))
        .unwrap();
        let text = loggable_json(&chat);
        assert!(!text.contains("sk-client-secret"), "{text}");
        assert!(!text.contains("AAAABBBB"), "{text}");
        assert!(
            text.contains("data:image/png;base64,<8 bytes elided>"),
            "{text}"
        );
        assert!(text.contains("https://example.com/a.png"), "{text}");
        assert!(text.contains("look"), "{text}");
    }
}
