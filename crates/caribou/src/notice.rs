//! Warnings for whoever runs the agent, kept for bindings whose host has no `tracing` subscriber.
//!
//! A Rust host sees the SDK's warnings through its `tracing` subscriber. A Python host installs
//! none, so a warning it must see (a Kestrel endpoint that cannot be used, spooled batches that
//! will not be replayed, the exporter's first drop of each kind: queue full, invalid record,
//! batch refused by Kestrel, retries exhausted, spool full or failing) is also kept here until the
//! binding takes it ([`take`]) and writes it to its own log (the Python package:
//! `logging.getLogger("caribou")`).
//!
//! Invariants:
//! - Each key warns once per process (a forked child inherits what its parent warned about).
//! - At most [`MAX_KEPT`] messages wait to be taken, and at most [`MAX_KEYS`] keys are
//!   remembered; past either, a warning still goes to `tracing` but is not kept or not
//!   de-duplicated: memory stays bounded whatever a buggy host does.
//! - Nothing here blocks for long or panics: the state is taken with `try_lock`, retried for at
//!   most [`LOCK_PATIENCE`]. After `fork()` a lock held by a parent thread stays held forever in
//!   the child; the child then loses notices rather than hanging.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// Most messages waiting for a binding to take them.
pub const MAX_KEPT: usize = 16;
/// Most distinct keys remembered for warning once.
pub const MAX_KEYS: usize = 256;
/// Longest wait for the state's lock (it is held for microseconds, except after a fork).
const LOCK_PATIENCE: Duration = Duration::from_millis(20);

#[derive(Debug)]
struct State {
    warned: Option<HashSet<String>>,
    kept: Vec<String>,
}

static STATE: Mutex<State> = Mutex::new(State {
    warned: None,
    kept: Vec::new(),
});
/// Set while `kept` may hold messages: lets [`pending`] answer without the lock.
static PENDING: AtomicBool = AtomicBool::new(false);

fn state() -> Option<MutexGuard<'static, State>> {
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        match STATE.try_lock() {
            Ok(guard) => return Some(guard),
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(TryLockError::WouldBlock) => return None,
        }
    }
}

/// Warns `message` (through `tracing` and for the bindings) unless `key` warned before in this
/// process. Returns whether it warned.
pub(crate) fn warn_once(key: &str, message: String) -> bool {
    let Some(mut state) = state() else {
        tracing::warn!("{message}");
        return true;
    };
    let warned = state.warned.get_or_insert_with(HashSet::new);
    if warned.contains(key) {
        return false;
    }
    if warned.len() < MAX_KEYS {
        warned.insert(key.to_owned());
    }
    tracing::warn!("{message}");
    if state.kept.len() < MAX_KEPT {
        state.kept.push(message);
        PENDING.store(true, Ordering::Release);
    }
    true
}

/// Keeps `message`, a warning already sent to `tracing` once by its own counter (the exporter's
/// first drop of each kind), for the bindings to take.
pub(crate) fn keep(message: String) {
    let Some(mut state) = state() else {
        return;
    };
    if state.kept.len() < MAX_KEPT {
        state.kept.push(message);
        PENDING.store(true, Ordering::Release);
    }
}

/// Whether messages wait to be taken (one atomic load: cheap enough for every `trace_run`).
pub fn pending() -> bool {
    PENDING.load(Ordering::Acquire)
}

/// The messages warned since the last call, oldest first, for a binding to write to its host's
/// log. Each message is handed out once.
pub fn take() -> Vec<String> {
    if !pending() {
        return Vec::new();
    }
    let Some(mut state) = state() else {
        return Vec::new();
    };
    PENDING.store(false, Ordering::Release);
    std::mem::take(&mut state.kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_warns_once_and_its_message_is_taken_once() {
        let key = "test:notice-once";
        assert!(warn_once(key, "first words".into()));
        assert!(!warn_once(key, "second words".into()));
        // Other tests of the crate warn too, concurrently: look for ours only.
        let taken = take();
        assert_eq!(
            taken.iter().filter(|m| m.contains("words")).count(),
            1,
            "{taken:?}"
        );
        assert!(taken.contains(&"first words".to_owned()));
        assert!(!take().contains(&"first words".to_owned()));
    }
}
