//! Memory for request bodies in flight: ingest batches above all, and every other JSON body.
//!
//! A body is read, decompressed (up to `--max-decompressed-bytes`), parsed and stored; each step
//! holds memory: at the peak, while a batch is prepared for the store, its parsed records, their
//! JSON, their compressed chunk and their text for the full-text index are all held, about
//! [`PEAK_FACTOR`] times the decompressed size. Without a bound, sixteen 64 MiB batches at once
//! took 3.4 GB. The budget bounds that estimate of the memory of the bodies in flight.
//!
//! Limits and invariants:
//! - While a body arrives, its request reserves the bytes that have arrived (what they take: a
//!   client that sends slowly holds only what it sent, not what it announced). Once it is whole,
//!   [`PEAK_FACTOR`] times its size: an uncompressed body's, a compressed body's stated size
//!   (its zstd frame's or gzip trailer's, else `--max-decompressed-bytes`). A request waits at
//!   most [`WAIT`] in all for room, in arrival order. While decompressing, a stated size that was short grows the reservation
//!   without waiting (a request that cannot grow gives up all it holds). Once decompressed, the
//!   reservation is cut to [`PEAK_FACTOR`] times the decompressed size and held until the answer
//!   is sent: while the batch is parsed, prepared and written.
//! - A request that gets no room in time is answered 503 `overloaded` with `Retry-After` (the SDK
//!   spools its batch and sends it later); nothing of it was stored.
//! - Two lanes: a quarter of the budget is kept for small bodies (up to [`SMALL_BODY`], every
//!   batch an SDK sends with its default settings), the rest for larger ones. Each lane serves
//!   its requests in arrival order, so a flood of huge bodies waiting for room never makes a
//!   small one wait behind it. A body that grows past [`SMALL_BODY`] moves to the large lane.
//! - One request never reserves more than its lane: a body larger than it waits until nothing
//!   else is held there, then takes all of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::decode::human_bytes;
use crate::error::ApiError;

/// The memory a body takes at its peak, in multiples of its decompressed size (measured: a 60 MiB
/// batch of messages peaks near 4x while prepared).
pub const PEAK_FACTOR: u64 = 4;

/// How long a request may wait for room in the budget, in all, before a 503.
pub const WAIT: Duration = Duration::from_secs(5);

/// `Retry-After` of the 503 past the budget, in seconds.
const RETRY_AFTER_S: u64 = 2;

/// The budget counts kibibytes: a semaphore takes at most `u32::MAX` permits at once.
const UNIT: u64 = 1 << 10;

/// Largest body served from the small lane: 8 MiB decompressed, the SDK's largest batch.
pub const SMALL_BODY: u64 = 8 << 20;

/// The shared budget of request body memory: its two lanes.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: u64,
    small: Lane,
    large: Lane,
}

/// One lane of the budget: a semaphore of units.
#[derive(Debug, Clone)]
struct Lane {
    units: Arc<Semaphore>,
    total: u64,
}

impl Lane {
    fn new(bytes: u64) -> Lane {
        let total = units(bytes).clamp(1, Semaphore::MAX_PERMITS as u64);
        Lane {
            units: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }
}

/// Budget held by one request; given back when dropped.
#[derive(Debug)]
pub struct BodyMemory {
    budget: BodyBudget,
    /// Whether it holds units of the large lane (else of the small one).
    large: bool,
    permit: Option<OwnedSemaphorePermit>,
}

impl BodyBudget {
    pub fn new(bytes: u64) -> BodyBudget {
        let small = bytes / 4;
        BodyBudget {
            bytes,
            small: Lane::new(small),
            large: Lane::new(bytes - small),
        }
    }

    fn lane(&self, large: bool) -> &Lane {
        if large { &self.large } else { &self.small }
    }

    /// A reservation of nothing yet, to grow as a body arrives.
    pub fn empty(&self) -> BodyMemory {
        BodyMemory {
            budget: self.clone(),
            large: false,
            permit: None,
        }
    }

    /// Reserves the peak memory of a body of `body_bytes` ([`PEAK_FACTOR`] times it), waiting up
    /// to [`WAIT`]; a 503 `overloaded` past it.
    #[cfg(test)]
    pub async fn reserve(&self, body_bytes: u64) -> Result<BodyMemory, ApiError> {
        let mut memory = self.empty();
        memory.grow_to(body_bytes, Instant::now() + WAIT).await?;
        Ok(memory)
    }
}

impl BodyMemory {
    /// Units held.
    fn held(&self) -> u64 {
        self.permit.as_ref().map_or(0, |p| p.num_permits() as u64)
    }

    /// The body bytes the reservation covers (its bytes over [`PEAK_FACTOR`]).
    pub fn body_bytes(&self) -> u64 {
        self.held() * UNIT / PEAK_FACTOR
    }

    /// Whether it holds all of the large lane: a body larger than the lane then goes on alone.
    pub fn holds_all(&self) -> bool {
        self.large && self.held() >= self.budget.large.total
    }

    /// What covering a body of `body_bytes` takes: whether in the large lane, its units, and the
    /// units to add there (all of them when the body moves to the large lane). `None`: nothing
    /// to add.
    fn plan(&self, body_bytes: u64) -> Option<(bool, Arc<Semaphore>, u32)> {
        let need = units(body_bytes.saturating_mul(PEAK_FACTOR)).max(1);
        // A body the small lane cannot cover whole goes to the large one.
        let large = self.large || body_bytes > SMALL_BODY || need > self.budget.small.total;
        let lane = self.budget.lane(large);
        let want = need.min(lane.total);
        let have = if large == self.large { self.held() } else { 0 };
        // At most a lane's total, which fits a semaphore's count.
        let more = u32::try_from(want.saturating_sub(have)).unwrap_or(u32::MAX);
        (more > 0).then(|| (large, Arc::clone(&lane.units), more))
    }

    /// Takes `permit` (of the lane `large` says) into what is held.
    fn add(&mut self, large: bool, permit: OwnedSemaphorePermit) {
        if large != self.large {
            // Moved to the large lane: the small lane's units go back.
            self.large = large;
            self.permit = Some(permit);
            return;
        }
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
    }

    /// Covers `wire_bytes` of a body still arriving (what they take, not the body's peak), waiting
    /// until `deadline`.
    pub async fn grow_wire_to(
        &mut self,
        wire_bytes: u64,
        deadline: Instant,
    ) -> Result<(), ApiError> {
        self.grow_to(wire_bytes.div_ceil(PEAK_FACTOR), deadline)
            .await
    }

    /// Covers a body of at least `body_bytes` (at most its lane), waiting until `deadline` for
    /// the rest.
    pub async fn grow_to(&mut self, body_bytes: u64, deadline: Instant) -> Result<(), ApiError> {
        let Some((large, units, more)) = self.plan(body_bytes) else {
            return Ok(());
        };
        let acquire = units.acquire_many_owned(more);
        match tokio::time::timeout_at(deadline.into(), acquire).await {
            Ok(Ok(permit)) => {
                self.add(large, permit);
                Ok(())
            }
            _ => Err(self.overloaded(body_bytes)),
        }
    }

    /// [`BodyMemory::grow_to`] without waiting (from a blocking thread, while decompressing). On
    /// failure everything held is given back: a request waiting for more while holding some could
    /// starve the others.
    pub fn try_grow_to(&mut self, body_bytes: u64) -> Result<(), ApiError> {
        let Some((large, units, more)) = self.plan(body_bytes) else {
            return Ok(());
        };
        match units.try_acquire_many_owned(more) {
            Ok(permit) => {
                self.add(large, permit);
                Ok(())
            }
            Err(_) => {
                self.permit = None;
                Err(self.overloaded(body_bytes))
            }
        }
    }

    /// Gives back what is held beyond what a body of `body_bytes` needs.
    pub fn shrink_to(&mut self, body_bytes: u64) {
        let keep = units(body_bytes.saturating_mul(PEAK_FACTOR)).max(1);
        if let Some(permit) = &mut self.permit
            && (permit.num_permits() as u64) > keep
        {
            let excess = permit.num_permits() - keep as usize;
            drop(permit.split(excess));
        }
    }

    fn overloaded(&self, body_bytes: u64) -> ApiError {
        let bytes = body_bytes.saturating_mul(PEAK_FACTOR);
        tracing::warn!(
            body = body_bytes,
            budget = self.budget.bytes,
            "request body memory budget full: answered 503 (--max-ingest-memory)"
        );
        ApiError::Overloaded {
            message: format!(
                "too many request bodies are in flight right now (this one needs {} of memory; \
                 the budget is {}, --max-ingest-memory); retry after a moment",
                human_bytes(bytes),
                human_bytes(self.budget.bytes)
            ),
            retry_after_s: RETRY_AFTER_S,
        }
    }
}

fn units(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_grow_shrink_and_give_back() {
        // A small lane of 10 KiB of bodies, a large one of 30 KiB.
        let budget = BodyBudget::new(40 * PEAK_FACTOR * UNIT);
        let mut a = budget.reserve(4 * UNIT).await.unwrap();
        assert_eq!(a.body_bytes(), 4 * UNIT);
        a.grow_to(8 * UNIT, Instant::now() + WAIT).await.unwrap();
        assert_eq!(a.body_bytes(), 8 * UNIT);
        let mut b = budget.reserve(2 * UNIT).await.unwrap();
        assert!(
            b.try_grow_to(3 * UNIT).is_err(),
            "no room left in the small lane"
        );
        assert_eq!(b.body_bytes(), 0, "a failed growth gives everything back");
        a.shrink_to(3 * UNIT);
        assert_eq!(a.body_bytes(), 3 * UNIT);
        // Larger than the small lane: served by the large one, whole.
        let c = budget.reserve(20 * UNIT).await.unwrap();
        assert_eq!(c.body_bytes(), 20 * UNIT);
        // Larger than the large lane: waits for all of it.
        let d = budget.reserve(100 * UNIT);
        let waiting = tokio::time::timeout(Duration::from_millis(50), d).await;
        assert!(
            waiting.is_err(),
            "it waits while another request holds some"
        );
        drop(c);
        let all = budget.reserve(100 * UNIT).await.unwrap();
        assert_eq!(all.body_bytes(), 30 * UNIT);
        assert!(all.holds_all());
        drop(a);
    }

    #[tokio::test]
    async fn large_bodies_never_hold_up_small_ones() {
        let budget = BodyBudget::new(4 * PEAK_FACTOR * SMALL_BODY);
        let large = budget.reserve(3 * SMALL_BODY).await.unwrap();
        assert!(large.holds_all(), "the large lane is full");
        // Another large body waits for it...
        let next = tokio::time::timeout(Duration::from_millis(50), budget.reserve(2 * SMALL_BODY));
        assert!(next.await.is_err());
        // ...a small one does not.
        let mut small = budget.reserve(SMALL_BODY / 2).await.unwrap();
        assert_eq!(small.body_bytes(), SMALL_BODY / 2);
        // Growing past the small lane moves it to the large one, which is full.
        assert!(small.try_grow_to(2 * SMALL_BODY).is_err());
        drop(large);
        let mut small = budget.reserve(SMALL_BODY / 2).await.unwrap();
        small
            .grow_to(2 * SMALL_BODY, Instant::now() + WAIT)
            .await
            .unwrap();
        assert_eq!(small.body_bytes(), 2 * SMALL_BODY);
        let other = budget.reserve(SMALL_BODY).await.unwrap();
        assert_eq!(
            other.body_bytes(),
            SMALL_BODY,
            "the small lane was given back"
        );
    }
}
