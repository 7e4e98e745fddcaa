//! The socket of a connection, with its read and write deadlines (see the module docs of
//! [`crate::conn`]).
//!
//! A deadline is enforced where hyper waits: a read or write that returns `Pending` polls a
//! timer too, and fails with `TimedOut` once it has passed; hyper then closes the connection.
//! Nothing is polled in the background: a connection costs two timers at most.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep, sleep_until};

use super::canned::Canned;
use super::{ConnLimits, ConnState};

/// A socket whose reads and writes fail at the connection's deadlines.
#[derive(Debug)]
pub struct ConnIo<T> {
    inner: T,
    state: Arc<ConnState>,
    limits: ConnLimits,
    peer: SocketAddr,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
    /// The write timer runs: the last write returned `Pending` and none progressed since.
    write_stalled: bool,
    canned: Canned,
}

impl<T> ConnIo<T> {
    pub fn new(inner: T, state: Arc<ConnState>, limits: ConnLimits, peer: SocketAddr) -> Self {
        ConnIo {
            inner,
            state,
            limits,
            peer,
            read_timer: None,
            write_timer: None,
            write_stalled: false,
            canned: Canned::default(),
        }
    }

    /// A read is pending: `TimedOut` if the phase's read deadline passed, else arms its timer.
    fn read_expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let (deadline, what) = self.state.read_deadline(&self.limits)?;
        let timer = match &mut self.read_timer {
            Some(timer) => {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => self.read_timer.insert(Box::pin(sleep_until(deadline))),
        };
        if timer.as_mut().poll(cx).is_pending() {
            return None;
        }
        tracing::debug!(peer = %self.peer, "closing connection: {what}");
        Some(io::Error::new(io::ErrorKind::TimedOut, what))
    }

    /// Passes a write's outcome on; a `Pending` one starts (or checks) the write timer.
    fn track_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.write_stalled = false;
            return poll;
        }
        if !self.write_stalled {
            let deadline = Instant::now() + self.limits.write_timeout;
            match &mut self.write_timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.write_timer = Some(Box::pin(sleep_until(deadline))),
            }
            self.write_stalled = true;
        }
        let expired = self
            .write_timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
        if !expired {
            return Poll::Pending;
        }
        tracing::debug!(
            peer = %self.peer,
            write_timeout_s = self.limits.write_timeout.as_secs_f64(),
            "closing connection: no write progress within the write timeout (the client does not read)"
        );
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no write progress within the write timeout",
        )))
    }
}

impl<T: AsyncWrite + Unpin> ConnIo<T> {
    /// Sends what stands in for an answer hyper wrote by itself; ready when nothing is left.
    fn poll_send_canned(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.canned.pending().is_empty() {
            let poll = Pin::new(&mut self.inner).poll_write(cx, self.canned.pending());
            match ready!(self.track_write(cx, poll))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => self.canned.advance(n),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ConnIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.state.on_read(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.read_expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ConnIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.state.awaiting_head() {
            this.canned.absorb(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.track_write(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.state.awaiting_head() {
            let mut n = 0;
            for buf in bufs {
                this.canned.absorb(buf);
                n += buf.len();
            }
            return Poll::Ready(Ok(n));
        }
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.track_write(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.state.on_flush(Instant::now()) {
            // hyper's read is already pending on the socket and is polled again only when bytes
            // arrive: start the idle deadline's timer here, so that it wakes the connection.
            let _ = this.read_expired(cx);
        }
        ready!(this.poll_send_canned(cx))?;
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.track_write(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_canned(cx))?;
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.track_write(cx, poll)
    }
}
