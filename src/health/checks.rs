//! The built-in checks: the upstream, the description cache and the alert monitor.

use super::component::{CheckFuture, CheckResult, ComponentHealth};
use crate::cache::CacheHandle;
use crate::metrics::{Alerts, Severity};
use crate::upstream::Upstream;
use http::{header, StatusCode};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Probes the upstream with `GET {api_base}/models` (the configured key, a short timeout) and
/// caches the answer for a few seconds, so frequent probes cannot hammer Hunyuan; concurrent
/// checks share one probe.
///
/// 2xx is healthy; 429 is degraded (it answers, but rate-limits us); 401/403, 5xx, timeouts
/// and connection failures are unhealthy; another 4xx is degraded (it answers, but not the
/// way the probe expects).
pub struct UpstreamCheck {
    upstream: Upstream,
    timeout: Duration,
    cache_for: Duration,
    last: tokio::sync::Mutex<Option<(Instant, SystemTime, CheckResult)>>,
}

impl std::fmt::Debug for UpstreamCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCheck")
            .field("url", &self.upstream.models_url())
            .field("timeout", &self.timeout)
            .field("cache_for", &self.cache_for)
            .finish()
    }
}

impl UpstreamCheck {
    /// Probes `upstream` with a 2 s timeout, caching each answer for 5 s.
    pub fn new(upstream: Upstream) -> Self {
        UpstreamCheck {
            upstream,
            timeout: Duration::from_secs(2),
            cache_for: Duration::from_secs(5),
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// Sets the probe's timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how long an answer is reused (zero: probe every time).
    pub fn cache_for(mut self, duration: Duration) -> Self {
        self.cache_for = duration;
        self
    }

    /// The last probe's result and when it ran, if a probe ran and none is running now.
    pub fn last_result(&self) -> Option<(CheckResult, SystemTime)> {
        let last = self.last.try_lock().ok()?;
        last.as_ref().map(|(_, at, result)| (result.clone(), *at))
    }

    async fn probe(&self) -> CheckResult {
        let mut request = self.upstream.client().get(self.upstream.models_url());
        if let Some(auth) = self.upstream.auth_header() {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        let started = Instant::now();
        let response = tokio::time::timeout(self.timeout, request.timeout(self.timeout).send());
        let status = match response.await {
            Err(_) => {
                return CheckResult::unhealthy(format!(
                    "no answer within {} ms",
                    self.timeout.as_millis()
                ))
            }
            Ok(Err(err)) if err.is_timeout() => {
                return CheckResult::unhealthy(format!(
                    "no answer within {} ms",
                    self.timeout.as_millis()
                ))
            }
            Ok(Err(err)) if err.is_connect() => {
                return CheckResult::unhealthy("cannot connect to the upstream")
            }
            Ok(Err(_)) => return CheckResult::unhealthy("the probe request failed"),
            Ok(Ok(response)) => response.status(),
        };
        let ms = started.elapsed().as_millis();
        match status {
            s if s.is_success() => CheckResult::healthy(format!("answered in {ms} ms")),
            StatusCode::TOO_MANY_REQUESTS => {
                CheckResult::degraded("the upstream is rate limiting requests (429)")
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => CheckResult::unhealthy(format!(
                "the upstream refused the credentials ({}); check api_key",
                status.as_u16()
            )),
            s if s.is_server_error() => {
                CheckResult::unhealthy(format!("the upstream failed ({})", s.as_u16()))
            }
            s => CheckResult::degraded(format!(
                "the upstream answered the probe with {}",
                s.as_u16()
            )),
        }
    }
}

impl ComponentHealth for UpstreamCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let mut last = self.last.lock().await;
            if let Some((at, _, result)) = &*last {
                if at.elapsed() < self.cache_for {
                    return result.clone();
                }
            }
            let result = self.probe().await;
            *last = Some((Instant::now(), SystemTime::now(), result.clone()));
            result
        })
    }
}

/// Reports the description cache's fill and hit rate (always healthy: a cold cache works).
pub struct CacheCheck {
    cache: CacheHandle,
}

impl std::fmt::Debug for CacheCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheCheck")
    }
}

impl CacheCheck {
    /// Reports `cache`.
    pub fn new(cache: CacheHandle) -> Self {
        CacheCheck { cache }
    }
}

impl ComponentHealth for CacheCheck {
    fn check(&self) -> CheckFuture<'_> {
        let stats = self.cache.stats();
        Box::pin(async move {
            let rate = if stats.hits + stats.misses == 0 {
                "no lookups yet".to_owned()
            } else {
                format!("hit rate {:.1}%", stats.hit_rate * 100.0)
            };
            CheckResult::healthy(format!(
                "{} of {} entries, {rate}",
                stats.entries, stats.capacity
            ))
        })
    }
}

/// Degraded while a high or critical alert fires.
pub struct AlertCheck {
    alerts: Arc<Alerts>,
}

impl std::fmt::Debug for AlertCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertCheck")
    }
}

impl AlertCheck {
    /// Watches `alerts`.
    pub fn new(alerts: Arc<Alerts>) -> Self {
        AlertCheck { alerts }
    }
}

impl ComponentHealth for AlertCheck {
    fn check(&self) -> CheckFuture<'_> {
        let active = self.alerts.active();
        Box::pin(async move {
            let serious: Vec<&str> = active
                .iter()
                .filter(|a| a.severity >= Severity::High)
                .map(|a| a.name.as_str())
                .collect();
            if serious.is_empty() {
                CheckResult::healthy(format!("{} alerts firing", active.len()))
            } else {
                CheckResult::degraded(format!("firing: {}", serious.join(", ")))
            }
        })
    }
}
