//! Finding image parts, checking `data:` URLs and computing the description cache key.
//!
//! Nothing here fetches anything: an `http(s)` URL is keyed by its string and sent to the
//! vision model as it is.

use crate::cache::Digest;
use crate::chat::{ChatRequest, Content, ContentPart};
use crate::error::ProxyError;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use sha2::{Digest as _, Sha256};

/// Base64 text decoded per step while hashing (a multiple of 4).
const CHUNK: usize = 64 * 1024;

const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What an image is, for the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageKind {
    /// An `http(s)` URL, keyed by its string.
    Remote,
    /// A `data:` URL, keyed by its decoded bytes.
    Inline,
}

/// One image part of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FoundImage {
    /// Index of the message.
    pub message: usize,
    /// Index of the part in the message's content.
    pub part: usize,
    /// Remote or inline.
    pub kind: ImageKind,
    /// SHA-256 of the URL string (remote) or of the decoded bytes (inline).
    pub content: Digest,
    /// For inline images sent with whitespace in their base64: the URL without it.
    pub cleaned_url: Option<String>,
}

/// Why a `data:` URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ImageProblem {
    NotAnImageUrl,
    NotBase64DataUrl,
    NotAnImage,
    BadBase64,
    Empty,
    TooLarge(usize),
    WrongType(String),
}

impl ImageProblem {
    fn message(&self) -> String {
        match self {
            ImageProblem::NotAnImageUrl => {
                "`image_url.url` must be an http(s) URL or a data:image/...;base64, URL".into()
            }
            ImageProblem::NotBase64DataUrl => {
                "the image's data URL must be base64-encoded (data:image/<type>;base64,...)".into()
            }
            ImageProblem::NotAnImage => "the data URL's media type is not an image type".into(),
            ImageProblem::BadBase64 => "the image's data URL holds invalid base64".into(),
            ImageProblem::Empty => "the image's data URL holds no data".into(),
            ImageProblem::TooLarge(limit) => {
                format!("the image is larger than the limit of {limit} bytes")
            }
            ImageProblem::WrongType(types) => {
                format!("the image type is not accepted by the upstream; send one of: {types}")
            }
        }
    }
}

/// Finds every image part in every message (tool results and earlier turns included), checks
/// it and computes its content digest. Errors name `messages[i].content[j]`.
pub(crate) fn scan(
    chat: &ChatRequest,
    max_images: usize,
    max_image_bytes: usize,
    types: Option<&[String]>,
) -> Result<Vec<FoundImage>, ProxyError> {
    let mut found = Vec::new();
    for (i, message) in chat.messages.iter().enumerate() {
        let Some(Content::Parts(parts)) = &message.content else {
            continue;
        };
        for (j, part) in parts.iter().enumerate() {
            let ContentPart::ImageUrl { image_url } = part else {
                continue;
            };
            if found.len() == max_images {
                return Err(ProxyError::invalid(
                    format!("a request may carry at most {max_images} images"),
                    "messages",
                ));
            }
            let (kind, content, cleaned_url) = digest_url(&image_url.url, max_image_bytes)
                .and_then(|found| match types {
                    Some(types) => check_type(&image_url.url, types).map(|()| found),
                    None => Ok(found),
                })
                .map_err(|p| {
                    ProxyError::invalid(p.message(), format!("messages[{i}].content[{j}]"))
                })?;
            found.push(FoundImage {
                message: i,
                part: j,
                kind,
                content,
                cleaned_url,
            });
        }
    }
    Ok(found)
}

/// Keys an image URL: the URL string for `http(s)`, the decoded bytes for `data:`.
pub(crate) fn digest_url(
    url: &str,
    max_bytes: usize,
) -> Result<(ImageKind, Digest, Option<String>), ImageProblem> {
    let trimmed = url.trim();
    if starts_with_ignore_case(trimmed, "https://") || starts_with_ignore_case(trimmed, "http://") {
        return Ok((ImageKind::Remote, sha256(trimmed.as_bytes()), None));
    }
    if !starts_with_ignore_case(trimmed, "data:") {
        return Err(ImageProblem::NotAnImageUrl);
    }
    let rest = &trimmed[5..];
    let (header, payload) = rest.split_once(',').ok_or(ImageProblem::NotBase64DataUrl)?;
    let mut params = header.split(';');
    let mime = params.next().unwrap_or("").trim().to_ascii_lowercase();
    let is_base64 = params.any(|p| p.trim().eq_ignore_ascii_case("base64"));
    match mime.strip_prefix("image/") {
        Some(sub) if !sub.is_empty() && sub.bytes().all(is_mime_char) => {}
        _ => return Err(ImageProblem::NotAnImage),
    }
    if !is_base64 {
        return Err(ImageProblem::NotBase64DataUrl);
    }
    match digest_base64(payload.as_bytes(), max_bytes) {
        Err(ImageProblem::BadBase64) if payload.bytes().any(|b| b.is_ascii_whitespace()) => {
            // Line-wrapped base64 (MIME style): the same image, once the wrapping is gone.
            let compact: String = payload
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            let digest = digest_base64(compact.as_bytes(), max_bytes)?;
            let cleaned = format!("{},{}", &trimmed[..5 + header.len()], compact);
            Ok((ImageKind::Inline, digest, Some(cleaned)))
        }
        Err(problem) => Err(problem),
        Ok(digest) => Ok((ImageKind::Inline, digest, None)),
    }
}

/// Image file extensions recognised in an `http(s)` URL's path.
const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "svg", "heic", "heif", "avif", "ico",
];

/// Checks an image's type against `types`: a `data:` URL's media subtype, or an `http(s)`
/// URL's file extension when it has a known image one (other URLs cannot be told without
/// fetching them, and pass).
fn check_type(url: &str, types: &[String]) -> Result<(), ImageProblem> {
    let url = url.trim();
    let kind = if starts_with_ignore_case(url, "data:") {
        url[5..].split([';', ',']).next().and_then(|mime| {
            mime.trim()
                .to_ascii_lowercase()
                .strip_prefix("image/")
                .map(str::to_owned)
        })
    } else {
        let path = url.split(['?', '#']).next().unwrap_or("");
        let last = path.rsplit('/').next().unwrap_or("");
        last.rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .filter(|ext| IMAGE_EXTENSIONS.contains(&ext.as_str()))
    };
    match kind {
        Some(kind) if !types.iter().any(|t| t.eq_ignore_ascii_case(&kind)) => {
            Err(ImageProblem::WrongType(types.join(", ")))
        }
        _ => Ok(()),
    }
}

/// Decodes base64 a chunk at a time into SHA-256, without holding the decoded image.
fn digest_base64(text: &[u8], max_bytes: usize) -> Result<Digest, ImageProblem> {
    if text.is_empty() {
        return Err(ImageProblem::Empty);
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK / 4 * 3 + 3];
    let mut total = 0usize;
    let mut chunks = text.chunks(CHUNK).peekable();
    while let Some(chunk) = chunks.next() {
        if chunks.peek().is_some() && chunk.last() == Some(&b'=') {
            // Padding may only end the whole text, not a chunk in its middle.
            return Err(ImageProblem::BadBase64);
        }
        let n = BASE64
            .decode_slice(chunk, &mut buf)
            .map_err(|_| ImageProblem::BadBase64)?;
        total += n;
        if total > max_bytes {
            return Err(ImageProblem::TooLarge(max_bytes));
        }
        hasher.update(&buf[..n]);
    }
    if total == 0 {
        return Err(ImageProblem::Empty);
    }
    Ok(Digest(hasher.finalize().into()))
}

fn is_mime_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.' | b'_')
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn sha256(bytes: &[u8]) -> Digest {
    Digest(Sha256::digest(bytes).into())
}

/// Makes the description cache key of an image: its kind and content digest, the vision
/// model and the prompt version (so a new model or prompt never reuses an old description).
#[derive(Debug, Clone)]
pub(crate) struct Keyer {
    model: String,
    prompt_version: [u8; 8],
}

impl Keyer {
    pub(crate) fn new(model: &str, prompt: &str, max_tokens: u32) -> Self {
        Keyer {
            model: model.to_owned(),
            prompt_version: prompt_version(prompt, max_tokens),
        }
    }

    pub(crate) fn key(&self, kind: ImageKind, content: &Digest) -> Digest {
        let mut h = Sha256::new();
        h.update(b"hunyuan-proxy/image-description/v1\0");
        h.update(match kind {
            ImageKind::Remote => b"url\0",
            ImageKind::Inline => b"img\0",
        });
        h.update(content.0);
        h.update((self.model.len() as u64).to_le_bytes());
        h.update(self.model.as_bytes());
        h.update(self.prompt_version);
        Digest(h.finalize().into())
    }
}

/// The first 8 bytes of SHA-256 over the prompt and `max_tokens`.
pub(crate) fn prompt_version(prompt: &str, max_tokens: u32) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(prompt.as_bytes());
    h.update([0]);
    h.update(max_tokens.to_le_bytes());
    let full: [u8; 32] = h.finalize().into();
    let mut out = [0u8; 8];
    out.copy_from_slice(&full[..8]);
    out
}

/// The text left in a tool result whose images moved to the user turn after it.
pub(crate) const TOOL_IMAGES_MOVED: &str = "(the image is in the next message)";

/// Moves the image parts of tool messages into a user message after each run of tool
/// messages, for a model that sees images natively: OpenAI's chat format (and so TokenHub's)
/// takes only text in a `tool` message, and Claude Code's Read of a PNG or Codex's
/// `view_image` arrive as images inside a tool result. The user message names the call each
/// image came from (`[Image from tool call <id>]`); a tool message left without text gets
/// [`TOOL_IMAGES_MOVED`]. Returns how many images moved; a request without images in tool
/// messages is not touched (one pass over the messages).
pub(crate) fn hoist_tool_images(chat: &mut ChatRequest) -> usize {
    use crate::chat::{Message, Role};
    if !chat
        .messages
        .iter()
        .any(|m| m.role == Role::Tool && m.has_images())
    {
        return 0;
    }
    let mut moved = 0;
    let mut out = Vec::with_capacity(chat.messages.len() + 1);
    let mut pending: Vec<ContentPart> = Vec::new();
    for mut message in std::mem::take(&mut chat.messages) {
        if message.role != Role::Tool && !pending.is_empty() {
            out.push(user_with(std::mem::take(&mut pending)));
        }
        if message.role == Role::Tool && message.has_images() {
            if let Some(Content::Parts(parts)) = message.content.take() {
                let (images, text): (Vec<_>, Vec<_>) =
                    parts.into_iter().partition(|p| p.image_url().is_some());
                let id = message.tool_call_id.as_deref().unwrap_or("?");
                pending.push(ContentPart::text_part(format!(
                    "[Image from tool call {id}]"
                )));
                moved += images.len();
                pending.extend(images);
                let text = if text.iter().any(|p| p.text().is_some_and(|t| !t.is_empty())) {
                    text
                } else {
                    vec![ContentPart::text_part(TOOL_IMAGES_MOVED)]
                };
                message.content = Some(Content::Parts(text));
            }
        }
        out.push(message);
    }
    if !pending.is_empty() {
        out.push(user_with(pending));
    }
    chat.messages = out;

    fn user_with(parts: Vec<ContentPart>) -> Message {
        let mut message = Message::text(Role::User, "");
        message.content = Some(Content::Parts(parts));
        message
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn same_bytes_same_key_whatever_the_wrapping() {
        let bytes: Vec<u8> = (0..200_000u32).map(|n| (n * 7 % 251) as u8).collect();
        let plain = format!("data:image/jpeg;base64,{}", b64(&bytes));
        let wrapped_text: String = b64(&bytes)
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n");
        let wrapped = format!("data:image/jpeg;base64,{wrapped_text}");
        let (k1, d1, c1) = digest_url(&plain, 1 << 20).unwrap();
        let (k2, d2, c2) = digest_url(&wrapped, 1 << 20).unwrap();
        assert_eq!((k1, k2), (ImageKind::Inline, ImageKind::Inline));
        assert_eq!(d1, d2);
        assert_eq!(d1, sha256(&bytes));
        assert_eq!(c1, None);
        assert_eq!(c2.as_deref(), Some(plain.as_str()));
    }

    #[test]
    fn different_model_or_prompt_different_key() {
        let content = sha256(b"png bytes");
        let base = Keyer::new("vision-a", "describe", 512);
        let key = base.key(ImageKind::Inline, &content);
        assert_eq!(
            key,
            Keyer::new("vision-a", "describe", 512).key(ImageKind::Inline, &content)
        );
        assert_ne!(
            key,
            Keyer::new("vision-b", "describe", 512).key(ImageKind::Inline, &content)
        );
        assert_ne!(
            key,
            Keyer::new("vision-a", "describe!", 512).key(ImageKind::Inline, &content)
        );
        assert_ne!(
            key,
            Keyer::new("vision-a", "describe", 513).key(ImageKind::Inline, &content)
        );
        assert_ne!(key, base.key(ImageKind::Remote, &content));
    }

    #[test]
    fn urls_are_keyed_by_their_string() {
        let (kind, d, _) = digest_url("https://example.com/a.png", 10).unwrap();
        assert_eq!(kind, ImageKind::Remote);
        assert_eq!(d, sha256(b"https://example.com/a.png"));
        assert_ne!(d, digest_url("https://example.com/b.png", 10).unwrap().1);
    }

    #[test]
    fn bad_data_urls_are_refused() {
        let max = 1024;
        assert_eq!(
            digest_url("ftp://x/y.png", max).unwrap_err(),
            ImageProblem::NotAnImageUrl
        );
        assert_eq!(
            digest_url("file:///etc/passwd", max).unwrap_err(),
            ImageProblem::NotAnImageUrl
        );
        assert_eq!(
            digest_url("data:text/plain;base64,aGVsbG8=", max).unwrap_err(),
            ImageProblem::NotAnImage
        );
        assert_eq!(
            digest_url("data:image/png,raw", max).unwrap_err(),
            ImageProblem::NotBase64DataUrl
        );
        assert_eq!(
            digest_url("data:image/png;base64,@@@@", max).unwrap_err(),
            ImageProblem::BadBase64
        );
        assert_eq!(
            digest_url("data:image/png;base64,", max).unwrap_err(),
            ImageProblem::Empty
        );
        let big = format!("data:image/png;base64,{}", b64(&vec![1u8; 2000]));
        assert_eq!(
            digest_url(&big, max).unwrap_err(),
            ImageProblem::TooLarge(max)
        );
        assert!(digest_url("DATA:IMAGE/PNG;BASE64,aGVsbG8", max).is_ok());
    }

    #[test]
    fn padding_in_the_middle_is_refused() {
        let mut text = "A".repeat(CHUNK - 4);
        text.push_str("AA==");
        text.push_str("AAAA");
        assert_eq!(
            digest_base64(text.as_bytes(), usize::MAX).unwrap_err(),
            ImageProblem::BadBase64
        );
    }

    #[test]
    fn scan_finds_images_everywhere_and_names_the_part() {
        let chat: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://x/1.png"}}
                ]},
                {"role": "assistant", "content": "ok"},
                {"role": "tool", "tool_call_id": "c", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}
                ]},
                {"role": "user", "content": [
                    {"type": "text", "text": "and"},
                    {"type": "image_url", "image_url": {"url": "data:text/html;base64,aGVsbG8="}}
                ]}
            ]
        }))
        .unwrap();
        let err = scan(&chat, 20, 1024, None).unwrap_err();
        assert_eq!(err.param(), Some("messages[3].content[1]"));
        let mut ok = chat.clone();
        ok.messages.pop();
        let found = scan(&ok, 20, 1024, None).unwrap();
        assert_eq!(
            found
                .iter()
                .map(|f| (f.message, f.part))
                .collect::<Vec<_>>(),
            [(0, 1), (2, 0)]
        );
        assert_eq!(
            scan(&ok, 1, 1024, None).unwrap_err().param(),
            Some("messages")
        );
    }

    #[test]
    fn image_types_are_checked_when_limited() {
        let types: Vec<String> = ["jpeg", "jpg", "png", "webp"].map(String::from).into();
        let with = |url: &str| -> ChatRequest {
            serde_json::from_value(
                serde_json::json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}}]}]}),
            )
            .unwrap()
        };
        for ok in [
            "data:image/png;base64,aGVsbG8=",
            "data:image/webp;base64,aGVsbG8=",
            "https://x.test/a.JPG?size=2",
            "https://x.test/picture",
        ] {
            assert!(scan(&with(ok), 20, 1024, Some(&types)).is_ok(), "{ok}");
        }
        for bad in ["data:image/gif;base64,aGVsbG8=", "https://x.test/a.gif"] {
            let err = scan(&with(bad), 20, 1024, Some(&types)).unwrap_err();
            assert_eq!(err.param(), Some("messages[0].content[0]"), "{bad}");
            assert!(err.to_string().contains("png"), "{err}");
        }
        assert!(scan(&with("data:image/gif;base64,aGVsbG8="), 20, 1024, None).is_ok());
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip_to_their_digest(bytes in proptest::collection::vec(any::<u8>(), 1..5000)) {
            let url = format!("data:image/png;base64,{}", b64(&bytes));
            let (_, digest, _) = digest_url(&url, 10_000).unwrap();
            prop_assert_eq!(digest, sha256(&bytes));
        }

        #[test]
        fn arbitrary_urls_never_panic(url in ".{0,200}") {
            let _ = digest_url(&url, 1000);
            let _ = digest_url(&format!("data:image/png;base64,{url}"), 1000);
        }
    }
}
