//! The upstream concurrency cap shared by every replica: a semaphore per upstream key kept in
//! Redis, with leases.
//!
//! Each key of the pool has a sorted set `{prefix}sem:{fingerprint}` (the fingerprint is a
//! hash of the key, never its value, so replicas listing their keys in another order still
//! share) of lease ids scored by their expiry on Redis server time. Acquiring is one Lua
//! script: it drops expired leases of every candidate key, then adds the lease to the one
//! with the fewest holders if it is below the cap. A held lease is renewed every third of its
//! lifetime by a task the permit owns; dropping the permit stops the task and removes the
//! lease. A replica that dies stops renewing: its leases expire and its permits come back
//! after at most the lease time (`redis_lease_secs`).
//!
//! Waiting keeps today's rules: at most `queue_size` callers of this replica wait, each for
//! at most `queue_timeout`, else 429. Waiters of one replica go first come first served (only
//! the head of the local queue asks Redis, every 10–25 ms, jittered, or at once when this
//! replica releases a permit); between replicas the order is only rough: whichever head asks
//! first after a release wins. A Redis error or timeout is reported as
//! [`SharedError::Unavailable`]; the caller falls back to the in-process slots (local mode)
//! or refuses with 503 (closed mode).
//!
//! An in-process slot taken while Redis was away carries a [`LocalClaim`]: when Redis
//! returns, every claim still held takes a lease (added whatever the count, since its request
//! is already in flight; renewed like any other), so the other replicas see it in the cap.

use super::keys::KeyPool;
use super::slots::{QueuePlace, SlotError};
use crate::replica::{Redis, RedisUnavailable};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Drops expired leases of every key in KEYS, then adds lease ARGV[1] (expiring ARGV[2] ms
/// from now, Redis server time) to the key with the fewest leases if it has fewer than
/// ARGV[3]. Answers the 1-based index of that key, or 0 when every key is at the cap.
static ACQUIRE: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local best, fewest = 0, tonumber(ARGV[3])
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local n = redis.call('ZCARD', KEYS[i])
  if n < fewest then best, fewest = i, n end
end
if best == 0 then return 0 end
redis.call('ZADD', KEYS[best], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[best], ttl * 2)
return best
",
    )
});

/// Moves lease ARGV[1]'s expiry to ARGV[2] ms from now (adding it again if it expired while
/// Redis was away: the request is still in flight).
static RENEW: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return 1
",
    )
});

/// The shortest and longest pause between two tries of a waiting head.
const POLL_MIN: Duration = Duration::from_millis(10);
const POLL_SPREAD_MS: u64 = 15;

/// Why no shared permit was handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SharedError {
    /// The queue refused the caller (full, or waited too long).
    Slot(SlotError),
    /// Redis failed or did not answer in time.
    Unavailable,
}

/// The shared cap of one replica: where its leases live and its local wait queue.
#[derive(Debug)]
pub(crate) struct SharedCap {
    redis: Redis,
    /// The sorted set of each pool key, by index.
    sets: Vec<String>,
    per_key: usize,
    lease: Duration,
    queue_size: usize,
    queue_timeout: Duration,
    waiting: AtomicUsize,
    held: AtomicUsize,
    /// Held by the one local waiter that asks Redis (a fair mutex: local FIFO).
    head: tokio::sync::Mutex<()>,
    /// Signalled when this replica gave a lease back.
    released: Notify,
    /// Makes lease ids unique: this process, then a counter.
    replica: String,
    next_id: AtomicU64,
    /// The in-process slots taken while Redis was away and still held, by claim number.
    claims: Mutex<HashMap<u64, Claim>>,
}

/// An in-process slot held while Redis was away: the pool key its request uses, and the
/// lease it took once Redis returned (its id and renewal task).
#[derive(Debug)]
struct Claim {
    key: usize,
    lease: Option<(String, JoinHandle<()>)>,
}

/// Held with an in-process slot taken while Redis was away; takes a lease of the shared cap
/// when Redis returns, and gives it back when dropped.
#[derive(Debug)]
pub(crate) struct LocalClaim {
    cap: Arc<SharedCap>,
    number: u64,
}

impl LocalClaim {
    /// Notes the pool key the request uses (the lease, if any, stays where it is).
    pub(crate) fn use_key(&self, key: usize) {
        if let Some(claim) = self.cap.claims().get_mut(&self.number) {
            if claim.lease.is_none() {
                claim.key = key;
            }
        }
    }
}

impl Drop for LocalClaim {
    fn drop(&mut self) {
        let Some(claim) = self.cap.claims().remove(&self.number) else {
            return;
        };
        if let Some((id, renew)) = claim.lease {
            renew.abort();
            self.cap.remove_lease(claim.key, id);
        }
    }
}

/// One lease on one key of the shared cap, renewed while held, removed when dropped.
#[derive(Debug)]
pub(crate) struct SharedPermit {
    cap: Arc<SharedCap>,
    key: usize,
    id: String,
    renew: JoinHandle<()>,
}

impl SharedPermit {
    /// The pool key this permit is on.
    pub(crate) fn key(&self) -> usize {
        self.key
    }
}

impl Drop for SharedPermit {
    fn drop(&mut self) {
        self.renew.abort();
        self.cap.held.fetch_sub(1, Ordering::AcqRel);
        self.cap
            .remove_lease(self.key, std::mem::take(&mut self.id));
    }
}

/// The sorted set's name for one pool key: a hash of the key's `Authorization` value (its
/// first 16 hex digits), or `keyless` for a pool without keys.
pub(crate) fn set_name(redis: &Redis, auth: Option<&http::HeaderValue>) -> String {
    match auth {
        None => redis.key("sem:keyless"),
        Some(value) => {
            let digest = Sha256::new()
                .chain_update(b"hunyuan-proxy upstream key\0")
                .chain_update(value.as_bytes())
                .finalize();
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            redis.key(&format!("sem:{hex}"))
        }
    }
}

impl SharedCap {
    /// The cap of `per_key` leases on each of `sets` (one per pool key, by index), leases
    /// living `lease`, and this replica's queue of `queue_size` waiting at most
    /// `queue_timeout`.
    pub(crate) fn new(
        redis: Redis,
        sets: Vec<String>,
        per_key: usize,
        lease: Duration,
        queue_size: usize,
        queue_timeout: Duration,
    ) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        SharedCap {
            redis,
            sets,
            per_key: per_key.max(1),
            lease: lease.max(Duration::from_secs(1)),
            queue_size,
            queue_timeout,
            waiting: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            head: tokio::sync::Mutex::new(()),
            released: Notify::new(),
            replica: format!("{}-{nanos:x}", std::process::id()),
            next_id: AtomicU64::new(0),
            claims: Mutex::new(HashMap::new()),
        }
    }

    /// Has the in-flight requests of this replica's in-process slots take leases each time
    /// Redis returns.
    pub(crate) fn adopt_on_return(cap: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(cap);
        cap.redis.on_return(move |_| {
            let cap = weak.upgrade();
            Box::pin(async move {
                if let Some(cap) = cap {
                    cap.adopt_claims().await;
                }
            })
        });
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Claim>> {
        self.claims.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A claim for an in-process slot taken now (Redis away).
    pub(crate) fn claim(self: &Arc<Self>) -> LocalClaim {
        let number = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.claims().insert(
            number,
            Claim {
                key: 0,
                lease: None,
            },
        );
        LocalClaim {
            cap: self.clone(),
            number,
        }
    }

    /// Gives lease `id` on `key` back, in the background.
    fn remove_lease(self: &Arc<Self>, key: usize, id: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to remove it with: the lease expires by itself.
            return;
        };
        let cap = self.clone();
        runtime.spawn(async move {
            let set = &cap.sets[key];
            let _ = cap
                .redis
                .run("sem_release", |mut c| {
                    let id = &id;
                    async move {
                        ::redis::cmd("ZREM")
                            .arg(set)
                            .arg(id)
                            .query_async::<i64>(&mut c)
                            .await
                    }
                })
                .await;
            cap.released.notify_waiters();
        });
    }

    /// Gives every claim still held without a lease one (Redis just returned); stops at the
    /// first failure (Redis gone again: the claims wait for its next return).
    async fn adopt_claims(self: &Arc<Self>) {
        let waiting: Vec<(u64, usize)> = self
            .claims()
            .iter()
            .filter(|(_, claim)| claim.lease.is_none())
            .map(|(&number, claim)| (number, claim.key))
            .collect();
        let lease_ms = self.lease.as_millis() as u64;
        let mut adopted = 0usize;
        for (number, key) in waiting {
            let id = format!("{}-local-{number}", self.replica);
            let set = &self.sets[key];
            let added = self
                .redis
                .run("sem_adopt", |mut c| {
                    let id = &id;
                    async move {
                        RENEW
                            .key(set)
                            .arg(id)
                            .arg(lease_ms)
                            .invoke_async::<i64>(&mut c)
                            .await
                    }
                })
                .await;
            if added.is_err() {
                return;
            }
            let mut claims = self.claims();
            match claims.get_mut(&number) {
                Some(claim) if claim.lease.is_none() && claim.key == key => {
                    claim.lease = Some((id.clone(), self.spawn_renewal(key, id)));
                    adopted += 1;
                }
                // Finished meanwhile (or moved to another key): give the lease back.
                _ => {
                    drop(claims);
                    self.remove_lease(key, id);
                }
            }
        }
        if adopted > 0 {
            tracing::info!(
                adopted,
                "requests in flight since redis went away now count in the shared upstream cap"
            );
        }
    }

    /// The Redis the leases live in.
    pub(crate) fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Permits this replica holds right now.
    pub(crate) fn in_flight(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Callers of this replica waiting for a permit right now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// One try: a lease on the candidate with the fewest leases (`None`: all at the cap).
    async fn try_acquire(
        self: &Arc<Self>,
        candidates: &[usize],
    ) -> Result<Option<SharedPermit>, RedisUnavailable> {
        let id = format!(
            "{}-{}",
            self.replica,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let lease_ms = self.lease.as_millis() as u64;
        let chosen = self
            .redis
            .run("sem_acquire", |mut c| {
                let mut invocation = ACQUIRE.prepare_invoke();
                for &index in candidates {
                    invocation.key(&self.sets[index]);
                }
                invocation.arg(&id).arg(lease_ms).arg(self.per_key);
                async move { invocation.invoke_async::<usize>(&mut c).await }
            })
            .await?;
        if chosen == 0 || chosen > candidates.len() {
            return Ok(None);
        }
        let key = candidates[chosen - 1];
        self.held.fetch_add(1, Ordering::AcqRel);
        Ok(Some(SharedPermit {
            renew: self.spawn_renewal(key, id.clone()),
            cap: self.clone(),
            key,
            id,
        }))
    }

    /// Renews lease `id` on `key` every third of the lease time, until aborted.
    fn spawn_renewal(&self, key: usize, id: String) -> JoinHandle<()> {
        let redis = self.redis.clone();
        let set = self.sets[key].clone();
        let lease_ms = self.lease.as_millis() as u64;
        let every = self.lease / 3;
        tokio::spawn(async move {
            let mut next = Instant::now() + every;
            loop {
                tokio::time::sleep_until(next).await;
                next += every;
                // A failed renewal is retried at the next tick; the request goes on.
                let _ = redis
                    .run("sem_renew", |mut c| {
                        let (set, id) = (&set, &id);
                        async move {
                            RENEW
                                .key(set)
                                .arg(id)
                                .arg(lease_ms)
                                .invoke_async::<i64>(&mut c)
                                .await
                        }
                    })
                    .await;
            }
        })
    }

    /// A permit on one of the keys `candidates` gives (called again before each try, since
    /// cooldowns change), at once when one has room and nobody of this replica waits, else
    /// after waiting in the queue (an `upstream slot wait` span).
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        candidates: impl Fn() -> Vec<usize>,
    ) -> Result<SharedPermit, SharedError> {
        if self.waiting() == 0 {
            match self.try_acquire(&candidates()).await {
                Ok(Some(permit)) => return Ok(permit),
                Ok(None) => {}
                Err(RedisUnavailable) => return Err(SharedError::Unavailable),
            }
        }
        let _place = QueuePlace::take(&self.waiting, self.queue_size)
            .ok_or(SharedError::Slot(SlotError::QueueFull))?;
        let deadline = Instant::now() + self.queue_timeout;
        tracing::Instrument::instrument(
            self.wait(candidates, deadline),
            crate::telemetry::slot_wait_span(),
        )
        .await
        .ok_or(SharedError::Slot(SlotError::QueueTimeout))?
    }

    /// A permit on one of `candidates` before `deadline` (`None`: none came free in time),
    /// asking Redis only as the head of the local queue.
    pub(crate) async fn wait(
        self: &Arc<Self>,
        candidates: impl Fn() -> Vec<usize>,
        deadline: Instant,
    ) -> Option<Result<SharedPermit, SharedError>> {
        let waited = async {
            let _head = self.head.lock().await;
            loop {
                let released = self.released.notified();
                tokio::pin!(released);
                released.as_mut().enable();
                match self.try_acquire(&candidates()).await {
                    Ok(Some(permit)) => return Ok(permit),
                    Ok(None) => {}
                    Err(RedisUnavailable) => return Err(SharedError::Unavailable),
                }
                let pause = POLL_MIN
                    + Duration::from_millis(
                        (super::retry::clock_jitter() * POLL_SPREAD_MS as f64) as u64,
                    );
                tokio::select! {
                    () = released => {}
                    () = tokio::time::sleep(pause) => {}
                }
            }
        };
        tokio::time::timeout_at(deadline, waited).await.ok()
    }
}

/// The keys a first permit may be on: every usable key, or (all cooling down) every key, so
/// the caller finds out from the key pool and answers 503.
pub(crate) fn any_key(keys: &KeyPool) -> Vec<usize> {
    let usable = keys
        .candidates(&vec![false; keys.len()])
        .unwrap_or_default();
    if usable.is_empty() {
        (0..keys.len()).collect()
    } else {
        usable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::test_server::Server;
    use crate::replica::RedisConfig;

    /// A replica's cap over two keys, `per_key` each, leases of `lease`.
    fn cap(redis: Redis, per_key: usize, lease: Duration, queue: usize) -> Arc<SharedCap> {
        let sets = vec![redis.key("sem:a"), redis.key("sem:b")];
        Arc::new(SharedCap::new(
            redis,
            sets,
            per_key,
            lease,
            queue,
            Duration::from_millis(300),
        ))
    }

    async fn holders(redis: &Redis, set: &str) -> usize {
        redis
            .run("test", |mut c| async move {
                ::redis::cmd("ZCARD")
                    .arg(set)
                    .query_async::<usize>(&mut c)
                    .await
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn every_replica_s_leases_count_and_the_key_with_fewest_is_chosen() {
        let Some(server) = Server::start() else {
            return;
        };
        let (a, b) = (
            cap(server.redis(), 2, Duration::from_secs(10), 0),
            cap(server.redis(), 2, Duration::from_secs(10), 0),
        );
        let both = [0, 1];
        let first = a.try_acquire(&both).await.unwrap().unwrap();
        let second = b.try_acquire(&both).await.unwrap().unwrap();
        assert_eq!((first.key(), second.key()), (0, 1), "the emptier key");
        let _third = a.try_acquire(&both).await.unwrap().unwrap();
        let _fourth = b.try_acquire(&both).await.unwrap().unwrap();
        assert!(a.try_acquire(&both).await.unwrap().is_none(), "2 per key");
        assert_eq!(a.in_flight(), 2);
        assert_eq!(
            a.acquire(|| both.to_vec()).await.unwrap_err(),
            SharedError::Slot(SlotError::QueueFull),
            "a queue of 0 refuses at once"
        );
        drop(second);
        // The release is sent in the background.
        let deadline = Instant::now() + Duration::from_secs(2);
        while holders(&server.redis(), &a.sets[1]).await != 1 {
            assert!(Instant::now() < deadline, "given back");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(a.try_acquire(&both).await.unwrap().unwrap().key(), 1);
    }

    #[tokio::test]
    async fn a_held_lease_is_renewed_and_an_abandoned_one_expires() {
        let Some(server) = Server::start() else {
            return;
        };
        let redis = server.redis();
        let a = cap(redis.clone(), 2, Duration::from_secs(1), 0);
        let held = a.try_acquire(&[0]).await.unwrap().unwrap();
        // A lease nobody renews (a replica that died), living 300 ms.
        let set = a.sets[0].clone();
        let added = redis
            .run("test", |mut c| {
                let set = &set;
                async move {
                    ACQUIRE
                        .key(set)
                        .arg("dead-replica-1")
                        .arg(300)
                        .arg(2)
                        .invoke_async::<usize>(&mut c)
                        .await
                }
            })
            .await
            .unwrap();
        assert_eq!(added, 1);
        assert!(a.try_acquire(&[0]).await.unwrap().is_none(), "at the cap");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let back = a.try_acquire(&[0]).await.unwrap();
        assert!(back.is_some(), "the abandoned lease expired");
        drop(back);
        let deadline = Instant::now() + Duration::from_secs(2);
        while holders(&redis, &set).await != 1 {
            assert!(Instant::now() < deadline, "only the held lease is left");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Past its 1 s lease, the held one still counts (expired ones would be dropped by
        // the acquire): it was renewed.
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let _second = a.try_acquire(&[0]).await.unwrap().expect("one of 2 left");
        assert!(
            a.try_acquire(&[0]).await.unwrap().is_none(),
            "the held lease was renewed past its lease time"
        );
        drop(held);
    }

    #[tokio::test]
    async fn a_waiter_gets_a_released_lease_and_times_out_otherwise() {
        let Some(server) = Server::start() else {
            return;
        };
        let a = cap(server.redis(), 1, Duration::from_secs(10), 4);
        let held = a.try_acquire(&[0]).await.unwrap().unwrap();
        let started = Instant::now();
        assert_eq!(
            a.acquire(|| vec![0]).await.unwrap_err(),
            SharedError::Slot(SlotError::QueueTimeout)
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(a.waiting(), 0);
        let waiter = tokio::spawn({
            let a = a.clone();
            async move { a.acquire(|| vec![0]).await.map(|p| p.key()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(a.waiting(), 1);
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(0));
    }

    #[tokio::test]
    async fn a_request_in_flight_since_redis_went_away_takes_a_lease_when_it_returns() {
        let port = crate::replica::test_server::free_port();
        let config = crate::replica::test_server::config(port)
            .probe_backoff(Duration::from_millis(50), Duration::from_millis(100));
        let redis = Redis::new(config.clone()).unwrap();
        let a = cap(redis.clone(), 1, Duration::from_secs(10), 0);
        SharedCap::adopt_on_return(&a);
        assert!(redis.ping().await.is_err(), "Redis is away");
        let claim = a.claim();
        claim.use_key(1);
        let Some(_server) = Server::start_on(port) else {
            return;
        };
        let other = cap(Redis::new(config).unwrap(), 1, Duration::from_secs(10), 0);
        let deadline = Instant::now() + Duration::from_secs(3);
        while holders(&other.redis, &other.sets[1]).await != 1 {
            assert!(Instant::now() < deadline, "the claim took a lease");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            other.try_acquire(&[1]).await.unwrap().is_none(),
            "another replica sees the key at its cap"
        );
        drop(claim);
        let deadline = Instant::now() + Duration::from_secs(2);
        while holders(&other.redis, &other.sets[1]).await != 0 {
            assert!(
                Instant::now() < deadline,
                "given back when the request ends"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(other.try_acquire(&[1]).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_redis_that_does_not_answer_is_reported_unavailable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let redis = Redis::new(RedisConfig::new(format!("redis://127.0.0.1:{port}/0"))).unwrap();
        let a = cap(redis, 1, Duration::from_secs(10), 4);
        assert_eq!(
            a.acquire(|| vec![0]).await.unwrap_err(),
            SharedError::Unavailable
        );
        assert_eq!(a.waiting(), 0);
    }
}
