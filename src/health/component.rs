//! The [`ComponentHealth`] trait, check results and the [`HealthRegistry`].

use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// A component's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Working.
    Healthy,
    /// Working with trouble (e.g. the upstream rate-limits us).
    Degraded,
    /// Not working.
    Unhealthy,
}

impl HealthStatus {
    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The status.
    pub status: HealthStatus,
    /// A short explanation for people (never a secret or a third party's error text).
    pub message: String,
}

impl CheckResult {
    /// Healthy, with `message`.
    pub fn healthy(message: impl Into<String>) -> Self {
        CheckResult {
            status: HealthStatus::Healthy,
            message: message.into(),
        }
    }

    /// Degraded, with `message`.
    pub fn degraded(message: impl Into<String>) -> Self {
        CheckResult {
            status: HealthStatus::Degraded,
            message: message.into(),
        }
    }

    /// Unhealthy, with `message`.
    pub fn unhealthy(message: impl Into<String>) -> Self {
        CheckResult {
            status: HealthStatus::Unhealthy,
            message: message.into(),
        }
    }
}

/// The future a check returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = CheckResult> + Send + 'a>>;

/// A component whose health can be checked. Register it in a [`HealthRegistry`].
pub trait ComponentHealth: Send + Sync + 'static {
    /// Checks the component. The registry bounds it with a timeout; keep it cheap (cache
    /// results of expensive probes).
    fn check(&self) -> CheckFuture<'_>;
}

/// A check made from an async closure; see [`check_fn`].
pub struct FnCheck<F>(F);

impl<F> std::fmt::Debug for FnCheck<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnCheck")
    }
}

/// A [`ComponentHealth`] from an async closure.
///
/// ```
/// use hunyuan_proxy::health::{check_fn, CheckResult};
/// let check = check_fn(|| async { CheckResult::healthy("disk has room") });
/// # let _ = check;
/// ```
pub fn check_fn<F, Fut>(f: F) -> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CheckResult> + Send + 'static,
{
    FnCheck(f)
}

impl<F, Fut> ComponentHealth for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CheckResult> + Send + 'static,
{
    fn check(&self) -> CheckFuture<'_> {
        Box::pin((self.0)())
    }
}

/// One component's result in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentReport {
    /// The status.
    pub status: HealthStatus,
    /// The explanation.
    pub message: String,
    /// Whether readiness depends on it.
    pub critical: bool,
    /// When the check ran (RFC 3339, UTC).
    pub checked_at: String,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
}

/// The results of every registered check.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HealthReport {
    /// By component name.
    pub components: BTreeMap<String, ComponentReport>,
}

impl HealthReport {
    /// Unhealthy if a critical component is unhealthy; degraded if any component is degraded
    /// or a non-critical one unhealthy; else healthy.
    pub fn overall(&self) -> HealthStatus {
        let mut overall = HealthStatus::Healthy;
        for c in self.components.values() {
            let status = match (c.status, c.critical) {
                (HealthStatus::Unhealthy, false) => HealthStatus::Degraded,
                (status, _) => status,
            };
            overall = overall.max(status);
        }
        overall
    }

    /// Names of the critical components that are unhealthy.
    pub fn failing(&self) -> Vec<String> {
        self.components
            .iter()
            .filter(|(_, c)| c.critical && c.status == HealthStatus::Unhealthy)
            .map(|(name, _)| name.clone())
            .collect()
    }
}

#[derive(Clone)]
struct Entry {
    name: String,
    check: Arc<dyn ComponentHealth>,
    critical: bool,
}

/// Named health checks; clones share the same set. Users register their own by name.
#[derive(Clone, Default)]
pub struct HealthRegistry {
    entries: Arc<RwLock<Vec<Entry>>>,
}

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthRegistry")
            .field("components", &self.names())
            .finish()
    }
}

impl HealthRegistry {
    /// No checks.
    pub fn new() -> Self {
        HealthRegistry::default()
    }

    /// Registers a critical check (readiness depends on it), replacing one of the same name.
    pub fn register(&self, name: impl Into<String>, check: impl ComponentHealth) {
        self.register_with(name, Arc::new(check), true);
    }

    /// Registers a check that shows in `/health` but does not decide readiness.
    pub fn register_non_critical(&self, name: impl Into<String>, check: impl ComponentHealth) {
        self.register_with(name, Arc::new(check), false);
    }

    /// Registers a shared check, critical or not, replacing one of the same name.
    pub fn register_with(
        &self,
        name: impl Into<String>,
        check: Arc<dyn ComponentHealth>,
        critical: bool,
    ) {
        let name = name.into();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|e| e.name != name);
        entries.push(Entry {
            name,
            check,
            critical,
        });
    }

    /// Removes the check `name`; whether there was one.
    pub fn unregister(&self, name: &str) -> bool {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let before = entries.len();
        entries.retain(|e| e.name != name);
        entries.len() != before
    }

    /// The registered names, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|e| e.name.clone())
            .collect()
    }

    /// Runs every check concurrently, each bounded by `timeout` (a check that takes longer is
    /// unhealthy).
    pub async fn check_all(&self, timeout: Duration) -> HealthReport {
        let entries: Vec<Entry> = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let runs = entries.iter().map(|entry| async move {
            let at = SystemTime::now();
            let started = Instant::now();
            let result = match tokio::time::timeout(timeout, entry.check.check()).await {
                Ok(result) => result,
                Err(_) => CheckResult::unhealthy(format!(
                    "the check did not finish within {} ms",
                    timeout.as_millis()
                )),
            };
            let report = ComponentReport {
                status: result.status,
                message: result.message,
                critical: entry.critical,
                checked_at: super::rfc3339(at),
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            };
            (entry.name.clone(), report)
        });
        HealthReport {
            components: futures_util::future::join_all(runs)
                .await
                .into_iter()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_run_concurrently_with_a_timeout() {
        let registry = HealthRegistry::new();
        registry.register("fast", check_fn(|| async { CheckResult::healthy("ok") }));
        registry.register(
            "slow",
            check_fn(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                CheckResult::healthy("late")
            }),
        );
        registry.register_non_critical(
            "flaky",
            check_fn(|| async { CheckResult::unhealthy("down") }),
        );
        let started = Instant::now();
        let report = registry.check_all(Duration::from_millis(100)).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(report.components["fast"].status, HealthStatus::Healthy);
        assert_eq!(report.components["slow"].status, HealthStatus::Unhealthy);
        assert!(report.components["slow"].message.contains("100 ms"));
        assert_eq!(report.failing(), vec!["slow".to_owned()]);
        assert_eq!(report.overall(), HealthStatus::Unhealthy);
        assert!(registry.unregister("slow"));
        let report = registry.check_all(Duration::from_millis(100)).await;
        // A non-critical unhealthy component only degrades.
        assert_eq!(report.overall(), HealthStatus::Degraded);
        assert!(report.failing().is_empty());
    }
}
