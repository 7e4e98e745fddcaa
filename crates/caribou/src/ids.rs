//! Record ids, trace ids and timestamps, made on the agent's thread at log time.
//!
//! Ids are UUIDv7 (48-bit millisecond time, then a 42-bit counter, then 32 random bits), made
//! from thread-local state: `uuid::Uuid::now_v7` keeps its state behind a process-wide mutex, which
//! would be a lock on the hot path and a deadlock waiting in a forked child whose parent held it.
//!
//! Invariants:
//! - Ids made by one thread are strictly increasing, so items logged within the same microsecond
//!   keep their order when sorted by `(ts, id)`. Ids of different threads are ordered by
//!   millisecond only.
//! - Ids are unique: the counter starts at a random value every millisecond and the low 32 bits
//!   are random. After `fork()` the child reseeds (see [`note_fork`]), so parent and child never
//!   replay the same random stream.
//! - An id is made once, when the record is built, and never again: a retried batch carries the
//!   same ids, which is what lets Kestrel store it once.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

/// Bumped in a forked child so every thread-local generator reseeds before its next id.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

const COUNTER_BITS: u32 = 42;
const COUNTER_MAX: u64 = (1 << COUNTER_BITS) - 1;

#[derive(Clone, Copy)]
struct IdState {
    /// `FORK_GENERATION` when seeded; `u64::MAX` before the first id of the thread.
    generation: u64,
    rng: u64,
    last_ms: u64,
    counter: u64,
}

thread_local! {
    static STATE: Cell<IdState> = const {
        Cell::new(IdState { generation: u64::MAX, rng: 0, last_ms: 0, counter: 0 })
    };
}

/// Tells the generators that this process is a fresh fork child: every thread reseeds.
pub(crate) fn note_fork() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// A new record id and the current time in microseconds since the Unix epoch.
pub fn new_id_and_ts() -> (Uuid, i64) {
    let ([id], ts) = new_ids();
    (id, ts)
}

/// `N` new ids, increasing, from one reading of the clock (`trace_run` needs three at once: its
/// opening's id, the turn's id and the trace id), and that time in microseconds.
pub fn new_ids<const N: usize>() -> ([Uuid; N], i64) {
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let ms = u64::try_from(now_us / 1000).unwrap_or(0);
    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    let ids = STATE.try_with(|cell| {
        let mut s = cell.get();
        if s.generation != generation {
            s = IdState {
                generation,
                rng: seed(),
                last_ms: 0,
                counter: 0,
            };
        }
        let ids = std::array::from_fn(|_| next_id(&mut s, ms));
        cell.set(s);
        ids
    });
    // The thread-local is gone only while the thread is being torn down: use fresh OS randomness.
    let ids = ids.unwrap_or_else(|_| {
        std::array::from_fn(|_| make_v7(ms, seed() & (COUNTER_MAX >> 1), seed()))
    });
    (ids, now_us)
}

/// The next id of a thread's generator at millisecond `ms`.
fn next_id(s: &mut IdState, ms: u64) -> Uuid {
    if ms > s.last_ms {
        s.last_ms = ms;
        // Top bit clear leaves room to count up within the millisecond.
        s.counter = next(&mut s.rng) & (COUNTER_MAX >> 1);
    } else {
        // Same millisecond, or the clock stepped back: keep counting on the last time.
        s.counter += 1;
        if s.counter > COUNTER_MAX {
            s.last_ms += 1;
            s.counter = next(&mut s.rng) & (COUNTER_MAX >> 1);
        }
    }
    let random = next(&mut s.rng);
    make_v7(s.last_ms, s.counter, random)
}

/// A new trace id, `trc_` followed by the 32 hex digits of a UUIDv7.
pub fn new_trace_id() -> String {
    trace_id_of(new_id_and_ts().0)
}

/// The trace id made of a fresh id: `trc_` followed by its 32 hex digits.
pub fn trace_id_of(id: Uuid) -> String {
    // Not `format!`: its machinery cost more than the rest of making the id.
    let mut out = String::with_capacity(36);
    out.push_str("trc_");
    out.push_str(id.simple().encode_lower(&mut Uuid::encode_buffer()));
    out
}

fn make_v7(ms: u64, counter: u64, random: u64) -> Uuid {
    let mut bytes = [0u8; 10];
    // rand_a (12 bits): the counter's top 12 bits; the builder puts the version in the top nibble.
    let high = u16::try_from(counter >> 30).unwrap_or(0);
    bytes[..2].copy_from_slice(&high.to_be_bytes());
    // rand_b (62 bits): the counter's low 30 bits, then 32 random bits; the variant takes the
    // top 2 bits, which are zero here.
    let low = ((counter & 0x3FFF_FFFF) << 32) | (random & 0xFFFF_FFFF);
    bytes[2..].copy_from_slice(&low.to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid()
}

fn seed() -> u64 {
    // Random from the OS (through `uuid`'s getrandom); taken once per thread and per fork.
    let r = Uuid::new_v4().as_u128();
    (r as u64) ^ ((r >> 64) as u64) | 1
}

/// wyrand: fast, good enough for the random tail of an id that is also time- and counter-unique.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0xa076_1d64_78bd_642f);
    let t = u128::from(*state) * u128::from(*state ^ 0xe703_7ed1_a0b4_28db);
    ((t >> 64) as u64) ^ (t as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_v7_increasing_and_unique() {
        let mut last = Uuid::nil();
        let mut seen = HashSet::new();
        for _ in 0..100_000 {
            let (id, ts) = new_id_and_ts();
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert!(id > last, "{id} after {last}");
            assert!(caribou_model::validate::check_ts("ts", ts).is_ok());
            assert!(seen.insert(id));
            last = id;
        }
    }

    #[test]
    fn the_id_carries_the_timestamp() {
        let (id, ts) = new_id_and_ts();
        let (secs, nanos) = id.get_timestamp().expect("v7 has a timestamp").to_unix();
        let id_ms = i64::try_from(secs * 1000).unwrap_or(0) + i64::from(nanos / 1_000_000);
        assert!((id_ms - ts / 1000).abs() <= 1, "{id_ms} vs {ts}");
    }

    #[test]
    fn a_fork_reseeds() {
        let before = new_id_and_ts().0;
        note_fork();
        let after = new_id_and_ts().0;
        // A fresh seed restarts the counter, so only uniqueness is promised across a fork.
        assert_ne!(before, after);
        assert_eq!(after.get_version_num(), 7);
    }

    #[test]
    fn threads_never_collide() {
        let sets: Vec<HashSet<Uuid>> = (0..4)
            .map(|_| std::thread::spawn(|| (0..20_000).map(|_| new_id_and_ts().0).collect()))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let total: usize = sets.iter().map(HashSet::len).sum();
        let union: HashSet<&Uuid> = sets.iter().flatten().collect();
        assert_eq!(total, 80_000);
        assert_eq!(union.len(), total);
    }

    #[test]
    fn ids_made_together_are_increasing_and_share_the_time() {
        let mut last = new_id_and_ts().0;
        for _ in 0..10_000 {
            let (ids, ts) = new_ids::<3>();
            for id in ids {
                assert!(id > last, "{id} after {last}");
                assert_eq!(id.get_version_num(), 7);
                last = id;
            }
            let (secs, nanos) = ids[0].get_timestamp().expect("v7").to_unix();
            let id_ms = i64::try_from(secs * 1000).unwrap_or(0) + i64::from(nanos / 1_000_000);
            assert!((id_ms - ts / 1000).abs() <= 1, "{id_ms} vs {ts}");
        }
    }

    #[test]
    fn trace_ids_look_right() {
        let id = new_trace_id();
        assert!(id.starts_with("trc_") && id.len() == 36, "{id}");
    }
}
