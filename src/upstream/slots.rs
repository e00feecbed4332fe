//! The upstream's concurrency slots and their bounded wait queue.
//!
//! [`Slots`] hands out at most `capacity` [`Slot`]s at once. A caller that finds none free
//! waits in a queue of at most `queue_size` places for at most `queue_timeout`; past either
//! bound it is refused with a [`SlotError`] at once. A slot is given back when its [`Slot`]
//! is dropped, and a waiter that goes away (its future dropped) gives back its place.
//!
//! This is the in-process pool. A [`Slot`] may instead hold a lease of the cap shared by
//! every replica through Redis (`shared_cap`), which keeps the same queue rules.

use super::shared_cap::SharedPermit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A bounded set of concurrency slots with a bounded wait queue.
#[derive(Debug)]
pub(crate) struct Slots {
    semaphore: Arc<Semaphore>,
    capacity: usize,
    waiting: AtomicUsize,
    queue_size: usize,
    queue_timeout: Duration,
}

/// One held slot, given back when dropped (with the key lease it carries, if any).
#[derive(Debug)]
pub(crate) struct Slot {
    permit: Permit,
    lease: Option<super::keys::KeyLease>,
    /// For an in-process slot taken while Redis was away: takes a shared lease on its return.
    claim: Option<super::shared_cap::LocalClaim>,
}

/// What a [`Slot`] holds: a place of the in-process pool, or a lease on one key of the cap
/// shared through Redis.
#[derive(Debug)]
enum Permit {
    /// Held only to be given back on drop.
    Local(#[allow(dead_code)] OwnedSemaphorePermit),
    Shared(SharedPermit),
}

impl Slot {
    /// The slot, also holding `lease` until it is dropped.
    pub(crate) fn with_lease(mut self, lease: super::keys::KeyLease) -> Self {
        self.use_key(lease.index());
        self.lease = Some(lease);
        self
    }

    /// An in-process slot that takes a lease of the shared cap when Redis returns.
    pub(crate) fn with_claim(mut self, claim: super::shared_cap::LocalClaim) -> Self {
        self.claim = Some(claim);
        self
    }

    /// Notes the pool key the slot's request uses now (for the lease a claim takes).
    pub(crate) fn use_key(&self, key: usize) {
        if let Some(claim) = &self.claim {
            claim.use_key(key);
        }
    }

    /// A slot that is a lease of the shared cap.
    pub(crate) fn shared(permit: SharedPermit) -> Self {
        Slot {
            permit: Permit::Shared(permit),
            lease: None,
            claim: None,
        }
    }

    /// The key of the shared lease (`None`: an in-process slot).
    pub(crate) fn shared_key(&self) -> Option<usize> {
        match &self.permit {
            Permit::Shared(permit) => Some(permit.key()),
            Permit::Local(_) => None,
        }
    }
}

/// Why no slot was handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SlotError {
    /// Every slot was taken and the wait queue was full.
    #[error("the wait queue is full")]
    QueueFull,
    /// Waited `queue_timeout` without a slot coming free.
    #[error("no slot came free in time")]
    QueueTimeout,
    /// The slots were closed (the proxy is shutting down).
    #[error("the slots are closed")]
    Closed,
}

impl SlotError {
    /// The metric label of a refused caller (`None`: not a queue refusal).
    pub(crate) fn rejection_reason(self) -> Option<&'static str> {
        match self {
            SlotError::QueueFull => Some("full"),
            SlotError::QueueTimeout => Some("timeout"),
            SlotError::Closed => None,
        }
    }
}

impl Slots {
    /// `capacity` slots (at least one), a queue of `queue_size` places and a longest wait of
    /// `queue_timeout`.
    pub(crate) fn new(capacity: usize, queue_size: usize, queue_timeout: Duration) -> Self {
        let capacity = capacity.max(1);
        Slots {
            semaphore: Arc::new(Semaphore::new(capacity)),
            capacity,
            waiting: AtomicUsize::new(0),
            queue_size,
            queue_timeout,
        }
    }

    /// A free slot, at once when there is one, else after waiting in the queue (the wait is an
    /// `upstream slot wait` span). A caller that goes away while waiting leaves the queue (the
    /// future is dropped with its place).
    pub(crate) async fn acquire(&self) -> Result<Slot, SlotError> {
        if let Ok(permit) = self.semaphore.clone().try_acquire_owned() {
            return Ok(Slot {
                permit: Permit::Local(permit),
                lease: None,
                claim: None,
            });
        }
        let _place =
            QueuePlace::take(&self.waiting, self.queue_size).ok_or(SlotError::QueueFull)?;
        // A span only for a real wait: a slot free at once is no work worth a span.
        let waited = tracing::Instrument::instrument(
            tokio::time::timeout(self.queue_timeout, self.semaphore.clone().acquire_owned()),
            crate::telemetry::slot_wait_span(),
        );
        match waited.await {
            Ok(Ok(permit)) => Ok(Slot {
                permit: Permit::Local(permit),
                lease: None,
                claim: None,
            }),
            Ok(Err(_)) => Err(SlotError::Closed),
            Err(_) => Err(SlotError::QueueTimeout),
        }
    }

    /// Slots held right now.
    pub(crate) fn in_flight(&self) -> usize {
        self.capacity - self.semaphore.available_permits()
    }

    /// Callers waiting for a slot right now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// A place in the wait queue, given back when dropped.
pub(super) struct QueuePlace<'a>(&'a AtomicUsize);

impl<'a> QueuePlace<'a> {
    /// A place if fewer than `limit` are `waiting`.
    pub(super) fn take(waiting: &'a AtomicUsize, limit: usize) -> Option<Self> {
        let mut current = waiting.load(Ordering::Relaxed);
        loop {
            if current >= limit {
                return None;
            }
            match waiting.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(QueuePlace(waiting)),
                Err(actual) => current = actual,
            }
        }
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ProxyError;
    use axum::response::IntoResponse;
    use futures_util::FutureExt;
    use http::StatusCode;
    use tokio::time::Instant;

    /// Lets spawned tasks run until they wait.
    async fn settle() {
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_the_slot_that_is_released() {
        let slots = Arc::new(Slots::new(1, 4, Duration::from_secs(60)));
        let held = slots.acquire().await.unwrap();
        assert_eq!(slots.in_flight(), 1);
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move {
                let started = Instant::now();
                let slot = slots.acquire().await;
                (slot.map(drop), started.elapsed())
            }
        });
        settle().await;
        assert_eq!(slots.waiting(), 1);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished(), "the waiter got a slot none was free");
        drop(held);
        let (slot, waited) = waiter.await.unwrap();
        slot.unwrap();
        assert_eq!(waited, Duration::from_secs(5));
        assert_eq!(slots.waiting(), 0);
        assert_eq!(slots.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_queue_size_a_caller_is_refused_at_once_with_429_and_retry_after() {
        let slots = Arc::new(Slots::new(1, 1, Duration::from_secs(60)));
        let _held = slots.acquire().await.unwrap();
        let queued = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await.map(drop) }
        });
        settle().await;
        assert_eq!(slots.waiting(), 1);
        // Refused without waiting: the future is ready on its first poll.
        let refused = slots.acquire().now_or_never().expect("refused at once");
        assert_eq!(refused.unwrap_err(), SlotError::QueueFull);
        assert_eq!(slots.waiting(), 1);
        let response = ProxyError::from(SlotError::QueueFull).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "1");
        queued.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_queue_of_zero_refuses_as_soon_as_every_slot_is_taken() {
        let slots = Slots::new(2, 0, Duration::from_secs(60));
        let _a = slots.acquire().await.unwrap();
        let _b = slots.acquire().await.unwrap();
        let refused = slots.acquire().now_or_never().expect("refused at once");
        assert_eq!(refused.unwrap_err(), SlotError::QueueFull);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_past_the_queue_timeout_gets_429() {
        let slots = Slots::new(1, 4, Duration::from_secs(3));
        let _held = slots.acquire().await.unwrap();
        let started = Instant::now();
        let err = slots.acquire().await.unwrap_err();
        assert_eq!(err, SlotError::QueueTimeout);
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert_eq!(slots.waiting(), 0);
        let response = ProxyError::from(err).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_waiter_leaves_the_queue() {
        let slots = Arc::new(Slots::new(1, 1, Duration::from_secs(60)));
        let held = slots.acquire().await.unwrap();
        let gone = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await.map(drop) }
        });
        settle().await;
        assert_eq!(slots.waiting(), 1);
        gone.abort();
        assert!(gone.await.unwrap_err().is_cancelled());
        assert_eq!(slots.waiting(), 0);
        // Its place is free again for the next caller, who gets the released slot.
        let next = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await.map(drop) }
        });
        settle().await;
        assert_eq!(slots.waiting(), 1);
        drop(held);
        next.await.unwrap().unwrap();
        assert_eq!(slots.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_counts_held_slots_up_to_the_capacity() {
        let slots = Slots::new(3, 0, Duration::from_secs(1));
        let a = slots.acquire().await.unwrap();
        let b = slots.acquire().await.unwrap();
        assert_eq!(slots.in_flight(), 2);
        drop(a);
        assert_eq!(slots.in_flight(), 1);
        drop(b);
        assert_eq!(slots.in_flight(), 0);
        // A capacity of 0 is taken as 1, never as "nothing ever runs".
        let one = Slots::new(0, 0, Duration::from_secs(1));
        let _slot = one.acquire().await.unwrap();
        assert_eq!(one.in_flight(), 1);
    }
}
