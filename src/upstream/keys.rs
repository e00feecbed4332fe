//! The upstream's API keys: a pool in which each key is one account with its own concurrency
//! cap (Hunyuan's limit is per account).
//!
//! A request takes the usable key with the fewest requests in flight ([`KeyPool::lease`]); a
//! key the upstream refused (401/403) is out for a cooldown ([`KeyPool::cool_down`]),
//! logged and counted by its index (`hunyuan_proxy_upstream_key_cooldowns_total{key}`), never
//! by its value. When every key is cooling down, requests get 503 at once.

use http::HeaderValue;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::names::UPSTREAM_KEY_COOLDOWNS as KEY_COOLDOWNS;

/// The upstream's keys and what each is doing.
#[derive(Debug)]
pub(crate) struct KeyPool {
    keys: Vec<Key>,
    /// Requests one key may have in flight.
    per_key: usize,
    cooldown: Duration,
    /// The clock of every `cooling_until_ms`.
    epoch: Instant,
    /// Signalled when a lease ends (a key has room again).
    changed: Notify,
}

#[derive(Debug)]
struct Key {
    /// `Authorization: Bearer <key>`; `None` for the one keyless "key" of a pool without any.
    auth: Option<HeaderValue>,
    in_flight: AtomicUsize,
    /// Cooling down until this many milliseconds after `epoch` (0: not cooling).
    cooling_until_ms: AtomicU64,
    cooldowns: AtomicU64,
}

/// One request's hold on a key, given back when dropped.
#[derive(Debug)]
pub(crate) struct KeyLease {
    pool: Arc<KeyPool>,
    index: usize,
}

impl KeyLease {
    /// The key's index in the pool (what logs and metrics name).
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The key's `Authorization` value.
    pub(crate) fn auth(&self) -> Option<&HeaderValue> {
        self.pool.keys[self.index].auth.as_ref()
    }
}

impl Drop for KeyLease {
    fn drop(&mut self) {
        self.pool.keys[self.index]
            .in_flight
            .fetch_sub(1, Ordering::AcqRel);
        self.pool.changed.notify_waiters();
    }
}

/// Why no key was leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// Every key is cooling down; the first is back after this long.
    AllCooling(Duration),
    /// Every usable key was already tried by this request.
    AllTried,
    /// No key had room before the deadline.
    Busy,
}

/// One key's state, as `/status` and `/health` show it (by index, never the value).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyState {
    /// The key's index: 0 is `api_key` (when set), then `api_keys` in order.
    pub index: usize,
    /// Requests in flight on this key.
    pub in_flight: usize,
    /// Seconds until the key is usable again (0: usable).
    pub cooling_down_secs: u64,
    /// Times the key was taken out since start.
    pub cooldowns: u64,
}

impl KeyPool {
    /// A pool of `auths` (an empty list makes one keyless entry), `per_key` in flight each.
    pub(crate) fn new(auths: Vec<HeaderValue>, per_key: usize, cooldown: Duration) -> Self {
        let auths: Vec<Option<HeaderValue>> = if auths.is_empty() {
            vec![None]
        } else {
            auths.into_iter().map(Some).collect()
        };
        KeyPool {
            keys: auths
                .into_iter()
                .map(|auth| Key {
                    auth,
                    in_flight: AtomicUsize::new(0),
                    cooling_until_ms: AtomicU64::new(0),
                    cooldowns: AtomicU64::new(0),
                })
                .collect(),
            per_key: per_key.max(1),
            cooldown,
            epoch: Instant::now(),
            changed: Notify::new(),
        }
    }

    /// How many keys the pool has.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The first key's `Authorization` value (health probes and the model check use it).
    pub(crate) fn first_auth(&self) -> Option<&HeaderValue> {
        self.keys[0].auth.as_ref()
    }

    fn now_ms(&self) -> u64 {
        (self.epoch.elapsed().as_millis() as u64).max(1)
    }

    fn cooling_for(&self, key: &Key, now_ms: u64) -> Option<Duration> {
        let until = key.cooling_until_ms.load(Ordering::Acquire);
        (until > now_ms).then(|| Duration::from_millis(until - now_ms))
    }

    /// Takes `index` out for the cooldown: the upstream refused it with `status`.
    pub(crate) fn cool_down(&self, index: usize, status: u16) {
        let key = &self.keys[index];
        let until = self.now_ms() + self.cooldown.as_millis() as u64;
        key.cooling_until_ms.store(until, Ordering::Release);
        key.cooldowns.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            key = index,
            status,
            cooldown_secs = self.cooldown.as_secs(),
            "the upstream refused an API key; it is out for the cooldown"
        );
        metrics::counter!(KEY_COOLDOWNS, "key" => index.to_string()).increment(1);
    }

    /// Whether a key other than those in `tried` is usable now.
    pub(crate) fn has_untried(&self, tried: &[bool]) -> bool {
        let now = self.now_ms();
        self.keys
            .iter()
            .enumerate()
            .any(|(i, key)| !tried[i] && self.cooling_for(key, now).is_none())
    }

    /// The usable key not in `tried` with the fewest in flight and room for one more.
    fn try_lease(self: &Arc<Self>, tried: &[bool]) -> Result<Option<KeyLease>, KeyError> {
        let now = self.now_ms();
        let mut usable = false;
        let mut untried = false;
        let mut best: Option<(usize, usize)> = None;
        let mut soonest = Duration::MAX;
        for (index, key) in self.keys.iter().enumerate() {
            if let Some(wait) = self.cooling_for(key, now) {
                soonest = soonest.min(wait);
                continue;
            }
            usable = true;
            if tried[index] {
                continue;
            }
            untried = true;
            let in_flight = key.in_flight.load(Ordering::Acquire);
            if in_flight < self.per_key && best.is_none_or(|(_, n)| in_flight < n) {
                best = Some((index, in_flight));
            }
        }
        if !usable {
            return Err(KeyError::AllCooling(soonest));
        }
        if !untried {
            return Err(KeyError::AllTried);
        }
        let Some((index, seen)) = best else {
            return Ok(None);
        };
        let key = &self.keys[index];
        Ok(key
            .in_flight
            .compare_exchange(seen, seen + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            .then(|| KeyLease {
                pool: self.clone(),
                index,
            }))
    }

    /// The usable keys not in `tried`, fewest in flight (here) first; the errors say why
    /// there are none. The shared cap picks among them by the count of every replica.
    pub(crate) fn candidates(&self, tried: &[bool]) -> Result<Vec<usize>, KeyError> {
        let now = self.now_ms();
        let mut usable = false;
        let mut found: Vec<(usize, usize)> = Vec::new();
        let mut soonest = Duration::MAX;
        for (index, key) in self.keys.iter().enumerate() {
            if let Some(wait) = self.cooling_for(key, now) {
                soonest = soonest.min(wait);
                continue;
            }
            usable = true;
            if !tried[index] {
                found.push((key.in_flight.load(Ordering::Acquire), index));
            }
        }
        if !usable {
            return Err(KeyError::AllCooling(soonest));
        }
        if found.is_empty() {
            return Err(KeyError::AllTried);
        }
        found.sort_unstable();
        Ok(found.into_iter().map(|(_, index)| index).collect())
    }

    /// A lease on key `index` whatever its count here (the shared cap already admitted it).
    pub(crate) fn lease_index(self: &Arc<Self>, index: usize) -> KeyLease {
        self.keys[index].in_flight.fetch_add(1, Ordering::AcqRel);
        KeyLease {
            pool: self.clone(),
            index,
        }
    }

    /// Each key's `Authorization` value, by index.
    pub(crate) fn auths(&self) -> impl Iterator<Item = Option<&HeaderValue>> {
        self.keys.iter().map(|key| key.auth.as_ref())
    }

    /// A lease on the usable key not in `tried` with the fewest in flight, waiting (until
    /// `deadline`) while every such key is at its cap.
    pub(crate) async fn lease(
        self: &Arc<Self>,
        tried: &[bool],
        deadline: Instant,
    ) -> Result<KeyLease, KeyError> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(lease) = self.try_lease(tried)? {
                return Ok(lease);
            }
            if Instant::now() >= deadline {
                return Err(KeyError::Busy);
            }
            // A lost compare-exchange or a full key: wait for a lease to end (bounded, since
            // a cooldown that ends wakes no one).
            let wake = deadline.min(Instant::now() + Duration::from_millis(100));
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Every key's state, by index.
    pub(crate) fn states(&self) -> Vec<KeyState> {
        let now = self.now_ms();
        self.keys
            .iter()
            .enumerate()
            .map(|(index, key)| KeyState {
                index,
                in_flight: key.in_flight.load(Ordering::Relaxed),
                cooling_down_secs: self
                    .cooling_for(key, now)
                    .map_or(0, |d| d.as_secs_f64().ceil() as u64),
                cooldowns: key.cooldowns.load(Ordering::Relaxed),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize, per_key: usize) -> Arc<KeyPool> {
        let auths = (0..n)
            .map(|i| HeaderValue::from_str(&format!("Bearer k{i}")).unwrap())
            .collect();
        Arc::new(KeyPool::new(auths, per_key, Duration::from_secs(60)))
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(50)
    }

    #[tokio::test]
    async fn leases_go_to_the_least_loaded_key_up_to_each_cap() {
        let pool = pool(3, 2);
        let none = [false; 3];
        let mut leases = Vec::new();
        for _ in 0..6 {
            leases.push(pool.lease(&none, soon()).await.unwrap());
        }
        let mut per_key = [0; 3];
        for lease in &leases {
            per_key[lease.index()] += 1;
        }
        assert_eq!(per_key, [2, 2, 2]);
        assert_eq!(pool.lease(&none, soon()).await.unwrap_err(), KeyError::Busy);
        leases.remove(0);
        assert!(pool.lease(&none, soon()).await.is_ok());
    }

    #[tokio::test]
    async fn a_cooled_key_is_skipped_and_all_cooling_is_said_with_the_wait() {
        let pool = pool(2, 5);
        pool.cool_down(0, 401);
        let none = [false; 2];
        for _ in 0..3 {
            assert_eq!(pool.lease(&none, soon()).await.unwrap().index(), 1);
        }
        assert!(!pool.has_untried(&[false, true]));
        assert_eq!(
            pool.lease(&[false, true], soon()).await.unwrap_err(),
            KeyError::AllTried
        );
        pool.cool_down(1, 403);
        match pool.lease(&none, soon()).await.unwrap_err() {
            KeyError::AllCooling(wait) => assert!(wait > Duration::from_secs(59)),
            other => panic!("{other:?}"),
        }
        let states = pool.states();
        assert_eq!(states[0].cooldowns, 1);
        assert!(states[1].cooling_down_secs >= 59);
    }
}
