//! [`BodyKind`]: what a chat response's body is, read from its `Content-Type` in one place.

use http::{header, HeaderMap};

/// The kinds of chat response body the layers read: a whole JSON answer or an SSE stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// `application/json`: a whole answer (or an error envelope).
    Json,
    /// `text/event-stream`: a streamed answer.
    EventStream,
}

impl BodyKind {
    /// The kind the `Content-Type` of `headers` names (parameters and case ignored); `None`
    /// for a missing, unreadable or other media type.
    pub(crate) fn of(headers: &HeaderMap) -> Option<BodyKind> {
        let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let mime = value.split(';').next()?.trim();
        if mime.eq_ignore_ascii_case("application/json") {
            Some(BodyKind::Json)
        } else if mime.eq_ignore_ascii_case("text/event-stream") {
            Some(BodyKind::EventStream)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BodyKind;
    use http::{header, HeaderMap, HeaderValue};

    fn kind(content_type: &'static str) -> Option<BodyKind> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        BodyKind::of(&headers)
    }

    #[test]
    fn the_media_type_decides_whatever_its_case_and_parameters() {
        assert_eq!(kind("application/json"), Some(BodyKind::Json));
        assert_eq!(
            kind("Application/JSON; charset=utf-8"),
            Some(BodyKind::Json)
        );
        assert_eq!(
            kind(" text/event-stream ;charset=utf-8"),
            Some(BodyKind::EventStream)
        );
        assert_eq!(kind("text/plain"), None);
        assert_eq!(kind("application/json-seq"), None);
        assert_eq!(BodyKind::of(&HeaderMap::new()), None);
    }
}
