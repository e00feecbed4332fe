//! Alert rules: plain data (name, metric, condition, threshold, severity, message, minimum
//! sample count) evaluated against the [`Monitor`] by a background task.
//!
//! A rule fires when its condition holds and the window has at least `min_samples` samples
//! for its metric. Once firing, it stops only when the value is back past the threshold by
//! the rule's `hysteresis` (a fraction of the threshold, 10 % by default), so a value that
//! hovers at the threshold does not flap with every sample. Without enough samples a rule is
//! not firing: no data, no alert. Each start and stop is logged once (starts at `warn` for
//! low/medium and `error` for high/critical severity, stops at `info`) and counted in
//! `hunyuan_proxy_alert_transitions_total`.

use super::monitor::{Monitor, MonitorSnapshot};
use super::names;
use crate::error::InvalidConfig;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;

/// What a rule compares.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlertMetric {
    /// `error_rate`: share of the window's requests that failed (5xx, 429), 0–1.
    ErrorRate,
    /// `success_rate`: share of the window's requests that succeeded, 0–1.
    SuccessRate,
    /// `p50_latency`, `p95_latency`, `p99_latency`: text-only requests, seconds.
    TextLatency(Quantile),
    /// `image_p50_latency`, `image_p95_latency`, `image_p99_latency`: requests with images.
    ImageLatency(Quantile),
    /// `cache_hit_rate`: share of the window's description lookups that hit, 0–1; its sample
    /// count is the number of lookups.
    CacheHitRate,
    /// `requests_per_second` over the window.
    RequestRate,
    /// `counter:NAME`: a user counter of the monitor.
    Counter(String),
    /// `gauge:NAME`: a user gauge of the monitor.
    Gauge(String),
    /// `histogram_p50:NAME`, `histogram_p95:NAME`, `histogram_p99:NAME`: a user histogram.
    Histogram(Quantile, String),
}

/// A percentile a latency metric refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantile {
    /// Median.
    P50,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
}

impl Quantile {
    fn name(self) -> &'static str {
        match self {
            Quantile::P50 => "p50",
            Quantile::P95 => "p95",
            Quantile::P99 => "p99",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "p50" => Some(Quantile::P50),
            "p95" => Some(Quantile::P95),
            "p99" => Some(Quantile::P99),
            _ => None,
        }
    }

    fn pick(self, s: &super::monitor::LatencySummary) -> Option<f64> {
        match self {
            Quantile::P50 => s.p50,
            Quantile::P95 => s.p95,
            Quantile::P99 => s.p99,
        }
    }
}

impl fmt::Display for AlertMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlertMetric::ErrorRate => f.write_str("error_rate"),
            AlertMetric::SuccessRate => f.write_str("success_rate"),
            AlertMetric::TextLatency(q) => write!(f, "{}_latency", q.name()),
            AlertMetric::ImageLatency(q) => write!(f, "image_{}_latency", q.name()),
            AlertMetric::CacheHitRate => f.write_str("cache_hit_rate"),
            AlertMetric::RequestRate => f.write_str("requests_per_second"),
            AlertMetric::Counter(name) => write!(f, "counter:{name}"),
            AlertMetric::Gauge(name) => write!(f, "gauge:{name}"),
            AlertMetric::Histogram(q, name) => write!(f, "histogram_{}:{name}", q.name()),
        }
    }
}

impl FromStr for AlertMetric {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || {
            format!(
                "unknown alert metric `{s}`; expected error_rate, success_rate, p50_latency, \
                 p95_latency, p99_latency, image_p95_latency (…), cache_hit_rate, \
                 requests_per_second, counter:NAME, gauge:NAME or histogram_p95:NAME (…)"
            )
        };
        if let Some((kind, name)) = s.split_once(':') {
            if name.is_empty() {
                return Err(unknown());
            }
            return match kind {
                "counter" => Ok(AlertMetric::Counter(name.to_owned())),
                "gauge" => Ok(AlertMetric::Gauge(name.to_owned())),
                _ => kind
                    .strip_prefix("histogram_")
                    .and_then(Quantile::parse)
                    .map(|q| AlertMetric::Histogram(q, name.to_owned()))
                    .ok_or_else(unknown),
            };
        }
        match s {
            "error_rate" => Ok(AlertMetric::ErrorRate),
            "success_rate" => Ok(AlertMetric::SuccessRate),
            "cache_hit_rate" => Ok(AlertMetric::CacheHitRate),
            "requests_per_second" => Ok(AlertMetric::RequestRate),
            _ => {
                let latency = s.strip_suffix("_latency").ok_or_else(unknown)?;
                match latency.strip_prefix("image_") {
                    Some(q) => Quantile::parse(q).map(AlertMetric::ImageLatency),
                    None => Quantile::parse(latency).map(AlertMetric::TextLatency),
                }
                .ok_or_else(unknown)
            }
        }
    }
}

impl Serialize for AlertMetric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AlertMetric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl AlertMetric {
    /// The metric's value and how many samples it rests on, or `None` without data.
    pub fn measure(&self, snapshot: &MonitorSnapshot, monitor: &Monitor) -> Option<(f64, u64)> {
        let n = snapshot.window_samples;
        match self {
            AlertMetric::ErrorRate => snapshot.error_rate.map(|v| (v, n)),
            AlertMetric::SuccessRate => snapshot.success_rate.map(|v| (v, n)),
            AlertMetric::TextLatency(q) => q
                .pick(&snapshot.text_latency)
                .map(|v| (v, snapshot.text_latency.count)),
            AlertMetric::ImageLatency(q) => q
                .pick(&snapshot.image_latency)
                .map(|v| (v, snapshot.image_latency.count)),
            AlertMetric::CacheHitRate => {
                snapshot.cache_hit_rate.map(|v| (v, snapshot.cache_lookups))
            }
            AlertMetric::RequestRate => Some((snapshot.requests_per_second, n)),
            AlertMetric::Counter(name) => monitor.counter(name).map(|v| (v as f64, u64::MAX)),
            AlertMetric::Gauge(name) => monitor.gauge(name).map(|v| (v, u64::MAX)),
            AlertMetric::Histogram(q, name) => {
                let summary = monitor.histogram(name)?;
                q.pick(&summary).map(|v| (v, summary.count))
            }
        }
    }
}

/// How a rule compares the metric with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// value > threshold
    Gt,
    /// value ≥ threshold
    Gte,
    /// value < threshold
    Lt,
    /// value ≤ threshold
    Lte,
    /// value = threshold (within a relative 1e-9)
    Eq,
}

fn nearly_equal(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

impl Condition {
    /// Whether `value` meets the condition against `threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Condition::Gt => value > threshold,
            Condition::Gte => value >= threshold,
            Condition::Lt => value < threshold,
            Condition::Lte => value <= threshold,
            Condition::Eq => nearly_equal(value, threshold),
        }
    }
}

/// How urgent an alert is.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Worth a look soon.
    #[default]
    Medium,
    /// Users are affected.
    High,
    /// The proxy is failing.
    Critical,
}

impl Severity {
    /// `low`, `medium`, `high` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

fn default_min_samples() -> u64 {
    10
}

fn default_hysteresis() -> f64 {
    0.1
}

fn default_enabled() -> bool {
    true
}

/// One alert rule. In the config file it is a `[[alert_rules]]` table with these keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Unique name, e.g. `high_error_rate`; a config rule with a default's name replaces it.
    pub name: String,
    /// What is compared (see [`AlertMetric`] for the spellings).
    pub metric: AlertMetric,
    /// `gt`, `gte`, `lt`, `lte` or `eq`.
    pub condition: Condition,
    /// The value compared against (rates 0–1, latencies in seconds).
    pub threshold: f64,
    /// `low`, `medium` (default), `high` or `critical`.
    #[serde(default)]
    pub severity: Severity,
    /// What the alert means, for people.
    #[serde(default)]
    pub message: String,
    /// Samples the metric must rest on before the rule may fire (default 10).
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
    /// How far past the threshold, as a fraction of it, the value must come back before a
    /// firing rule stops (default 0.1).
    #[serde(default = "default_hysteresis")]
    pub hysteresis: f64,
    /// `false` turns the rule off (e.g. a default one).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

impl AlertRule {
    /// A rule with the default severity, no message, 10 minimum samples and 10 % hysteresis.
    pub fn new(
        name: impl Into<String>,
        metric: AlertMetric,
        condition: Condition,
        threshold: f64,
    ) -> Self {
        AlertRule {
            name: name.into(),
            metric,
            condition,
            threshold,
            severity: Severity::default(),
            message: String::new(),
            min_samples: default_min_samples(),
            hysteresis: default_hysteresis(),
            enabled: true,
        }
    }

    /// Sets the severity.
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Sets the message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Sets the minimum sample count.
    pub fn min_samples(mut self, n: u64) -> Self {
        self.min_samples = n;
        self
    }

    /// Sets the hysteresis (a fraction of the threshold, 0 ≤ h < 1).
    pub fn hysteresis(mut self, h: f64) -> Self {
        self.hysteresis = h;
        self
    }

    /// Checks the rule once, when it is added; the error names the rule's field (`threshold`)
    /// and, in its problem, the rule.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let bad = |field: &str, problem: &str| {
            Err(InvalidConfig::new(
                field,
                format!("{problem} (alert rule `{}`)", self.name),
            ))
        };
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty");
        }
        if !self.threshold.is_finite() {
            return bad("threshold", "must be a finite number");
        }
        if !(0.0..1.0).contains(&self.hysteresis) {
            return bad("hysteresis", "must be at least 0 and below 1");
        }
        Ok(())
    }

    /// The threshold a firing rule must come back past before it stops.
    fn clear_threshold(&self) -> f64 {
        let margin = self.hysteresis * self.threshold.abs();
        match self.condition {
            Condition::Gt | Condition::Gte => self.threshold - margin,
            Condition::Lt | Condition::Lte => self.threshold + margin,
            Condition::Eq => self.threshold,
        }
    }

    /// Whether the rule fires given its previous state, the metric's value and sample count.
    pub fn should_fire(&self, was_firing: bool, value: f64, samples: u64) -> bool {
        if !self.enabled || samples < self.min_samples {
            return false;
        }
        if !was_firing {
            return self.condition.holds(value, self.threshold);
        }
        match self.condition {
            Condition::Eq => {
                let margin = (self.hysteresis * self.threshold.abs()).max(0.0);
                nearly_equal(value, self.threshold) || (value - self.threshold).abs() <= margin
            }
            c => c.holds(value, self.clear_threshold()),
        }
    }
}

/// The three default rules of the original project.
pub fn default_rules() -> Vec<AlertRule> {
    vec![
        AlertRule::new(
            "high_error_rate",
            AlertMetric::ErrorRate,
            Condition::Gt,
            0.10,
        )
        .severity(Severity::High)
        .message("more than 10% of requests fail")
        .min_samples(10),
        AlertRule::new(
            "high_p95_latency",
            AlertMetric::TextLatency(Quantile::P95),
            Condition::Gt,
            5.0,
        )
        .severity(Severity::Medium)
        .message("95th percentile latency of text requests is above 5 s")
        .min_samples(20),
        AlertRule::new(
            "low_cache_hit_rate",
            AlertMetric::CacheHitRate,
            Condition::Lt,
            0.5,
        )
        .severity(Severity::Low)
        .message("fewer than half of image descriptions come from the cache")
        .min_samples(20),
    ]
}

/// A rule that is firing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveAlert {
    /// The rule's name.
    pub name: String,
    /// Its severity.
    pub severity: Severity,
    /// Its message.
    pub message: String,
    /// The metric it watches.
    pub metric: String,
    /// The value at the last check.
    pub value: f64,
    /// The threshold.
    pub threshold: f64,
    /// When it started firing (RFC 3339, UTC).
    pub since: String,
    /// Seconds since it started firing.
    pub for_seconds: u64,
}

/// A rule that started or stopped firing at a check.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTransition {
    /// The rule's name.
    pub name: String,
    /// `true`: started firing; `false`: stopped.
    pub firing: bool,
    /// The value at the check (`None` when data ran out).
    pub value: Option<f64>,
}

struct Firing {
    since: SystemTime,
    value: f64,
}

/// The rules and which of them fire. Share it as `Arc<Alerts>`.
#[derive(Default)]
pub struct Alerts {
    rules: RwLock<Vec<AlertRule>>,
    firing: Mutex<HashMap<String, Firing>>,
}

impl fmt::Debug for Alerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alerts")
            .field("rules", &self.rules())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Alerts {
    /// No rules.
    pub fn new() -> Self {
        Alerts::default()
    }

    /// The [default rules](default_rules), then `extra` (a rule named like a default one
    /// replaces it).
    pub fn with_defaults(extra: &[AlertRule]) -> Result<Self, InvalidConfig> {
        let alerts = Alerts::new();
        for rule in default_rules().into_iter().chain(extra.iter().cloned()) {
            alerts.add_rule(rule)?;
        }
        Ok(alerts)
    }

    /// Adds `rule`, replacing a rule of the same name.
    pub fn add_rule(&self, rule: AlertRule) -> Result<(), InvalidConfig> {
        rule.validate()?;
        let mut rules = self.rules.write().unwrap_or_else(PoisonError::into_inner);
        lock(&self.firing).remove(&rule.name);
        match rules.iter_mut().find(|r| r.name == rule.name) {
            Some(existing) => *existing = rule,
            None => rules.push(rule),
        }
        Ok(())
    }

    /// Removes the rule `name`; whether there was one.
    pub fn remove_rule(&self, name: &str) -> bool {
        let mut rules = self.rules.write().unwrap_or_else(PoisonError::into_inner);
        let before = rules.len();
        rules.retain(|r| r.name != name);
        lock(&self.firing).remove(name);
        rules.len() != before
    }

    /// The rules, in the order they were added.
    pub fn rules(&self) -> Vec<AlertRule> {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Evaluates every rule against `monitor` now, logs and counts the transitions, and
    /// returns them.
    pub fn evaluate(&self, monitor: &Monitor) -> Vec<AlertTransition> {
        self.evaluate_snapshot(&monitor.snapshot(), monitor)
    }

    /// Evaluates every rule against `snapshot` (user metrics come from `monitor`).
    pub fn evaluate_snapshot(
        &self,
        snapshot: &MonitorSnapshot,
        monitor: &Monitor,
    ) -> Vec<AlertTransition> {
        let rules = self.rules.read().unwrap_or_else(PoisonError::into_inner);
        let mut firing = lock(&self.firing);
        let mut transitions = Vec::new();
        for rule in rules.iter() {
            let measured = rule.metric.measure(snapshot, monitor);
            let was = firing.contains_key(&rule.name);
            let now = measured.is_some_and(|(value, n)| rule.should_fire(was, value, n));
            match (was, now) {
                (false, true) => {
                    let value = measured.map_or(0.0, |(v, _)| v);
                    firing.insert(
                        rule.name.clone(),
                        Firing {
                            since: SystemTime::now(),
                            value,
                        },
                    );
                    log_start(rule, value);
                    transitions.push(AlertTransition {
                        name: rule.name.clone(),
                        firing: true,
                        value: Some(value),
                    });
                }
                (true, false) => {
                    firing.remove(&rule.name);
                    tracing::info!(
                        alert = %rule.name,
                        value = measured.map(|(v, _)| v),
                        "alert resolved"
                    );
                    transitions.push(AlertTransition {
                        name: rule.name.clone(),
                        firing: false,
                        value: measured.map(|(v, _)| v),
                    });
                }
                (true, true) => {
                    if let (Some(state), Some((value, _))) = (firing.get_mut(&rule.name), measured)
                    {
                        state.value = value;
                    }
                }
                (false, false) => {}
            }
            metrics::gauge!(
                names::ALERTS_FIRING,
                "rule" => rule.name.clone(),
                "severity" => rule.severity.as_str()
            )
            .set(if now { 1.0 } else { 0.0 });
        }
        for t in &transitions {
            let state = if t.firing { "firing" } else { "resolved" };
            metrics::counter!(names::ALERT_TRANSITIONS, "rule" => t.name.clone(), "state" => state)
                .increment(1);
        }
        transitions
    }

    /// The rules firing now, most severe first.
    pub fn active(&self) -> Vec<ActiveAlert> {
        let rules = self.rules.read().unwrap_or_else(PoisonError::into_inner);
        let firing = lock(&self.firing);
        let mut active: Vec<ActiveAlert> = rules
            .iter()
            .filter_map(|rule| {
                let state = firing.get(&rule.name)?;
                Some(ActiveAlert {
                    name: rule.name.clone(),
                    severity: rule.severity,
                    message: rule.message.clone(),
                    metric: rule.metric.to_string(),
                    value: state.value,
                    threshold: rule.threshold,
                    since: crate::health::rfc3339(state.since),
                    for_seconds: state.since.elapsed().map_or(0, |d| d.as_secs()),
                })
            })
            .collect();
        active.sort_by_key(|a| std::cmp::Reverse(a.severity));
        active
    }

    /// The highest severity among firing rules.
    pub fn highest_active_severity(&self) -> Option<Severity> {
        self.active().first().map(|a| a.severity)
    }
}

fn log_start(rule: &AlertRule, value: f64) {
    let (name, metric, threshold, message) = (
        &rule.name,
        rule.metric.to_string(),
        rule.threshold,
        &rule.message,
    );
    match rule.severity {
        Severity::High | Severity::Critical => tracing::error!(
            alert = %name, severity = rule.severity.as_str(), metric, value, threshold,
            "alert firing: {message}"
        ),
        Severity::Low | Severity::Medium => tracing::warn!(
            alert = %name, severity = rule.severity.as_str(), metric, value, threshold,
            "alert firing: {message}"
        ),
    }
}

/// The background evaluator; it stops when this handle is dropped.
#[derive(Debug)]
pub struct AlertTask {
    handle: JoinHandle<()>,
}

impl AlertTask {
    /// Spawns a task on the current Tokio runtime that evaluates `alerts` against `monitor`
    /// every `interval`, calling `before_each` first (e.g. to refresh cache gauges).
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn(
        alerts: Arc<Alerts>,
        monitor: Arc<Monitor>,
        interval: Duration,
        before_each: Option<Box<dyn Fn() + Send + Sync>>,
    ) -> Self {
        let handle = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if let Some(f) = &before_each {
                    f();
                }
                alerts.evaluate(&monitor);
            }
        });
        AlertTask { handle }
    }

    /// Whether the task is still running.
    pub fn is_running(&self) -> bool {
        !self.handle.is_finished()
    }
}

impl Drop for AlertTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::monitor::{Outcome, RequestRecord};

    fn feed(m: &Monitor, ok: usize, failed: usize) {
        for _ in 0..ok {
            m.record(&RequestRecord::default());
        }
        for _ in 0..failed {
            m.record(&RequestRecord {
                outcome: Some(Outcome::ServerError),
                ..RequestRecord::default()
            });
        }
    }

    #[test]
    fn conditions() {
        assert!(Condition::Gt.holds(2.0, 1.0) && !Condition::Gt.holds(1.0, 1.0));
        assert!(Condition::Gte.holds(1.0, 1.0) && !Condition::Gte.holds(0.9, 1.0));
        assert!(Condition::Lt.holds(0.5, 1.0) && !Condition::Lt.holds(1.0, 1.0));
        assert!(Condition::Lte.holds(1.0, 1.0) && !Condition::Lte.holds(1.1, 1.0));
        assert!(Condition::Eq.holds(0.1 + 0.2, 0.3) && !Condition::Eq.holds(0.31, 0.3));
    }

    #[test]
    fn metric_names_round_trip() {
        for s in [
            "error_rate",
            "success_rate",
            "p95_latency",
            "image_p99_latency",
            "cache_hit_rate",
            "requests_per_second",
            "counter:jobs",
            "gauge:queue",
            "histogram_p50:size",
        ] {
            assert_eq!(s.parse::<AlertMetric>().unwrap().to_string(), s);
        }
        assert!("p42_latency".parse::<AlertMetric>().is_err());
        assert!("counter:".parse::<AlertMetric>().is_err());
    }

    #[test]
    fn rules_load_from_toml() {
        #[derive(Deserialize)]
        struct File {
            alert_rules: Vec<AlertRule>,
        }
        let f: File = toml::from_str(
            "[[alert_rules]]\nname = \"slow_images\"\nmetric = \"image_p95_latency\"\n\
             condition = \"gte\"\nthreshold = 30.0\nseverity = \"critical\"\n",
        )
        .unwrap();
        let rule = &f.alert_rules[0];
        assert_eq!(rule.metric, AlertMetric::ImageLatency(Quantile::P95));
        assert_eq!(rule.severity, Severity::Critical);
        assert_eq!(rule.min_samples, 10);
        let bad = toml::from_str::<File>(
            "[[alert_rules]]\nname = \"x\"\nmetric = \"nope\"\ncondition = \"gt\"\nthreshold = 1.0\n",
        );
        assert!(bad.is_err());
    }

    #[test]
    fn min_sample_guard() {
        let m = Monitor::default();
        let alerts = Alerts::with_defaults(&[]).unwrap();
        feed(&m, 0, 3); // 100 % errors, but only three requests
        assert!(alerts.evaluate(&m).is_empty());
        assert!(alerts.active().is_empty());
        feed(&m, 0, 7);
        let t = alerts.evaluate(&m);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].name, "high_error_rate");
        assert!(t[0].firing);
        assert_eq!(alerts.active()[0].severity, Severity::High);
        // Still firing: no second transition.
        assert!(alerts.evaluate(&m).is_empty());
    }

    #[test]
    fn each_condition_fires_a_rule() {
        let m = Monitor::default();
        feed(&m, 8, 2); // error rate 0.2, success rate 0.8
        let cases = [
            (AlertMetric::ErrorRate, Condition::Gt, 0.1, true),
            (AlertMetric::ErrorRate, Condition::Gt, 0.2, false),
            (AlertMetric::ErrorRate, Condition::Gte, 0.2, true),
            (AlertMetric::SuccessRate, Condition::Lt, 0.9, true),
            (AlertMetric::SuccessRate, Condition::Lt, 0.8, false),
            (AlertMetric::SuccessRate, Condition::Lte, 0.8, true),
            (AlertMetric::SuccessRate, Condition::Eq, 0.8, true),
            (AlertMetric::SuccessRate, Condition::Eq, 0.7, false),
        ];
        for (metric, condition, threshold, fires) in cases {
            let alerts = Alerts::new();
            let rule = AlertRule::new("r", metric.clone(), condition, threshold).min_samples(1);
            alerts.add_rule(rule).unwrap();
            alerts.evaluate(&m);
            assert_eq!(
                !alerts.active().is_empty(),
                fires,
                "{metric} {condition:?} {threshold}"
            );
        }
    }

    #[test]
    fn hysteresis_stops_flapping() {
        let rule = AlertRule::new("e", AlertMetric::ErrorRate, Condition::Gt, 0.10).min_samples(1);
        // Just above: fires; one sample later just below: keeps firing.
        assert!(rule.should_fire(false, 0.101, 100));
        assert!(rule.should_fire(true, 0.099, 101));
        // Not firing yet: the same value does not start it.
        assert!(!rule.should_fire(false, 0.099, 101));
        // Clearly recovered (below 0.09): stops.
        assert!(!rule.should_fire(true, 0.089, 120));
        let low = AlertRule::new("c", AlertMetric::CacheHitRate, Condition::Lt, 0.5);
        assert!(low.should_fire(true, 0.52, 50));
        assert!(!low.should_fire(true, 0.56, 50));

        // Through the monitor: 100 samples at 11 % errors fire, one success does not resolve.
        let m = Monitor::default();
        let alerts = Alerts::new();
        alerts.add_rule(rule).unwrap();
        feed(&m, 89, 11);
        assert_eq!(alerts.evaluate(&m).len(), 1);
        feed(&m, 2, 0); // 11/102 ≈ 10.8 %, then more successes...
        feed(&m, 10, 0); // 11/112 ≈ 9.8 %: below the threshold, above the clear threshold
        assert!(alerts.evaluate(&m).is_empty());
        assert_eq!(alerts.active().len(), 1);
        feed(&m, 20, 0); // 11/132 ≈ 8.3 %
        let t = alerts.evaluate(&m);
        assert_eq!(t.len(), 1);
        assert!(!t[0].firing);
    }

    #[test]
    fn a_gauge_rule_fires_and_resolves() {
        let alerts = Alerts::new();
        alerts
            .add_rule(AlertRule::new(
                "g",
                AlertMetric::Gauge("depth_t".into()),
                Condition::Gt,
                5.0,
            ))
            .unwrap();
        let m = Monitor::default();
        m.set_gauge("depth_t", 9.0);
        assert_eq!(alerts.evaluate(&m).len(), 1);
        m.set_gauge("depth_t", 1.0);
        assert!(!alerts.evaluate(&m)[0].firing);
    }

    #[test]
    fn rules_are_replaced_by_name_and_validated() {
        let alerts = Alerts::with_defaults(&[AlertRule::new(
            "high_error_rate",
            AlertMetric::ErrorRate,
            Condition::Gt,
            0.5,
        )])
        .unwrap();
        let rules = alerts.rules();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].threshold, 0.5);
        assert!(alerts.remove_rule("low_cache_hit_rate"));
        assert!(!alerts.remove_rule("low_cache_hit_rate"));
        let bad = AlertRule::new("x", AlertMetric::ErrorRate, Condition::Gt, f64::NAN);
        assert!(alerts.add_rule(bad).is_err());
    }
}
