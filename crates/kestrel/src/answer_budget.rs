//! Memory for large answers being sent.
//!
//! A whole trace (`GET /api/v1/traces/{id}`) and a page of its items are built in memory before
//! the first byte goes out, and stay there until the client has read the last one: without a
//! bound, every slow or stalled reader of a 50 MB trace would pin 50 MB. The budget bounds it.
//!
//! Limits and invariants:
//! - At most [`BUILDS_AT_ONCE`] such answers are built at once; others wait for a turn (holding
//!   no memory; a read whose client goes away stops waiting).
//! - A built answer takes its size from the budget and gives it back when its bytes are freed:
//!   the budget travels with the bytes ([`Bytes::from_owner`]), so it is held exactly as long as
//!   the memory, until the last byte is written or the connection is closed (a reader that stops
//!   reading is cut off after the write timeout, see [`crate::conn`]).
//! - A built answer that does not fit waits up to [`WAIT`] for room, then is dropped and the
//!   client gets a 503 `overloaded` with `Retry-After`. An answer larger than the whole budget
//!   waits until nothing else is held, then takes all of it.
//! - So the memory of such answers is at most the budget plus [`BUILDS_AT_ONCE`] answers.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use crate::decode::human_bytes;
use crate::error::ApiError;

/// Answers built at once: as many as the store reads at once, so building is never the
/// bottleneck.
pub const BUILDS_AT_ONCE: usize = 4;

/// How long a built answer may wait for room in the budget.
pub const WAIT: Duration = Duration::from_secs(2);

/// `Retry-After` of the 503 past the budget, in seconds.
const RETRY_AFTER_S: u64 = 1;

/// How often "answer memory budget full" may be logged.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// The budget counts kibibytes: a semaphore takes at most `u32::MAX` permits at once.
const UNIT: u64 = 1 << 10;

/// The shared budget of answer memory.
#[derive(Debug, Clone)]
pub struct AnswerBudget {
    bytes: u64,
    units: Arc<Semaphore>,
    builds: Arc<Semaphore>,
    warned: Arc<Mutex<Option<Instant>>>,
}

/// A turn to build an answer.
#[derive(Debug)]
pub struct BuildTurn<'a> {
    _turn: SemaphorePermit<'a>,
}

impl AnswerBudget {
    pub fn new(bytes: u64) -> AnswerBudget {
        let units = units(bytes).min(Semaphore::MAX_PERMITS as u64);
        AnswerBudget {
            bytes,
            units: Arc::new(Semaphore::new(units as usize)),
            builds: Arc::new(Semaphore::new(BUILDS_AT_ONCE)),
            warned: Arc::default(),
        }
    }

    /// Waits for a turn to build an answer.
    pub async fn turn(&self) -> BuildTurn<'_> {
        match self.builds.acquire().await {
            Ok(turn) => BuildTurn { _turn: turn },
            Err(_) => unreachable!("the build semaphore is never closed"),
        }
    }

    /// Takes `answer`'s size from the budget (waiting up to [`WAIT`]) and hands it back as bytes
    /// that return it when freed; the build turn ends either way.
    pub async fn hold(&self, answer: Vec<u8>, turn: BuildTurn<'_>) -> Result<Bytes, ApiError> {
        let total = units(self.bytes) as u32;
        let wanted = (units(answer.len() as u64) as u32).clamp(1, total.max(1));
        let acquire = Arc::clone(&self.units).acquire_many_owned(wanted);
        let held = tokio::time::timeout(WAIT, acquire).await;
        drop(turn);
        match held {
            Ok(Ok(permit)) => Ok(Bytes::from_owner(Held {
                bytes: answer,
                _permit: permit,
            })),
            _ => {
                self.warn_full(answer.len());
                Err(ApiError::Overloaded {
                    message: format!(
                        "too many large answers are being sent right now (an answer of {} \
                         waited {} s for memory; the budget is {}, --max-answer-memory); retry \
                         later or read the trace a page at a time with /items",
                        human_bytes(answer.len() as u64),
                        WAIT.as_secs(),
                        human_bytes(self.bytes)
                    ),
                    retry_after_s: RETRY_AFTER_S,
                })
            }
        }
    }
}

impl AnswerBudget {
    /// Logs that the budget is full, at most once every [`FULL_WARNING_EVERY`].
    fn warn_full(&self, answer: usize) {
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        if warned.is_none_or(|t| t.elapsed() >= FULL_WARNING_EVERY) {
            tracing::warn!(
                answer,
                budget = self.bytes,
                "answer memory budget full: answering 503 (--max-answer-memory)"
            );
            *warned = Some(Instant::now());
        }
    }
}

fn units(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT).min(u64::from(u32::MAX))
}

/// An answer's bytes and the budget they hold.
struct Held {
    bytes: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_budget_is_held_as_long_as_the_bytes() {
        let budget = AnswerBudget::new(10 << 10);
        let turn = budget.turn().await;
        let a = budget.hold(vec![1; 6 << 10], turn).await.unwrap();
        assert_eq!(a.len(), 6 << 10);
        let slice = a.slice(0..10);
        drop(a);
        // A slice keeps the whole answer alive, and the budget with it.
        let turn = budget.turn().await;
        let refused = budget.hold(vec![2; 6 << 10], turn).await.unwrap_err();
        assert_eq!(refused.code().status(), 503);
        drop(slice);
        let turn = budget.turn().await;
        assert!(budget.hold(vec![3; 6 << 10], turn).await.is_ok());
    }

    #[tokio::test]
    async fn an_answer_larger_than_the_budget_takes_all_of_it() {
        let budget = AnswerBudget::new(4 << 10);
        let turn = budget.turn().await;
        let big = budget.hold(vec![0; 1 << 20], turn).await.unwrap();
        let turn = budget.turn().await;
        assert!(budget.hold(vec![0; 10], turn).await.is_err());
        drop(big);
        let turn = budget.turn().await;
        assert!(budget.hold(vec![0; 10], turn).await.is_ok());
    }
}
