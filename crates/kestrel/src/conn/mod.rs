//! One HTTP/1 connection: its deadlines, and the answers written below the handlers.
//!
//! hyper runs the protocol; this module wraps its two ends. [`ConnIo`] wraps the socket and owns
//! the deadlines of reading a request head and of writing; [`ConnService`] wraps the router and
//! owns the deadline of a request body. Both share the connection's [`ConnState`]:
//!
//! - **Waiting for a request head**, from the connect or from the moment the previous answer was
//!   written whole. The first request of a connection must arrive whole within `header_timeout`
//!   of the connect; a later one within `idle_timeout` of the previous answer for its first byte,
//!   then within `header_timeout` of that byte. Past the deadline the read fails and hyper closes
//!   the connection (a half-sent head gets no answer: there is no request to answer). Bytes of a
//!   next request sent before the answer was written (pipelining) count as not yet arrived: such
//!   a head, if incomplete, has the idle deadline.
//! - **In a request**, from the moment hyper hands the parsed head to the service until its
//!   answer is written whole. No read deadline: a running handler is never cut by the
//!   connection's timers (an ingest being committed finishes). The body must arrive within
//!   `body_timeout` of the head; past it the body read fails and the answer is a JSON 408
//!   ([`service`]), after which the connection closes.
//! - In both phases, a write that makes no progress for `write_timeout` (a client that does not
//!   read its answer) fails and closes the connection, which frees the answer it held.
//!
//! hyper's own `header_read_timeout` is not used: its timer also runs while a keep-alive
//! connection waits for its next request, so it cannot tell an idle connection from a slow head.
//!
//! An answer hyper writes by itself (400, 414 or 431 for a head it cannot parse) is written while
//! no request is dispatched; [`ConnIo`] replaces it with the same status and a JSON error body
//! ([`canned`]).

mod canned;
mod io;
mod service;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

pub use canned::{MAX_HEAD_BYTES, MAX_HEADERS};
pub use io::ConnIo;
pub use service::ConnService;

/// The deadlines of a connection and how many may be open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// A request's line and headers, from their first byte (from the connect for the first).
    pub header_timeout: Duration,
    /// A keep-alive connection waiting for its next request.
    pub idle_timeout: Duration,
    /// A request's body, from its head.
    pub body_timeout: Duration,
    /// A write that makes no progress.
    pub write_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl ConnLimits {
    pub const DEFAULT: ConnLimits = ConnLimits {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(60),
        write_timeout: Duration::from_secs(30),
        max_connections: 1024,
    };
}

/// Where a connection is in its request/answer cycle; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head since `since`; `first_byte` is when its first byte arrived.
    /// `fresh`: no request was served on this connection yet.
    Head {
        since: Instant,
        first_byte: Option<Instant>,
        fresh: bool,
    },
    /// A request is dispatched; `answered` once its answer body has been handed to hyper whole.
    Request { answered: bool },
}

/// The phase of one connection, shared by its IO and its service.
#[derive(Debug)]
pub struct ConnState {
    phase: Mutex<Phase>,
}

impl ConnState {
    /// A connection accepted at `now`.
    pub fn new(now: Instant) -> Arc<ConnState> {
        Arc::new(ConnState {
            phase: Mutex::new(Phase::Head {
                since: now,
                first_byte: None,
                fresh: true,
            }),
        })
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        // The phase is a plain value: a panic elsewhere cannot leave it half-written.
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When reading must have made progress by, and what it means when it has not.
    fn read_deadline(&self, limits: &ConnLimits) -> Option<(Instant, &'static str)> {
        match *self.phase() {
            Phase::Head {
                fresh: true, since, ..
            } => Some((
                since + limits.header_timeout,
                "no whole request head within the header timeout of the connect",
            )),
            Phase::Head {
                first_byte: Some(first),
                ..
            } => Some((
                first + limits.header_timeout,
                "request head not complete within the header timeout",
            )),
            Phase::Head { since, .. } => Some((
                since + limits.idle_timeout,
                "no request within the idle timeout",
            )),
            Phase::Request { .. } => None,
        }
    }

    /// Bytes arrived from the client at `now`.
    fn on_read(&self, now: Instant) {
        if let Phase::Head { first_byte, .. } = &mut *self.phase()
            && first_byte.is_none()
        {
            *first_byte = Some(now);
        }
    }

    /// hyper parsed a request head and called the service.
    fn on_request(&self) {
        *self.phase() = Phase::Request { answered: false };
    }

    /// hyper dropped the answer's body: it holds every byte of the answer (or gave up on it).
    fn on_answered(&self) {
        if let Phase::Request { answered } = &mut *self.phase() {
            *answered = true;
        }
    }

    /// hyper flushed the socket, which it does only once its own write buffer is empty: if the
    /// answer was handed over whole, it is now written, and the wait for the next request starts
    /// (returns true then).
    fn on_flush(&self, now: Instant) -> bool {
        let mut phase = self.phase();
        if *phase != (Phase::Request { answered: true }) {
            return false;
        }
        *phase = Phase::Head {
            since: now,
            first_byte: None,
            fresh: false,
        };
        true
    }

    /// No request is dispatched: anything hyper writes now is an answer of its own.
    fn awaiting_head(&self) -> bool {
        matches!(*self.phase(), Phase::Head { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_the_phase() {
        let limits = ConnLimits::DEFAULT;
        let t0 = Instant::now();
        let state = ConnState::new(t0);
        assert_eq!(
            state.read_deadline(&limits).map(|d| d.0),
            Some(t0 + limits.header_timeout)
        );
        state.on_request();
        assert!(state.read_deadline(&limits).is_none());
        assert!(!state.awaiting_head());
        let t1 = t0 + Duration::from_secs(3);
        // A flush before the answer is handed over whole is a flush of part of it.
        state.on_flush(t1);
        assert!(state.read_deadline(&limits).is_none());
        state.on_answered();
        state.on_flush(t1);
        assert_eq!(
            state.read_deadline(&limits).map(|d| d.0),
            Some(t1 + limits.idle_timeout)
        );
        let t2 = t1 + Duration::from_secs(5);
        state.on_read(t2);
        state.on_read(t2 + Duration::from_secs(1));
        assert_eq!(
            state.read_deadline(&limits).map(|d| d.0),
            Some(t2 + limits.header_timeout)
        );
        assert!(state.awaiting_head());
    }
}
