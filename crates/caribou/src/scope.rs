//! The current trace, for Rust callers: [`trace_run`] (sync) and [`trace_run_async`] (async).
//!
//! Sync code gets a thread-local current trace, set for the duration of the closure and restored
//! afterwards (so blocks nest). Async code wraps the future: the trace is current during each
//! `poll` of it and of nothing else, so many tasks interleaved on one thread never see each
//! other's trace, and no guard is ever held across an `.await`. (Python keeps its own
//! `ContextVar` of handles and does not use this module.)
//!
//! Outcomes: a block that returns closes its turn with the last `set_status`, else `COMPLETED`.
//! A panic inside closes it as `ERROR` with the panic message, then keeps unwinding. A
//! `trace_run_async` future dropped before it finished (cancelled, timed out) closes as
//! `CANCELLED`. The free functions ([`log`], [`set_status`], ...) act on the current trace; with
//! none, they warn once and do nothing.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use caribou_model::{Item, JsonMap, RolloutStatus};

use crate::trace::{TraceHandle, TraceOptions};

thread_local! {
    static CURRENT: RefCell<Option<TraceHandle>> = const { RefCell::new(None) };
}

static WARNED_NO_TRACE: AtomicBool = AtomicBool::new(false);

/// Makes a handle current until dropped, then restores the previous one.
struct Enter {
    previous: Option<TraceHandle>,
}

impl Enter {
    fn new(handle: TraceHandle) -> Enter {
        let previous = CURRENT.try_with(|c| c.replace(Some(handle))).ok().flatten();
        Enter { previous }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|c| c.replace(previous));
    }
}

/// The current trace of this thread (or of the polled `trace_run_async` future).
pub fn current() -> Option<TraceHandle> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

fn with_current(f: impl FnOnce(&TraceHandle)) {
    let found = CURRENT
        .try_with(|c| match c.try_borrow() {
            Ok(current) => current.as_ref().map(f).is_some(),
            Err(_) => false,
        })
        .unwrap_or(false);
    if !found && !WARNED_NO_TRACE.swap(true, Ordering::Relaxed) {
        tracing::warn!("caribou: logging outside of any trace_run does nothing (warned once)");
    }
}

/// Logs an item on the current trace.
pub fn log(item: Item) {
    with_current(|h| h.log(item));
}

/// Sets the current trace's status.
pub fn set_status(status: RolloutStatus) {
    with_current(|h| h.set_status(status));
}

/// Records an error on the current trace.
pub fn set_error(message: String, traceback: Option<String>) {
    with_current(|h| h.set_error(message, traceback));
}

/// Merges metadata into the current trace.
pub fn add_meta(metadata: JsonMap) {
    with_current(|h| h.add_meta(metadata));
}

/// Adds tags to the current trace.
pub fn add_tags(tags: Vec<String>) {
    with_current(|h| h.add_tags(tags));
}

/// Runs `f` as one turn of a trace, current on this thread meanwhile.
pub fn trace_run<R>(opts: TraceOptions, f: impl FnOnce(&TraceHandle) -> R) -> R {
    let handle = TraceHandle::open(opts);
    let result = {
        let _enter = Enter::new(handle.clone());
        catch_unwind(AssertUnwindSafe(|| f(&handle)))
    };
    match result {
        Ok(value) => {
            handle.close(None);
            value
        }
        Err(panic) => {
            fail(&handle, &*panic);
            resume_unwind(panic)
        }
    }
}

/// Wraps `fut` as one turn of a trace: the trace is current during every poll of `fut`.
pub fn trace_run_async<F: Future>(opts: TraceOptions, fut: F) -> TraceRunFuture<F> {
    TraceRunFuture {
        handle: TraceHandle::open(opts),
        fut: Box::pin(fut),
        finished: false,
    }
}

/// The future returned by [`trace_run_async`].
#[must_use = "a trace_run_async future does nothing unless awaited (dropped, its turn closes as CANCELLED)"]
#[derive(Debug)]
pub struct TraceRunFuture<F> {
    handle: TraceHandle,
    fut: Pin<Box<F>>,
    finished: bool,
}

impl<F> TraceRunFuture<F> {
    /// The trace this future logs into.
    pub fn handle(&self) -> &TraceHandle {
        &self.handle
    }
}

impl<F: Future> Future for TraceRunFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // `TraceRunFuture` is `Unpin` (the inner future is boxed), so plain `&mut` access is fine.
        let this = self.get_mut();
        if this.finished {
            // Polled after completion: a caller bug; stay pending rather than poll `fut` again.
            return Poll::Pending;
        }
        let polled = {
            let _enter = Enter::new(this.handle.clone());
            catch_unwind(AssertUnwindSafe(|| this.fut.as_mut().poll(cx)))
        };
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => {
                this.finished = true;
                this.handle.close(None);
                Poll::Ready(value)
            }
            Err(panic) => {
                this.finished = true;
                fail(&this.handle, &*panic);
                resume_unwind(panic)
            }
        }
    }
}

impl<F> Drop for TraceRunFuture<F> {
    fn drop(&mut self) {
        if !self.finished {
            self.handle.close(Some(RolloutStatus::Cancelled));
        }
    }
}

fn fail(handle: &TraceHandle, panic: &(dyn Any + Send)) {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".to_owned());
    handle.set_error(format!("panic: {message}"), None);
    handle.close(Some(RolloutStatus::Error));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    fn named(id: &str) -> TraceOptions {
        TraceOptions {
            trace_id: Some(id.to_owned()),
            ..TraceOptions::default()
        }
    }

    fn current_id() -> Option<String> {
        current().map(|h| h.trace_id().to_owned())
    }

    #[test]
    fn sync_scopes_nest_and_restore() {
        assert_eq!(current_id(), None);
        let out = trace_run(named("trc_outer"), |outer| {
            assert_eq!(current_id().as_deref(), Some("trc_outer"));
            let inner_id = trace_run(named("trc_inner"), |inner| {
                assert_eq!(current_id().as_deref(), Some("trc_inner"));
                inner.trace_id().to_owned()
            });
            assert_eq!(current_id().as_deref(), Some("trc_outer"));
            assert!(!outer.is_closed());
            (inner_id, outer.clone())
        });
        assert_eq!(out.0, "trc_inner");
        assert!(out.1.is_closed(), "closed when the block ends");
        assert_eq!(current_id(), None);
    }

    #[test]
    fn a_panic_closes_the_turn_restores_the_scope_and_keeps_unwinding() {
        let mut seen = None;
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
            trace_run(named("trc_panics"), |h| {
                seen = Some(h.clone());
                panic!("the model returned garbage");
            })
        }));
        assert!(caught.is_err());
        assert!(seen.expect("ran").is_closed());
        assert_eq!(current_id(), None);
    }

    #[test]
    fn free_functions_outside_a_trace_do_nothing() {
        log(Item::Message(caribou_model::Message {
            role: "user".into(),
            ..Default::default()
        }));
        set_status(RolloutStatus::Error);
        add_tags(vec!["x".into()]);
        assert_eq!(current_id(), None);
    }

    /// Yields once: returns Pending the first time, waking itself.
    async fn yield_now() {
        let mut yielded = false;
        poll_fn(|cx| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
    }

    #[test]
    fn async_scopes_are_isolated_across_many_tasks_on_one_thread() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let tasks: Vec<_> = (0..500)
                .map(|i| {
                    let id = format!("trc_task_{i}");
                    tokio::spawn(trace_run_async(named(&id), async move {
                        for _ in 0..5 {
                            assert_eq!(current_id().as_deref(), Some(id.as_str()));
                            yield_now().await;
                        }
                        // Nested sync scope inside the async one.
                        trace_run(named("trc_nested"), |_| {
                            assert_eq!(current_id().as_deref(), Some("trc_nested"))
                        });
                        assert_eq!(current_id().as_deref(), Some(id.as_str()));
                        i
                    }))
                })
                .collect();
            assert_eq!(current_id(), None, "nothing leaks into the spawning task");
            for (i, task) in tasks.into_iter().enumerate() {
                assert_eq!(task.await.unwrap(), i);
            }
            assert_eq!(current_id(), None);
        });
    }

    #[test]
    fn a_dropped_future_closes_its_turn_as_cancelled() {
        let fut = trace_run_async(named("trc_cancelled"), async { yield_now().await });
        let handle = fut.handle().clone();
        assert!(!handle.is_closed());
        drop(fut);
        assert!(handle.is_closed());
    }
}
