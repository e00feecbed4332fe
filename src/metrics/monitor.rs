//! The in-process monitor: a rolling window of request samples from which the proxy computes
//! success and error rates, latency percentiles (text and image paths apart), the cache hit
//! rate and model-call counts without any Prometheus server, plus users' own counters, gauges
//! and histograms.

use super::timeseries::{self, TimeSeries, TimeSeriesSnapshot};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How the monitor keeps its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorConfig {
    /// At most this many samples are kept (the config's `max_metric_points`); the oldest go
    /// first.
    pub max_points: usize,
    /// Samples older than this are left out of every rate and percentile.
    pub window: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            max_points: 10_000,
            window: Duration::from_secs(300),
        }
    }
}

impl MonitorConfig {
    /// Sets the number of samples kept (at least 1).
    pub fn max_points(mut self, n: usize) -> Self {
        self.max_points = n.max(1);
        self
    }

    /// Sets the time window.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Checks the window can hold a sample: `max_points` at least 1, `window` at least a
    /// second (the error names the field).
    pub fn validate(&self) -> Result<(), crate::error::InvalidConfig> {
        if self.max_points == 0 {
            return Err(crate::error::InvalidConfig::new(
                "max_points",
                "must be at least 1",
            ));
        }
        if self.window < Duration::from_secs(1) {
            return Err(crate::error::InvalidConfig::new(
                "window",
                "must be at least 1 second",
            ));
        }
        Ok(())
    }
}

/// How a request ended, from the proxy's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A 1xx, 2xx or 3xx answer whose body was sent in full.
    Success,
    /// A 4xx answer other than 429: the client's mistake, not the proxy's.
    ClientError,
    /// A 5xx or 429 answer, or a service error: counts toward the error rate.
    ServerError,
    /// The client went away before the body was sent in full.
    Aborted,
}

impl Outcome {
    /// The outcome of an answer with `status` whose body was sent in full.
    pub fn from_status(status: http::StatusCode) -> Self {
        if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
            Outcome::ServerError
        } else if status.is_client_error() {
            Outcome::ClientError
        } else {
            Outcome::Success
        }
    }

    /// The metric label: `success`, `client_error`, `server_error` or `aborted`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::ClientError => "client_error",
            Outcome::ServerError => "server_error",
            Outcome::Aborted => "aborted",
        }
    }
}

/// One finished request, as the monitor records it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestRecord<'a> {
    /// From the request's arrival to the end (or drop) of its response body.
    pub duration: Duration,
    /// How it ended (`None` counts as [`Outcome::Success`]).
    pub outcome: Option<Outcome>,
    /// Whether the request carried images (the slow vision path).
    pub image: bool,
    /// Image descriptions served from the cache.
    pub cache_hits: u32,
    /// Image descriptions that needed a vision call.
    pub cache_misses: u32,
    /// The model the upstream was asked for, when it was called.
    pub model: Option<&'a str>,
    /// Fix rules that fired.
    pub fix_rules: &'a [&'static str],
    /// The error kind, for error answers.
    pub error_kind: Option<&'static str>,
    /// Time to the first byte of a streamed answer.
    pub time_to_first_byte: Option<Duration>,
    /// What a dialect could not carry, as the `x-hunyuan-proxy-dropped` header names it
    /// (comma-separated).
    pub dropped: Option<&'a str>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    seconds: f64,
    outcome: Outcome,
    image: bool,
    cache_hits: u32,
    cache_misses: u32,
}

/// Lifetime totals (not limited to the window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Requests recorded.
    pub requests: u64,
    /// Requests that succeeded.
    pub successes: u64,
    /// Requests refused as the client's mistake (4xx other than 429).
    pub client_errors: u64,
    /// Requests that failed on the proxy's or the upstream's side (5xx, 429).
    pub server_errors: u64,
    /// Requests whose client went away before the end.
    pub aborted: u64,
    /// Image descriptions served from the cache.
    pub cache_hits: u64,
    /// Image descriptions that needed a vision call.
    pub cache_misses: u64,
}

#[derive(Default)]
struct Custom {
    counters: HashMap<String, u64>,
    gauges: HashMap<String, f64>,
    histograms: HashMap<String, VecDeque<f64>>,
}

struct State {
    samples: VecDeque<Sample>,
    totals: Totals,
    models: HashMap<String, u64>,
    fix_rules: HashMap<&'static str, u64>,
    errors: HashMap<&'static str, u64>,
    dropped: HashMap<String, u64>,
    series: TimeSeries,
    custom: Custom,
}

/// Distinct dropped-item names the monitor counts apart; further ones are counted as `other`
/// (the names come from what clients send).
const MAX_DROPPED_NAMES: usize = 64;

/// The rolling window and lifetime totals. Cheap to share (`Arc<Monitor>`); recording takes
/// one short lock.
pub struct Monitor {
    config: MonitorConfig,
    started: Instant,
    /// Unix seconds at `started`: the origin of the time series' buckets.
    started_unix: u64,
    state: Mutex<State>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor::new(MonitorConfig::default())
    }
}

/// Latency percentiles over the window, in seconds (`None` without samples).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples the figures come from.
    pub count: u64,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Arithmetic mean.
    pub mean: Option<f64>,
}

impl LatencySummary {
    /// Summarises `values` (any order).
    pub fn from_values(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return LatencySummary::default();
        }
        values.sort_by(f64::total_cmp);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        LatencySummary {
            count: values.len() as u64,
            p50: percentile(&values, 50.0),
            p95: percentile(&values, 95.0),
            p99: percentile(&values, 99.0),
            mean: Some(mean),
        }
    }
}

/// The nearest-rank percentile `p` (0–100) of ascending `sorted` values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// What the monitor knows right now.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MonitorSnapshot {
    /// Samples in the window.
    pub window_samples: u64,
    /// The window's length in seconds (shorter while the process is younger than it).
    pub window_seconds: f64,
    /// Requests per second over the window.
    pub requests_per_second: f64,
    /// Share of the window's requests that succeeded (`None` without requests).
    pub success_rate: Option<f64>,
    /// Share of the window's requests that failed on the proxy's or upstream's side.
    pub error_rate: Option<f64>,
    /// Latency of text-only requests.
    pub text_latency: LatencySummary,
    /// Latency of requests with images.
    pub image_latency: LatencySummary,
    /// Cache lookups (hits plus misses) in the window.
    pub cache_lookups: u64,
    /// Share of the window's cache lookups that hit (`None` without lookups).
    pub cache_hit_rate: Option<f64>,
    /// Lifetime totals.
    pub totals: Totals,
    /// Upstream calls by model (lifetime).
    pub model_calls: BTreeMap<String, u64>,
    /// Fix rules fired by rule name (lifetime).
    pub fix_rules: BTreeMap<String, u64>,
    /// Error answers by kind (lifetime).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Items a dialect could not carry and dropped, by name (lifetime).
    pub dropped: BTreeMap<String, u64>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bump<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u64>, key: K) {
    *map.entry(key).or_insert(0) += 1;
}

impl Monitor {
    /// An empty monitor.
    pub fn new(config: MonitorConfig) -> Self {
        let config = config.max_points(config.max_points);
        Monitor {
            config,
            started: Instant::now(),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            state: Mutex::new(State {
                samples: VecDeque::with_capacity(config.max_points.min(1024)),
                totals: Totals::default(),
                models: HashMap::new(),
                fix_rules: HashMap::new(),
                errors: HashMap::new(),
                dropped: HashMap::new(),
                series: TimeSeries::default(),
                custom: Custom::default(),
            }),
        }
    }

    /// The monitor's configuration.
    pub fn config(&self) -> MonitorConfig {
        self.config
    }

    /// Records a finished request.
    pub fn record(&self, record: &RequestRecord<'_>) {
        self.record_at(Instant::now(), record);
    }

    /// Records a finished request that ended at `at`.
    pub fn record_at(&self, at: Instant, record: &RequestRecord<'_>) {
        let outcome = record.outcome.unwrap_or(Outcome::Success);
        let mut state = lock(&self.state);
        if state.samples.len() >= self.config.max_points {
            state.samples.pop_front();
        }
        state.samples.push_back(Sample {
            at,
            seconds: record.duration.as_secs_f64(),
            outcome,
            image: record.image,
            cache_hits: record.cache_hits,
            cache_misses: record.cache_misses,
        });
        let totals = &mut state.totals;
        totals.requests += 1;
        match outcome {
            Outcome::Success => totals.successes += 1,
            Outcome::ClientError => totals.client_errors += 1,
            Outcome::ServerError => totals.server_errors += 1,
            Outcome::Aborted => totals.aborted += 1,
        }
        totals.cache_hits += u64::from(record.cache_hits);
        totals.cache_misses += u64::from(record.cache_misses);
        if let Some(model) = record.model {
            match state.models.get_mut(model) {
                Some(n) => *n += 1,
                None => {
                    state.models.insert(model.to_owned(), 1);
                }
            }
        }
        for rule in record.fix_rules {
            bump(&mut state.fix_rules, *rule);
        }
        if let Some(kind) = record.error_kind {
            bump(&mut state.errors, kind);
        }
        for item in record.dropped.into_iter().flat_map(|d| d.split(',')) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let known = state.dropped.len() < MAX_DROPPED_NAMES;
            match state.dropped.get_mut(item) {
                Some(n) => *n += 1,
                None if known => {
                    state.dropped.insert(item.to_owned(), 1);
                }
                None => bump(&mut state.dropped, "other".to_owned()),
            }
        }
        let slot = self.slot(at);
        state.series.record(
            slot,
            record.duration,
            record.time_to_first_byte,
            outcome,
            record.cache_hits,
            record.cache_misses,
        );
    }

    /// The time-series bucket `at` falls in.
    fn slot(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_secs() / timeseries::BUCKET.as_secs()
    }

    /// The last hour in 10-second buckets (see [`timeseries`]).
    pub fn timeseries(&self) -> TimeSeriesSnapshot {
        let slot = self.slot(Instant::now());
        lock(&self.state).series.snapshot(slot, self.started_unix)
    }

    /// Samples in the window right now (at most `max_points`).
    pub fn len(&self) -> usize {
        lock(&self.state).samples.len()
    }

    /// Whether no sample was recorded (or all were dropped).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the monitor knows now.
    pub fn snapshot(&self) -> MonitorSnapshot {
        self.snapshot_at(Instant::now())
    }

    /// What the monitor knows at `now` (samples older than the window are left out).
    pub fn snapshot_at(&self, now: Instant) -> MonitorSnapshot {
        let state = lock(&self.state);
        let oldest = now.checked_sub(self.config.window);
        let in_window = state
            .samples
            .iter()
            .filter(|s| oldest.is_none_or(|oldest| s.at >= oldest));
        let mut text = Vec::new();
        let mut image = Vec::new();
        let (mut n, mut ok, mut err, mut hits, mut misses) = (0u64, 0u64, 0u64, 0u64, 0u64);
        for s in in_window {
            n += 1;
            match s.outcome {
                Outcome::Success => ok += 1,
                Outcome::ServerError => err += 1,
                Outcome::ClientError | Outcome::Aborted => {}
            }
            hits += u64::from(s.cache_hits);
            misses += u64::from(s.cache_misses);
            if s.image {
                image.push(s.seconds);
            } else {
                text.push(s.seconds);
            }
        }
        let to_map = |m: &HashMap<&'static str, u64>| {
            m.iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect::<BTreeMap<_, _>>()
        };
        let totals = state.totals;
        let model_calls = state.models.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let fix_rules = to_map(&state.fix_rules);
        let errors_by_kind = to_map(&state.errors);
        let dropped = state.dropped.iter().map(|(k, v)| (k.clone(), *v)).collect();
        // Sorting for the percentiles happens without the lock: recording never waits on it.
        drop(state);
        let window_seconds = now
            .saturating_duration_since(self.started)
            .min(self.config.window)
            .as_secs_f64();
        let ratio = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
        MonitorSnapshot {
            window_samples: n,
            window_seconds,
            requests_per_second: if window_seconds > 0.0 {
                n as f64 / window_seconds
            } else {
                0.0
            },
            success_rate: ratio(ok, n),
            error_rate: ratio(err, n),
            text_latency: LatencySummary::from_values(text),
            image_latency: LatencySummary::from_values(image),
            cache_lookups: hits + misses,
            cache_hit_rate: ratio(hits, hits + misses),
            totals,
            model_calls,
            fix_rules,
            errors_by_kind,
            dropped,
        }
    }

    /// Adds `by` to the user counter `name`, here and in the `metrics` facade (under the same
    /// name).
    pub fn increment_counter(&self, name: &str, by: u64) {
        *lock(&self.state)
            .custom
            .counters
            .entry(name.to_owned())
            .or_insert(0) += by;
        metrics::counter!(name.to_owned()).increment(by);
    }

    /// Sets the user gauge `name`, here and in the `metrics` facade.
    pub fn set_gauge(&self, name: &str, value: f64) {
        lock(&self.state)
            .custom
            .gauges
            .insert(name.to_owned(), value);
        metrics::gauge!(name.to_owned()).set(value);
    }

    /// Records `value` in the user histogram `name` (the monitor keeps its last `max_points`
    /// values), here and in the `metrics` facade.
    pub fn record_histogram(&self, name: &str, value: f64) {
        {
            let mut state = lock(&self.state);
            let values = state.custom.histograms.entry(name.to_owned()).or_default();
            if values.len() >= self.config.max_points {
                values.pop_front();
            }
            values.push_back(value);
        }
        metrics::histogram!(name.to_owned()).record(value);
    }

    /// The user counter `name`, if it was ever incremented.
    pub fn counter(&self, name: &str) -> Option<u64> {
        lock(&self.state).custom.counters.get(name).copied()
    }

    /// The user gauge `name`, if it was ever set.
    pub fn gauge(&self, name: &str) -> Option<f64> {
        lock(&self.state).custom.gauges.get(name).copied()
    }

    /// Percentiles of the user histogram `name`'s kept values, if it has any.
    pub fn histogram(&self, name: &str) -> Option<LatencySummary> {
        let values: Vec<f64> = lock(&self.state)
            .custom
            .histograms
            .get(name)?
            .iter()
            .copied()
            .collect();
        Some(LatencySummary::from_values(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ms: u64) -> RequestRecord<'static> {
        RequestRecord {
            duration: Duration::from_millis(ms),
            ..RequestRecord::default()
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 95.0), Some(95.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        // Four values: p50 is the 2nd, p95 and p99 the 4th.
        let s = LatencySummary::from_values(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.p50, s.p95, s.p99), (Some(2.0), Some(4.0), Some(4.0)));
        assert_eq!(s.mean, Some(2.5));
    }

    proptest::proptest! {
        #[test]
        fn percentiles_are_nearest_rank(
            mut values in proptest::collection::vec(0.0f64..1e4, 1..300),
            p in 0.0f64..=100.0,
        ) {
            values.sort_by(f64::total_cmp);
            let v = percentile(&values, p).unwrap();
            // One of the values, with at least p % of them at or below it…
            proptest::prop_assert!(values.contains(&v));
            let at_or_below = values.iter().filter(|x| **x <= v).count() as f64;
            proptest::prop_assert!(at_or_below >= (p / 100.0 * values.len() as f64).floor());
            // …and monotone in p.
            let higher = percentile(&values, (p + 5.0).min(100.0)).unwrap();
            proptest::prop_assert!(higher >= v);
        }
    }

    #[test]
    fn rates_and_percentiles_over_the_window() {
        let m = Monitor::default();
        for ms in 1..=90 {
            m.record(&ok(ms));
        }
        for _ in 0..10 {
            m.record(&RequestRecord {
                duration: Duration::from_millis(1000),
                outcome: Some(Outcome::ServerError),
                error_kind: Some("bad_gateway"),
                ..RequestRecord::default()
            });
        }
        for _ in 0..4 {
            m.record(&RequestRecord {
                duration: Duration::from_secs(20),
                image: true,
                cache_hits: 3,
                cache_misses: 1,
                model: Some("hunyuan-vision"),
                ..RequestRecord::default()
            });
        }
        let s = m.snapshot();
        assert_eq!(s.window_samples, 104);
        assert_eq!(s.text_latency.count, 100);
        assert_eq!(s.text_latency.p50, Some(0.05));
        assert_eq!(s.text_latency.p95, Some(1.0));
        assert_eq!(s.image_latency.count, 4);
        assert_eq!(s.image_latency.p99, Some(20.0));
        assert!((s.error_rate.unwrap() - 10.0 / 104.0).abs() < 1e-12);
        assert!((s.success_rate.unwrap() - 94.0 / 104.0).abs() < 1e-12);
        assert_eq!(s.cache_lookups, 16);
        assert_eq!(s.cache_hit_rate, Some(0.75));
        assert_eq!(s.model_calls["hunyuan-vision"], 4);
        assert_eq!(s.errors_by_kind["bad_gateway"], 10);
        assert_eq!(s.totals.server_errors, 10);
    }

    #[test]
    fn empty_window_has_no_rates() {
        let s = Monitor::default().snapshot();
        assert_eq!(s.success_rate, None);
        assert_eq!(s.error_rate, None);
        assert_eq!(s.cache_hit_rate, None);
        assert_eq!(s.text_latency.p95, None);
    }

    #[test]
    fn window_bound_is_respected() {
        let m = Monitor::new(MonitorConfig::default().max_points(5));
        for ms in 1..=12 {
            m.record(&ok(ms));
        }
        assert_eq!(m.len(), 5);
        let s = m.snapshot();
        assert_eq!(s.window_samples, 5);
        // Only the last five (8..=12 ms) remain; lifetime totals keep counting.
        assert_eq!(s.text_latency.p50, Some(0.010));
        assert_eq!(s.totals.requests, 12);
        for _ in 0..50 {
            m.record_histogram("queue_depth_test_only", 1.0);
        }
        assert_eq!(m.histogram("queue_depth_test_only").unwrap().count, 5);
    }

    #[test]
    fn old_samples_leave_the_time_window() {
        let m = Monitor::new(MonitorConfig::default().window(Duration::from_secs(60)));
        let start = Instant::now();
        m.record_at(
            start,
            &RequestRecord {
                outcome: Some(Outcome::ServerError),
                ..ok(5)
            },
        );
        m.record_at(start + Duration::from_secs(30), &ok(5));
        let later = m.snapshot_at(start + Duration::from_secs(70));
        assert_eq!(later.window_samples, 1);
        assert_eq!(later.error_rate, Some(0.0));
    }

    #[test]
    fn the_time_series_and_dropped_items_are_fed_by_each_record() {
        let m = Monitor::default();
        m.record(&RequestRecord {
            duration: Duration::from_millis(300),
            time_to_first_byte: Some(Duration::from_millis(40)),
            dropped: Some("top_k, tool:bash_20250124"),
            ..RequestRecord::default()
        });
        m.record(&RequestRecord {
            outcome: Some(Outcome::ClientError),
            dropped: Some("top_k"),
            ..ok(10)
        });
        let series = m.timeseries();
        assert_eq!(series.last_hour.counts.requests, 2);
        assert_eq!(series.last_hour.counts.client_errors, 1);
        assert_eq!(series.last_hour.ttft.count, 1);
        let p50 = series.last_hour.ttft.p50.unwrap();
        assert!((p50 - 0.040).abs() < 0.005, "{p50}");
        assert_eq!(series.buckets.len(), 1);
        assert!(series.now >= series.buckets[0].start);
        let dropped = m.snapshot().dropped;
        assert_eq!(dropped["top_k"], 2);
        assert_eq!(dropped["tool:bash_20250124"], 1);
        // Names come from clients: past the cap they are folded into `other`.
        for n in 0..100 {
            let name = format!("tool:x{n}");
            m.record(&RequestRecord {
                dropped: Some(&name),
                ..ok(1)
            });
        }
        let dropped = m.snapshot().dropped;
        assert_eq!(dropped.len(), MAX_DROPPED_NAMES + 1);
        assert_eq!(dropped["other"], 100 - (MAX_DROPPED_NAMES as u64 - 2));
    }

    #[test]
    fn custom_metrics() {
        let m = Monitor::default();
        m.increment_counter("jobs_done_test_only", 2);
        m.increment_counter("jobs_done_test_only", 3);
        m.set_gauge("queue_len_test_only", 7.5);
        assert_eq!(m.counter("jobs_done_test_only"), Some(5));
        assert_eq!(m.gauge("queue_len_test_only"), Some(7.5));
        assert_eq!(m.counter("never"), None);
    }
}
