//! [`Ledger`]: usage and cost totals per UTC day and month, per model and per client key, and
//! the budgets checked against them (in the process, or in Redis shared by every replica).

use super::period::Periods;
use super::price::PriceTable;
use super::Usage;
use crate::replica::{FailureMode, Redis};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A client key's budget (`budget = { ... }` of `[client_keys.<name>]`): any of the four
/// limits, each per UTC day or month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Input plus output tokens per UTC day.
    pub tokens_per_day: Option<u64>,
    /// Input plus output tokens per UTC month.
    pub tokens_per_month: Option<u64>,
    /// Cost per UTC day, in the models' price currency.
    pub cost_per_day: Option<f64>,
    /// Cost per UTC month.
    pub cost_per_month: Option<f64>,
}

impl Budget {
    /// Whether every limit set is a finite number above zero.
    pub fn is_valid(&self) -> bool {
        let cost_ok = |c: Option<f64>| c.is_none_or(|c| c.is_finite() && c > 0.0);
        self.tokens_per_day != Some(0)
            && self.tokens_per_month != Some(0)
            && cost_ok(self.cost_per_day)
            && cost_ok(self.cost_per_month)
    }

    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        self.limits().next().is_none()
    }

    /// The limits set, with their kind.
    fn limits(&self) -> impl Iterator<Item = (BudgetKind, f64)> {
        [
            (
                BudgetKind::TokensPerDay,
                self.tokens_per_day.map(|t| t as f64),
            ),
            (
                BudgetKind::TokensPerMonth,
                self.tokens_per_month.map(|t| t as f64),
            ),
            (BudgetKind::CostPerDay, self.cost_per_day),
            (BudgetKind::CostPerMonth, self.cost_per_month),
        ]
        .into_iter()
        .filter_map(|(kind, limit)| limit.map(|l| (kind, l)))
    }
}

/// Which limit of a [`Budget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    /// Tokens per UTC day.
    TokensPerDay,
    /// Tokens per UTC month.
    TokensPerMonth,
    /// Cost per UTC day.
    CostPerDay,
    /// Cost per UTC month.
    CostPerMonth,
}

impl BudgetKind {
    /// The config key's name (`tokens_per_day`…), also the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetKind::TokensPerDay => "tokens_per_day",
            BudgetKind::TokensPerMonth => "tokens_per_month",
            BudgetKind::CostPerDay => "cost_per_day",
            BudgetKind::CostPerMonth => "cost_per_month",
        }
    }

    fn monthly(self) -> bool {
        matches!(self, BudgetKind::TokensPerMonth | BudgetKind::CostPerMonth)
    }

    fn used(self, spent: &Spent) -> f64 {
        let period = if self.monthly() {
            &spent.month
        } else {
            &spent.day
        };
        match self {
            BudgetKind::TokensPerDay | BudgetKind::TokensPerMonth => period.0 as f64,
            BudgetKind::CostPerDay | BudgetKind::CostPerMonth => period.1,
        }
    }
}

/// One limit of a key's budget now (an entry of `budgets` in `GET /status`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetState {
    /// Which limit.
    pub budget: BudgetKind,
    /// The limit.
    pub limit: f64,
    /// Used in the current period.
    pub used: f64,
    /// Left in the current period (never below zero).
    pub remaining: f64,
    /// When the period ends (RFC 3339, UTC).
    pub resets_at: String,
    /// Seconds until then.
    #[serde(skip)]
    pub resets_in: Duration,
}

impl BudgetState {
    /// Whether nothing is left.
    pub fn is_spent(&self) -> bool {
        self.used >= self.limit
    }
}

/// Usage totals of one model or key over a period (an entry of `usage` in `GET /status`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageTotals {
    /// Answered upstream calls (with or without usage).
    pub requests: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the upstream's cache.
    pub cached_input_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// Cost at the models' prices (0 where no price is known).
    pub cost: f64,
    /// The prices' currency; none where no price is known.
    pub currency: Option<String>,
}

impl UsageTotals {
    fn add(&mut self, usage: Option<&Usage>, cost: f64, currency: Option<&str>) {
        self.requests += 1;
        if let Some(u) = usage {
            self.input_tokens += u.input_tokens;
            self.output_tokens += u.output_tokens;
            self.cached_input_tokens += u.cached_input_tokens;
            self.reasoning_tokens += u.reasoning_tokens;
        }
        self.cost += cost;
        if let (None, Some(c)) = (&self.currency, currency) {
            self.currency = Some(c.to_owned());
        }
    }

    /// Tokens a budget counts: input plus output.
    fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// Totals of one period, by model and by key.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PeriodTotals {
    /// By upstream model.
    pub by_model: BTreeMap<String, UsageTotals>,
    /// By client key name.
    pub by_key: BTreeMap<String, UsageTotals>,
}

/// What `GET /status` shows under `usage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageReport {
    /// The UTC day (`YYYY-MM-DD`).
    pub day: String,
    /// The UTC month (`YYYY-MM`).
    pub month: String,
    /// Today's totals.
    pub today: PeriodTotals,
    /// This month's totals.
    pub this_month: PeriodTotals,
}

#[derive(Debug, Default)]
struct Local {
    /// Days since 1970-01-01 of the periods below (a cheap check for a new day).
    day_number: u64,
    day: String,
    month: String,
    today: PeriodTotals,
    this_month: PeriodTotals,
}

impl Local {
    /// Starts new periods when the day or month changed.
    fn roll(&mut self, periods: &Periods) {
        self.day_number = (periods.day_end / 86_400).saturating_sub(1);
        if self.day != periods.day {
            self.day = periods.day.clone();
            self.today = PeriodTotals::default();
        }
        if self.month != periods.month {
            self.month = periods.month.clone();
            self.this_month = PeriodTotals::default();
        }
    }
}

/// Tokens and cost a key spent today and this month.
#[derive(Debug, Clone, Copy, Default)]
struct Spent {
    day: (u64, f64),
    month: (u64, f64),
}

/// The budget a request ran into.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRefusal {
    /// The key's name.
    pub key: String,
    /// The spent limit.
    pub state: BudgetState,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// A budget is spent.
    Budget(BudgetRefusal),
    /// Redis is away and `redis_failure` is `closed`.
    RedisClosed,
}

/// Usage totals and budgets. See the [module docs](super).
#[derive(Debug)]
pub struct Ledger {
    prices: PriceTable,
    budgets: super::NameMap<String, Budget>,
    local: Mutex<Local>,
    redis: Option<Redis>,
}

impl Ledger {
    /// A ledger in the process, pricing with `prices`, with `budgets` by key name.
    pub fn new(prices: PriceTable, budgets: HashMap<String, Budget>) -> Self {
        Ledger {
            prices,
            budgets: budgets.into_iter().collect(),
            local: Mutex::new(Local::default()),
            redis: None,
        }
    }

    /// The same ledger, also kept in Redis (shared by every replica, kept across restarts).
    pub fn with_redis(mut self, redis: Redis) -> Self {
        self.redis = Some(redis);
        self
    }

    /// The prices.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// Whether `key` has a budget (the only keys whose requests wait for an admission check).
    pub fn has_budget(&self, key: &str) -> bool {
        self.budgets.contains_key(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Charges one answered upstream call: `usage` (none: the upstream sent none) of `model`
    /// to `key`. Returns its cost and currency. With Redis, the shared counters are updated
    /// in a task of their own (one pipelined round trip).
    pub fn charge(&self, key: &str, model: &str, usage: Option<&Usage>) -> (f64, Option<&str>) {
        self.charge_at(key, model, usage, SystemTime::now())
    }

    /// [`charge`](Self::charge) in the periods of `now` (a time the caller already has).
    pub fn charge_at(
        &self,
        key: &str,
        model: &str,
        usage: Option<&Usage>,
        now: SystemTime,
    ) -> (f64, Option<&str>) {
        let (cost, currency) = match usage {
            Some(u) => self.prices.cost(model, u),
            None => (0.0, None),
        };
        let day_number = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) / 86_400;
        {
            let mut local = self.lock();
            if local.day_number != day_number {
                local.roll(&Periods::at(now));
            }
            let Local {
                today, this_month, ..
            } = &mut *local;
            for totals in [today, this_month] {
                for (map, name) in [(&mut totals.by_model, model), (&mut totals.by_key, key)] {
                    // Found without allocating; a name's first request in a period makes it.
                    match map.get_mut(name) {
                        Some(entry) => entry.add(usage, cost, currency),
                        None => map
                            .entry(name.to_owned())
                            .or_default()
                            .add(usage, cost, currency),
                    }
                }
            }
        }
        let runtime = match &self.redis {
            Some(redis) => tokio::runtime::Handle::try_current()
                .ok()
                .map(|rt| (redis, rt)),
            None => None,
        };
        if let Some((redis, runtime)) = runtime {
            let redis = redis.clone();
            let periods = Periods::at(now);
            let usage = usage.copied().unwrap_or_default();
            let (key, model) = (key.to_owned(), model.to_owned());
            let currency = currency.map(str::to_owned);
            runtime.spawn(async move {
                charge_redis(&redis, &periods, &key, &model, &usage, cost, currency).await;
            });
        }
        (cost, currency)
    }

    /// Admits a request of `key` unless one of its budgets is spent (checked against Redis
    /// when set; while Redis is away, against this process's counts, or refused in closed
    /// mode).
    pub async fn admit(&self, key: &str) -> Result<(), Refusal> {
        if let Some(verdict) = self.admit_in_process(key) {
            return verdict;
        }
        let Some(budget) = self.budgets.get(key) else {
            return Ok(());
        };
        let spent = self.spent(key, &Periods::now()).await?;
        verdict(key, budget, &spent)
    }

    /// [`admit`](Self::admit) at once when no Redis round trip is needed (`key` has no budget,
    /// or the ledger lives in the process); `None`: ask [`admit`](Self::admit).
    pub fn admit_in_process(&self, key: &str) -> Option<Result<(), Refusal>> {
        let Some(budget) = self.budgets.get(key) else {
            return Some(Ok(()));
        };
        if self.redis.is_some() {
            return None;
        }
        let now = SystemTime::now();
        let day_number = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) / 86_400;
        let spent = {
            let mut local = self.lock();
            if local.day_number != day_number {
                local.roll(&Periods::at(now));
            }
            spent_of(&local, key)
        };
        Some(verdict(key, budget, &spent))
    }

    async fn spent(&self, key: &str, periods: &Periods) -> Result<Spent, Refusal> {
        if let Some(redis) = &self.redis {
            match spent_redis(redis, periods, key).await {
                Some(spent) => return Ok(spent),
                None if redis.failure() == FailureMode::Closed => return Err(Refusal::RedisClosed),
                None => redis.fallback("budget"),
            }
        }
        Ok(self.spent_local(key, periods))
    }

    fn spent_local(&self, key: &str, periods: &Periods) -> Spent {
        let mut local = self.lock();
        local.roll(periods);
        let of = |t: &PeriodTotals| t.by_key.get(key).map_or((0, 0.0), |u| (u.tokens(), u.cost));
        Spent {
            day: of(&local.today),
            month: of(&local.this_month),
        }
    }

    /// Every budgeted key's limits now (`budgets` in `GET /status`).
    pub async fn budgets(&self) -> BTreeMap<String, Vec<BudgetState>> {
        let periods = Periods::now();
        let mut out = BTreeMap::new();
        for (key, budget) in &self.budgets {
            let spent = match self.spent(key, &periods).await {
                Ok(spent) => spent,
                Err(_) => self.spent_local(key, &periods),
            };
            out.insert(key.clone(), states(budget, &spent, &periods));
        }
        out
    }

    /// Today's and this month's totals (`usage` in `GET /status`): from Redis when set and
    /// answering (every replica's traffic), else this process's.
    pub async fn report(&self) -> UsageReport {
        let periods = Periods::now();
        if let Some(redis) = &self.redis {
            if let Some(report) = report_redis(redis, &periods).await {
                return report;
            }
        }
        let mut local = self.lock();
        local.roll(&periods);
        UsageReport {
            day: periods.day.clone(),
            month: periods.month.clone(),
            today: local.today.clone(),
            this_month: local.this_month.clone(),
        }
    }
}

/// Admits `key` unless a limit of `budget` is spent; the states (and their reset times as
/// text) are made only for a refusal.
fn verdict(key: &str, budget: &Budget, spent: &Spent) -> Result<(), Refusal> {
    if !budget
        .limits()
        .any(|(kind, limit)| kind.used(spent) >= limit)
    {
        return Ok(());
    }
    match states(budget, spent, &Periods::now())
        .into_iter()
        .find(BudgetState::is_spent)
    {
        Some(state) => Err(Refusal::Budget(BudgetRefusal {
            key: key.to_owned(),
            state,
        })),
        None => Ok(()),
    }
}

/// What `key` spent in `local`'s periods.
fn spent_of(local: &Local, key: &str) -> Spent {
    let of = |t: &PeriodTotals| t.by_key.get(key).map_or((0, 0.0), |u| (u.tokens(), u.cost));
    Spent {
        day: of(&local.today),
        month: of(&local.this_month),
    }
}

/// The state of every limit of `budget` given what was spent.
fn states(budget: &Budget, spent: &Spent, periods: &Periods) -> Vec<BudgetState> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    budget
        .limits()
        .map(|(kind, limit)| {
            let used = kind.used(spent);
            let end = if kind.monthly() {
                periods.month_end
            } else {
                periods.day_end
            };
            BudgetState {
                budget: kind,
                limit,
                used,
                remaining: (limit - used).max(0.0),
                resets_at: crate::health::rfc3339(UNIX_EPOCH + Duration::from_secs(end)),
                resets_in: Duration::from_secs(end.saturating_sub(now)),
            }
        })
        .collect()
}

/// Redis key of a totals hash: `usage:d:<day>:key:<name>`, `usage:m:<month>:model:<name>`.
fn hash_key(redis: &Redis, period: &str, dimension: &str, name: &str) -> String {
    redis.key(&format!("usage:{period}:{dimension}:{name}"))
}

/// Redis key of the set of names with totals in a period and dimension.
fn index_key(redis: &Redis, period: &str, dimension: &str) -> String {
    redis.key(&format!("usage:{period}:{dimension}s"))
}

/// The two periods' Redis names and when their keys expire (a day after the period ends).
fn redis_periods(periods: &Periods) -> [(String, u64); 2] {
    [
        (format!("d:{}", periods.day), periods.day_end + 86_400),
        (format!("m:{}", periods.month), periods.month_end + 86_400),
    ]
}

async fn charge_redis(
    redis: &Redis,
    periods: &Periods,
    key: &str,
    model: &str,
    usage: &Usage,
    cost: f64,
    currency: Option<String>,
) {
    let mut pipe = ::redis::pipe();
    for (period, expire_at) in redis_periods(periods) {
        for (dimension, name) in [("key", key), ("model", model)] {
            let hash = hash_key(redis, &period, dimension, name);
            pipe.hincr(&hash, "requests", 1u64)
                .ignore()
                .hincr(&hash, "input_tokens", usage.input_tokens)
                .ignore()
                .hincr(&hash, "output_tokens", usage.output_tokens)
                .ignore()
                .hincr(&hash, "cached_input_tokens", usage.cached_input_tokens)
                .ignore()
                .hincr(&hash, "reasoning_tokens", usage.reasoning_tokens)
                .ignore()
                .hincr(&hash, "cost", cost)
                .ignore();
            if let Some(currency) = &currency {
                pipe.hset(&hash, "currency", currency).ignore();
            }
            pipe.expire_at(&hash, expire_at as i64).ignore();
            let index = index_key(redis, &period, dimension);
            pipe.sadd(&index, name)
                .ignore()
                .expire_at(&index, expire_at as i64)
                .ignore();
        }
    }
    if redis
        .run("usage_charge", |mut c| {
            let pipe = pipe.clone();
            async move { pipe.query_async::<()>(&mut c).await }
        })
        .await
        .is_err()
    {
        redis.fallback("usage");
    }
}

/// Tokens and cost `key` spent today and this month, per Redis (one round trip).
async fn spent_redis(redis: &Redis, periods: &Periods, key: &str) -> Option<Spent> {
    let [(day, _), (month, _)] = redis_periods(periods);
    let mut pipe = ::redis::pipe();
    for period in [&day, &month] {
        pipe.cmd("HMGET")
            .arg(hash_key(redis, period, "key", key))
            .arg("input_tokens")
            .arg("output_tokens")
            .arg("cost");
    }
    let values: Vec<(Option<u64>, Option<u64>, Option<f64>)> = redis
        .run("budget_check", |mut c| {
            let pipe = pipe.clone();
            async move { pipe.query_async(&mut c).await }
        })
        .await
        .ok()?;
    let of = |v: Option<&(Option<u64>, Option<u64>, Option<f64>)>| {
        v.map_or((0, 0.0), |(i, o, c)| {
            (i.unwrap_or(0) + o.unwrap_or(0), c.unwrap_or(0.0))
        })
    };
    Some(Spent {
        day: of(values.first()),
        month: of(values.get(1)),
    })
}

async fn report_redis(redis: &Redis, periods: &Periods) -> Option<UsageReport> {
    let [(day, _), (month, _)] = redis_periods(periods);
    let slots = [
        (&day, "model"),
        (&day, "key"),
        (&month, "model"),
        (&month, "key"),
    ];
    let mut pipe = ::redis::pipe();
    for (period, dimension) in slots {
        pipe.smembers(index_key(redis, period, dimension));
    }
    let names: Vec<Vec<String>> = redis
        .run("usage_report", |mut c| {
            let pipe = pipe.clone();
            async move { pipe.query_async(&mut c).await }
        })
        .await
        .ok()?;
    let mut pipe = ::redis::pipe();
    for ((period, dimension), names) in slots.iter().zip(&names) {
        for name in names {
            pipe.hgetall(hash_key(redis, period, dimension, name));
        }
    }
    let hashes: Vec<HashMap<String, String>> = redis
        .run("usage_report", |mut c| {
            let pipe = pipe.clone();
            async move { pipe.query_async(&mut c).await }
        })
        .await
        .ok()?;
    let mut hashes = hashes.into_iter();
    let mut periods_out: [BTreeMap<String, UsageTotals>; 4] = Default::default();
    for (out, names) in periods_out.iter_mut().zip(names) {
        for name in names {
            let hash = hashes.next().unwrap_or_default();
            out.insert(name, totals_of(&hash));
        }
    }
    let [today_model, today_key, month_model, month_key] = periods_out;
    Some(UsageReport {
        day: periods.day.clone(),
        month: periods.month.clone(),
        today: PeriodTotals {
            by_model: today_model,
            by_key: today_key,
        },
        this_month: PeriodTotals {
            by_model: month_model,
            by_key: month_key,
        },
    })
}

fn totals_of(hash: &HashMap<String, String>) -> UsageTotals {
    let int = |field: &str| hash.get(field).and_then(|v| v.parse().ok()).unwrap_or(0);
    UsageTotals {
        requests: int("requests"),
        input_tokens: int("input_tokens"),
        output_tokens: int("output_tokens"),
        cached_input_tokens: int("cached_input_tokens"),
        reasoning_tokens: int("reasoning_tokens"),
        cost: hash.get("cost").and_then(|v| v.parse().ok()).unwrap_or(0.0),
        currency: hash.get("currency").cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            ..Usage::default()
        }
    }

    #[tokio::test]
    async fn a_spent_budget_refuses_until_it_resets_and_other_keys_pass() {
        let budget = Budget {
            tokens_per_day: Some(100),
            cost_per_month: Some(1.0),
            ..Budget::default()
        };
        let ledger = Ledger::new(
            PriceTable::new([]),
            HashMap::from([("alice".to_owned(), budget)]),
        );
        assert!(ledger.admit("alice").await.is_ok());
        ledger.charge("alice", "hy4", Some(&usage(60, 39)));
        assert!(ledger.admit("alice").await.is_ok(), "99 of 100 used");
        ledger.charge("alice", "hy4", Some(&usage(1, 0)));
        let Err(Refusal::Budget(refusal)) = ledger.admit("alice").await else {
            panic!("a spent budget admits");
        };
        assert_eq!(refusal.state.budget, BudgetKind::TokensPerDay);
        assert!(refusal.state.resets_in <= Duration::from_secs(86_400));
        ledger.charge("bob", "hy4", Some(&usage(1000, 1000)));
        assert!(ledger.admit("bob").await.is_ok(), "no budget, no limit");
        let budgets = ledger.budgets().await;
        assert_eq!(budgets["alice"][0].remaining, 0.0);
        assert_eq!(budgets["alice"][1].budget, BudgetKind::CostPerMonth);
        let report = ledger.report().await;
        assert_eq!(report.today.by_key["alice"].input_tokens, 61);
        assert_eq!(report.today.by_model["hy4"].requests, 3);
        assert_eq!(
            report.this_month.by_model["hy4"].currency.as_deref(),
            Some("CNY")
        );
        assert!(!Budget {
            tokens_per_day: Some(0),
            ..Budget::default()
        }
        .is_valid());
    }
}
