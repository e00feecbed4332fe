//! [`RequestLog`]: the last requests' metadata, in memory, and optionally one JSON line per
//! request on stdout or in a file. Message contents are never in it.

use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

/// The proxy's id for a request, shown as `<prefix>-<sequence>` (unique within the process;
/// the prefix, the process's start time in hex, makes different processes' ids differ). Made
/// as text only when the log is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId {
    /// The process's prefix.
    pub prefix: Arc<str>,
    /// The request's number in the process.
    pub sequence: u64,
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.prefix, self.sequence)
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// When a request came in, shown as RFC 3339 (UTC, whole seconds): formatted only when the
/// log is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogTime(pub SystemTime);

impl Serialize for LogTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&crate::health::rfc3339(self.0))
    }
}

fn shared_str<S: Serializer>(value: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value)
}

/// One request of the log (an entry of `GET /admin/requests`). Its texts are shared or
/// static where they can be (the key's name, the API's own paths), so that logging a request
/// copies no strings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestLogEntry {
    /// The proxy's id for the request (unique within the process).
    pub id: RequestId,
    /// When the request came in (RFC 3339, UTC).
    pub time: LogTime,
    /// The client key's name (`anonymous` without client keys).
    #[serde(serialize_with = "shared_str")]
    pub key: Arc<str>,
    /// The route (path) the client called.
    pub route: Cow<'static, str>,
    /// The model the chat stack asked the upstream for (after aliases and the image switch).
    pub model_requested: Option<String>,
    /// The model that answered (a fallback's, if one did).
    pub model_called: Option<String>,
    /// The HTTP status the client got.
    pub status: u16,
    /// Milliseconds until the response body ended (a stream), or until the head of a whole
    /// answer (already in memory) was handed to the server.
    pub latency_ms: u64,
    /// Milliseconds until the first byte of a streamed body (none: not streamed).
    pub ttft_ms: Option<u64>,
    /// Input tokens (none: the upstream sent no usage).
    pub input_tokens: Option<u64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// Input tokens read from the upstream's cache.
    pub cached_input_tokens: Option<u64>,
    /// Reasoning tokens.
    pub reasoning_tokens: Option<u64>,
    /// Cost at the model's price (0 where none is known).
    pub cost: f64,
    /// Images described by a vision call.
    pub images_described: u64,
    /// Images whose description came from the cache.
    pub images_cached: u64,
    /// Fix rules that fired.
    pub fix_rules: Vec<&'static str>,
    /// What the client sent that its dialect or the model could not carry.
    pub dropped: Vec<String>,
    /// The upstream's id for the answer.
    pub upstream_request_id: Option<String>,
}

/// Which requests [`RequestLog::recent`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// At most this many (newest first).
    pub limit: Option<usize>,
    /// Only this key's.
    pub key: Option<String>,
    /// Only those that asked for or were answered by this model.
    pub model: Option<String>,
    /// Only those with this status (`200`), or this class (`4xx`, `5xx`).
    pub status: Option<String>,
}

impl LogFilter {
    fn matches(&self, entry: &RequestLogEntry) -> bool {
        let key_ok = self.key.as_ref().is_none_or(|k| **k == *entry.key);
        let model_ok = self.model.as_ref().is_none_or(|m| {
            entry.model_called.as_ref() == Some(m) || entry.model_requested.as_ref() == Some(m)
        });
        let status_ok = self.status.as_ref().is_none_or(|s| {
            let code = entry.status.to_string();
            match s.strip_suffix("xx") {
                Some(class) => code.starts_with(class),
                None => code == *s,
            }
        });
        key_ok && model_ok && status_ok
    }
}

/// Where each entry is also written as one JSON line.
enum Sink {
    Stdout,
    File(std::io::LineWriter<std::fs::File>),
}

/// The last `capacity` requests' metadata, and optionally one JSON line per request on
/// stdout or in a file; message contents are never in it.
pub struct RequestLog {
    capacity: usize,
    entries: Mutex<VecDeque<RequestLogEntry>>,
    sink: Option<Mutex<Sink>>,
}

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLog")
            .field("capacity", &self.capacity)
            .field("lines", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

impl RequestLog {
    /// A log keeping the last `capacity` requests in memory (0: none).
    pub fn new(capacity: usize) -> Self {
        RequestLog {
            capacity,
            entries: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            sink: None,
        }
    }

    /// Also writes each entry as one JSON line to `path` (`-`: stdout; a file is appended to).
    pub fn with_lines(mut self, path: &str) -> std::io::Result<Self> {
        let sink = if path == "-" {
            Sink::Stdout
        } else {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            Sink::File(std::io::LineWriter::new(file))
        };
        self.sink = Some(Mutex::new(sink));
        Ok(self)
    }

    /// Whether entries are kept or written anywhere (if not, none need be made).
    pub fn is_on(&self) -> bool {
        self.capacity > 0 || self.sink.is_some()
    }

    /// Adds an entry, dropping the oldest past the capacity.
    pub fn push(&self, entry: RequestLogEntry) {
        if let Some(sink) = &self.sink {
            if let Ok(mut line) = serde_json::to_vec(&entry) {
                line.push(b'\n');
                let mut sink = sink.lock().unwrap_or_else(PoisonError::into_inner);
                let written = match &mut *sink {
                    Sink::Stdout => std::io::stdout().lock().write_all(&line),
                    Sink::File(file) => file.write_all(&line),
                };
                if written.is_err() {
                    metrics::counter!(super::names::REQUEST_LOG_WRITE_ERRORS).increment(1);
                }
            }
        }
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The entries that pass `filter`, newest first (copied: reading the log is rare, adding
    /// to it is not).
    pub fn recent(&self, filter: &LogFilter) -> Vec<RequestLogEntry> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .iter()
            .rev()
            .filter(|e| filter.matches(e))
            .take(filter.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: usize, key: &str, status: u16) -> RequestLogEntry {
        RequestLogEntry {
            id: RequestId {
                prefix: Arc::from("p"),
                sequence: id as u64,
            },
            time: LogTime(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)),
            key: Arc::from(key),
            route: Cow::Borrowed("/v1/chat/completions"),
            model_requested: Some("hy4".to_owned()),
            model_called: Some("hy4".to_owned()),
            status,
            latency_ms: 1,
            ttft_ms: None,
            input_tokens: None,
            output_tokens: None,
            cached_input_tokens: None,
            reasoning_tokens: None,
            cost: 0.0,
            images_described: 0,
            images_cached: 0,
            fix_rules: Vec::new(),
            dropped: Vec::new(),
            upstream_request_id: None,
        }
    }

    #[test]
    fn json_lines_go_to_the_file_one_per_request() {
        let path = std::env::temp_dir().join(format!("usage-log-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = RequestLog::new(0)
            .with_lines(path.to_str().unwrap())
            .unwrap();
        log.push(entry(1, "a", 200));
        log.push(entry(2, "b", 429));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["key"], "b");
        assert_eq!(lines[1]["status"], 429);
        assert_eq!(lines[1]["id"], "p-2");
        assert_eq!(lines[1]["time"], "2023-11-14T22:13:20Z");
        assert_eq!(lines[1]["route"], "/v1/chat/completions");
        assert!(
            log.recent(&LogFilter::default()).is_empty(),
            "capacity 0 keeps none"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn keeps_the_newest_and_filters() {
        let log = RequestLog::new(3);
        for i in 0..5 {
            log.push(entry(
                i,
                if i % 2 == 0 { "a" } else { "b" },
                200 + i as u16 * 100,
            ));
        }
        let all = log.recent(&LogFilter::default());
        let ids: Vec<_> = all.iter().map(|e| e.id.sequence).collect();
        assert_eq!(ids, [4, 3, 2]);
        let a = log.recent(&LogFilter {
            key: Some("a".into()),
            ..LogFilter::default()
        });
        assert_eq!(a.len(), 2);
        let errors = log.recent(&LogFilter {
            status: Some("5xx".into()),
            ..LogFilter::default()
        });
        assert_eq!(errors[0].id.sequence, 3);
        let one = log.recent(&LogFilter {
            limit: Some(1),
            ..LogFilter::default()
        });
        assert_eq!(one[0].id.sequence, 4);
    }
}
