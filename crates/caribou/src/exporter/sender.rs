//! The `caribou-sender` thread: posts one batch at a time, so that a slow or hung Kestrel blocks
//! only this thread, never the exporter thread that drains the queue, spools and answers `flush`.
//!
//! At most one request is in flight: the exporter hands over a body and waits for its
//! [`Outcome`] before handing over the next. When the exporter stops it drops its end; this thread
//! then ends after the request it is in (bounded by the transport's timeouts). It is never joined:
//! nobody waits for a hung request.

use std::io;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, bounded};

use super::transport::{Outcome, Transport};

/// The exporter's end of the sender thread.
#[derive(Debug)]
pub struct SenderLink {
    jobs: Sender<Arc<Vec<u8>>>,
    pub outcomes: Receiver<Outcome>,
    busy: bool,
}

impl SenderLink {
    /// Starts the thread.
    pub fn start(transport: Transport) -> io::Result<SenderLink> {
        let (jobs, job_rx) = bounded::<Arc<Vec<u8>>>(1);
        let (outcome_tx, outcomes) = bounded(1);
        std::thread::Builder::new()
            .name("caribou-sender".to_owned())
            .spawn(move || {
                for body in job_rx {
                    if outcome_tx.send(transport.post(&body)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(SenderLink {
            jobs,
            outcomes,
            busy: false,
        })
    }

    pub fn busy(&self) -> bool {
        self.busy
    }

    /// Hands a body over. False if the thread is gone (it cannot be: it ends only after us).
    pub fn send(&mut self, body: Arc<Vec<u8>>) -> bool {
        if self.busy {
            return false;
        }
        self.busy = self.jobs.try_send(body).is_ok();
        self.busy
    }

    /// Marks the request answered (the caller took the outcome from `outcomes`).
    pub fn answered(&mut self) {
        self.busy = false;
    }
}
