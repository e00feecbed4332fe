//! When a failed upstream attempt is tried again, and after how long: a policy with no I/O.
//!
//! An attempt is retried, before any byte of the answer can have reached the client, when it
//! failed for a [`RetryReason`] (a connection failure, 429, 500/502/503/504, or a whole answer
//! that broke off while being read), fewer than `max_retries` retries were made, and the wait
//! ends before the first-byte deadline (`first_byte_timeout` after the request was first
//! sent). The wait is the upstream's `Retry-After` (429 and 503 only, capped at a minute), or
//! exponential backoff with jitter.

use http::{header, HeaderMap, StatusCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The longest `Retry-After` honoured.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why a failed attempt may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryReason {
    /// The connection could not be made.
    Connect,
    /// 429.
    TooManyRequests,
    /// 500.
    InternalServerError,
    /// 502.
    BadGateway,
    /// 503.
    ServiceUnavailable,
    /// 504.
    GatewayTimeout,
    /// A whole (non-streamed) answer broke off while being read.
    BrokenBody,
}

impl RetryReason {
    /// The reason an error status may be retried for; `None` for any other status.
    pub(crate) fn of_status(status: StatusCode) -> Option<Self> {
        Some(match status.as_u16() {
            429 => RetryReason::TooManyRequests,
            500 => RetryReason::InternalServerError,
            502 => RetryReason::BadGateway,
            503 => RetryReason::ServiceUnavailable,
            504 => RetryReason::GatewayTimeout,
            _ => return None,
        })
    }

    /// The label in logs and in `hunyuan_proxy_upstream_retries_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            RetryReason::Connect => "connect",
            RetryReason::TooManyRequests => "429",
            RetryReason::InternalServerError => "500",
            RetryReason::BadGateway => "502",
            RetryReason::ServiceUnavailable => "503",
            RetryReason::GatewayTimeout => "504",
            RetryReason::BrokenBody => "broken_body",
        }
    }

    /// Whether the upstream's `Retry-After` sets the wait (429 and 503).
    fn honours_retry_after(self) -> bool {
        matches!(
            self,
            RetryReason::TooManyRequests | RetryReason::ServiceUnavailable
        )
    }
}

/// The upstream's `Retry-After` in whole seconds, capped at [`MAX_RETRY_AFTER`] (an HTTP date
/// or garbage counts as absent).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Exponential backoff with jitter: `base * 2^retry` (the exponent capped at 10), scaled by
/// `0.5 + jitter / 2` for a `jitter` in [0, 1), so by a factor in [0.5, 1.0).
pub(crate) fn backoff(base: Duration, retry: u32, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << retry.min(10));
    exp.mul_f64(0.5 + jitter.clamp(0.0, 0.999) / 2.0)
}

/// A jitter in [0, 1) from the clock's sub-second nanoseconds: enough to keep proxies that
/// failed together from retrying together, without a random-number dependency.
pub(crate) fn clock_jitter() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

/// The retry settings of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub(crate) max_retries: u32,
    /// The first retry's backoff (doubled for each further one).
    pub(crate) backoff: Duration,
    /// From the first attempt until the answer must have started.
    pub(crate) first_byte_timeout: Duration,
    /// The longest silence of one attempt before its answer starts.
    pub(crate) read_timeout: Duration,
}

/// The time limit of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttemptLimit {
    /// How long the attempt may wait for the answer to start.
    pub(crate) limit: Duration,
    /// The timeout the client is told was exceeded when it is hit: `read_timeout` when that
    /// came first, else `first_byte_timeout`.
    pub(crate) reported: Duration,
}

impl RetryPolicy {
    /// The attempts of one request whose first attempt starts `now`.
    pub(crate) fn start(&self, now: Instant) -> Attempts {
        Attempts {
            policy: *self,
            deadline: now + self.first_byte_timeout,
            retries: 0,
        }
    }
}

/// One request's attempts: counts the retries and keeps the first-byte deadline.
#[derive(Debug, Clone)]
pub(crate) struct Attempts {
    policy: RetryPolicy,
    deadline: Instant,
    retries: u32,
}

impl Attempts {
    /// The next attempt's limit at `now`: one timer bounds both its silence
    /// (`read_timeout`) and the time left before the answer must start.
    pub(crate) fn limit(&self, now: Instant) -> AttemptLimit {
        let remaining = self.deadline.saturating_duration_since(now);
        if self.policy.read_timeout < remaining {
            AttemptLimit {
                limit: self.policy.read_timeout,
                reported: self.policy.read_timeout,
            }
        } else {
            AttemptLimit {
                limit: remaining,
                reported: self.policy.first_byte_timeout,
            }
        }
    }

    /// After an attempt failed at `now` for `reason`: how long to wait before the next
    /// attempt, counted as a retry, or `None` to give up.
    /// `retry_after` is the upstream's (see [`retry_after`]); `jitter` in [0, 1) scales the
    /// backoff (see [`backoff`]).
    pub(crate) fn retry(
        &mut self,
        reason: RetryReason,
        retry_after: Option<Duration>,
        now: Instant,
        jitter: f64,
    ) -> Option<Duration> {
        if self.retries >= self.policy.max_retries {
            return None;
        }
        let wait = retry_after
            .filter(|_| reason.honours_retry_after())
            .unwrap_or_else(|| backoff(self.policy.backoff, self.retries, jitter));
        if now + wait >= self.deadline {
            return None;
        }
        self.retries += 1;
        Some(wait)
    }

    /// Retries made so far.
    pub(crate) fn retries(&self) -> u32 {
        self.retries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const SEC: Duration = Duration::from_secs(1);

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            backoff: Duration::from_millis(250),
            first_byte_timeout: Duration::from_secs(600),
            read_timeout: Duration::from_secs(60),
        }
    }

    fn headers(retry_after: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(retry_after).unwrap(),
        );
        headers
    }

    #[test]
    fn connect_errors_429_the_retryable_5xx_and_broken_bodies_are_retried_and_no_other() {
        let retried: Vec<u16> = (100..600)
            .filter(|&code| RetryReason::of_status(StatusCode::from_u16(code).unwrap()).is_some())
            .collect();
        assert_eq!(retried, [429, 500, 502, 503, 504]);
        let mut attempts = policy().start(Instant::now());
        for reason in [RetryReason::Connect, RetryReason::BrokenBody] {
            assert!(attempts.retry(reason, None, Instant::now(), 0.5).is_some());
        }
    }

    #[test]
    fn backoff_doubles_within_the_jitter_bounds() {
        let base = Duration::from_millis(100);
        for retry in 0..4 {
            let full = base * (1 << retry);
            assert_eq!(backoff(base, retry, 0.0), full / 2);
            let top = backoff(base, retry, 0.999_999);
            assert!(
                top < full && top > full.mul_f64(0.99),
                "{top:?} for {full:?}"
            );
            for _ in 0..50 {
                let wait = backoff(base, retry, clock_jitter());
                assert!(wait >= full / 2 && wait < full, "{wait:?} for {full:?}");
            }
        }
        // The exponent stops growing, and a huge base saturates instead of overflowing.
        assert_eq!(backoff(base, 40, 0.0), backoff(base, 10, 0.0));
        assert!(backoff(Duration::MAX, 10, 0.0) > Duration::from_secs(1 << 40));
    }

    #[test]
    fn successive_retries_wait_longer() {
        let mut attempts = policy().start(Instant::now());
        let waits: Vec<Duration> = (0..3)
            .map(|_| {
                let reason = RetryReason::ServiceUnavailable;
                attempts.retry(reason, None, Instant::now(), 0.0).unwrap()
            })
            .collect();
        assert_eq!(
            waits,
            [125, 250, 500].map(Duration::from_millis),
            "base 250 ms, no jitter"
        );
    }

    #[test]
    fn retry_after_is_honoured_for_429_and_503_and_capped_at_a_minute() {
        assert_eq!(retry_after(&headers("7")), Some(7 * SEC));
        assert_eq!(retry_after(&headers(" 3 ")), Some(3 * SEC));
        assert_eq!(retry_after(&headers("3600")), Some(60 * SEC));
        assert_eq!(retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);

        let now = Instant::now();
        let mut attempts = policy().start(now);
        let rate_limited = RetryReason::TooManyRequests;
        assert_eq!(
            attempts.retry(rate_limited, Some(7 * SEC), now, 0.0),
            Some(7 * SEC)
        );
        let unavailable = RetryReason::ServiceUnavailable;
        assert_eq!(
            attempts.retry(unavailable, Some(60 * SEC), now, 0.0),
            Some(60 * SEC)
        );
        // A 500's Retry-After is not the upstream asking for a pause: backoff as usual.
        let failed = RetryReason::InternalServerError;
        assert_eq!(
            attempts.retry(failed, Some(60 * SEC), now, 0.0),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn no_retry_whose_wait_ends_past_the_first_byte_deadline() {
        let start = Instant::now();
        let policy = RetryPolicy {
            first_byte_timeout: 10 * SEC,
            ..policy()
        };
        let mut attempts = policy.start(start);
        let rate_limited = RetryReason::TooManyRequests;
        assert_eq!(
            attempts.retry(rate_limited, Some(10 * SEC), start, 0.0),
            None
        );
        assert_eq!(
            attempts.retry(rate_limited, Some(9 * SEC), start, 0.0),
            Some(9 * SEC)
        );
        // Later in the request the same wait no longer fits.
        assert_eq!(
            attempts.retry(rate_limited, Some(2 * SEC), start + 8 * SEC, 0.0),
            None
        );
        assert_eq!(attempts.retries(), 1);
    }

    #[test]
    fn retries_stop_at_max_retries() {
        let mut attempts = policy().start(Instant::now());
        let reason = RetryReason::BadGateway;
        let made = std::iter::from_fn(|| attempts.retry(reason, None, Instant::now(), 0.0)).count();
        assert_eq!(made, 3);
        assert_eq!(attempts.retries(), 3);
        let mut none = RetryPolicy {
            max_retries: 0,
            ..policy()
        }
        .start(Instant::now());
        assert_eq!(none.retry(reason, None, Instant::now(), 0.0), None);
    }

    #[test]
    fn an_attempt_is_bounded_by_the_silence_limit_or_the_time_left() {
        let start = Instant::now();
        let attempts = RetryPolicy {
            first_byte_timeout: 100 * SEC,
            read_timeout: 30 * SEC,
            ..policy()
        }
        .start(start);
        assert_eq!(
            attempts.limit(start),
            AttemptLimit {
                limit: 30 * SEC,
                reported: 30 * SEC
            }
        );
        assert_eq!(
            attempts.limit(start + 80 * SEC),
            AttemptLimit {
                limit: 20 * SEC,
                reported: 100 * SEC
            }
        );
        assert_eq!(attempts.limit(start + 200 * SEC).limit, Duration::ZERO);
    }
}
