//! The accept loop: one task per connection, at most `max_connections` open at once, and the
//! graceful stop.
//!
//! Limits and invariants:
//! - A connection is accepted only with a free slot: at the cap the loop stops accepting, new
//!   connections wait in the kernel's listen backlog, and the oldest of them is accepted as soon
//!   as any connection closes (idle ones close at their deadlines, see [`crate::conn`]). The
//!   server's own file descriptors stay bounded, so `/healthz` and the store keep working.
//! - An accept error (the process or system out of file descriptors, a connection reset before
//!   it was accepted) is logged and retried after a pause; it never stops the server.
//! - [`run`] returns once `stop` is set and every connection has closed: a connection waiting for
//!   a request closes at once, one in a request closes after writing its answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::conn::{self, ConnIo, ConnLimits, ConnService, ConnState};

/// Pause after an accept error, so a process out of file descriptors does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How often "connection limit reached" may be logged.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Accepts and serves connections until `stop` turns true, then waits for them to close.
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut warned_full: Option<Instant> = None;
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if warned_full.is_none_or(|t| t.elapsed() >= FULL_WARNING_EVERY) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached: new connections wait until one closes \
                         (--max-connections)"
                    );
                    warned_full = Some(Instant::now());
                }
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break, // never closed
                    },
                    () = stopped(&mut stop) => break,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(serve_connection(
                    stream,
                    peer,
                    router.clone(),
                    limits,
                    stop.clone(),
                    slot,
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed; retrying");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
    // Closing the listener refuses new connections while the open ones finish.
    drop(listener);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Resolves once the server is stopping.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves one connection until it closes; its slot is freed when this returns.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    // Answers are small writes followed by a wait for the next request: no Nagle delay.
    let _ = stream.set_nodelay(true);
    let state = ConnState::new(Instant::now());
    let io = TokioIo::new(ConnIo::new(stream, Arc::clone(&state), limits, peer));
    let service = ConnService::new(router, state, limits.body_timeout);
    let connection = http1::Builder::new()
        .keep_alive(true)
        // The head deadlines are ConnIo's: hyper's timer also runs while a keep-alive
        // connection waits for its next request (see crate::conn).
        .header_read_timeout(None)
        .max_buf_size(conn::MAX_HEAD_BYTES)
        .max_headers(conn::MAX_HEADERS)
        // Queue answer bodies instead of copying them into one buffer: a whole trace of tens
        // of megabytes is written from where it is.
        .writev(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let outcome = tokio::select! {
        outcome = connection.as_mut() => outcome,
        () = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = outcome {
        tracing::debug!(%peer, error = %e, "connection closed with an error");
    }
}
