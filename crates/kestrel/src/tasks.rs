//! Every request runs as its own task, so that a handler that panics answers a JSON 500 (and is
//! logged) instead of dropping the connection.
//!
//! What happens when the client goes away (hyper drops the request's future) depends on the
//! method:
//! - A read (`GET`, `HEAD`) is cancelled: its task is aborted, which drops the handler's future
//!   and with it any store query it awaits. An abandoned search does not keep a reader busy.
//! - Anything else (`POST`: an ingest, a grade, a new run) runs to its end, so a batch being
//!   committed is never cut in half from this side. [`RequestTasks::idle`] lets the shutdown
//!   wait for such requests too, not only for those whose client is still there.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::ApiError;

/// Counts the request tasks that are running.
#[derive(Debug, Clone)]
pub struct RequestTasks {
    running: watch::Sender<usize>,
}

impl Default for RequestTasks {
    fn default() -> Self {
        RequestTasks {
            running: watch::Sender::new(0),
        }
    }
}

impl RequestTasks {
    fn start(&self) -> Running {
        self.running.send_modify(|n| *n += 1);
        Running(self.running.clone())
    }

    /// Resolves when no request task is running.
    pub async fn idle(&self) {
        let mut running = self.running.subscribe();
        let _ = running.wait_for(|n| *n == 0).await;
    }
}

/// One running request task; counted down when dropped (also by a panic or an abort).
struct Running(watch::Sender<usize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Aborts the task when dropped, if `abort` is set.
struct Task {
    handle: JoinHandle<Response>,
    abort: bool,
}

impl Drop for Task {
    fn drop(&mut self) {
        if self.abort && !self.handle.is_finished() {
            tracing::debug!("client went away: read request cancelled");
            self.handle.abort();
        }
    }
}

/// The middleware: runs the rest of the stack as a task of its own.
pub async fn run_as_task(
    State(tasks): State<RequestTasks>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let running = tasks.start();
    let mut task = Task {
        handle: tokio::spawn(async move {
            let _running = running;
            next.run(request).await
        }),
        abort: method == Method::GET || method == Method::HEAD,
    };
    match (&mut task.handle).await {
        Ok(response) => response,
        Err(e) => {
            ApiError::Internal(format!("handler of {method} {path} failed: {e}")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// Counts handlers that finished and handlers that were dropped before finishing.
    #[derive(Default)]
    struct Outcomes {
        finished: AtomicUsize,
        dropped: AtomicUsize,
    }

    struct DropCounter(Arc<Outcomes>, bool);

    impl Drop for DropCounter {
        fn drop(&mut self) {
            if !self.1 {
                self.0.dropped.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    async fn slow(outcomes: Arc<Outcomes>) -> &'static str {
        let mut guard = DropCounter(Arc::clone(&outcomes), false);
        tokio::time::sleep(Duration::from_millis(200)).await;
        outcomes.finished.fetch_add(1, Ordering::SeqCst);
        guard.1 = true;
        "done"
    }

    fn app(tasks: &RequestTasks, outcomes: &Arc<Outcomes>) -> Router {
        let (a, b) = (Arc::clone(outcomes), Arc::clone(outcomes));
        Router::new()
            .route(
                "/slow",
                get(move || slow(Arc::clone(&a))).post(move || slow(Arc::clone(&b))),
            )
            .layer(axum::middleware::from_fn_with_state(
                tasks.clone(),
                run_as_task,
            ))
    }

    /// Sends a request and drops it after 20 ms, as hyper does when the client goes away.
    async fn abandon(app: Router, method: Method) {
        let request = Request::builder()
            .method(method)
            .uri("/slow")
            .body(Body::empty())
            .unwrap();
        let sent = tokio::time::timeout(Duration::from_millis(20), app.oneshot(request)).await;
        assert!(sent.is_err(), "the handler should still be running");
    }

    #[tokio::test]
    async fn reads_stop_with_their_client_and_writes_finish() {
        let tasks = RequestTasks::default();
        let outcomes = Arc::new(Outcomes::default());
        abandon(app(&tasks, &outcomes), Method::GET).await;
        tasks.idle().await;
        assert_eq!(outcomes.dropped.load(Ordering::SeqCst), 1);
        assert_eq!(outcomes.finished.load(Ordering::SeqCst), 0);

        abandon(app(&tasks, &outcomes), Method::POST).await;
        tasks.idle().await;
        assert_eq!(outcomes.finished.load(Ordering::SeqCst), 1);
        assert_eq!(outcomes.dropped.load(Ordering::SeqCst), 1);
    }

    async fn boom() -> &'static str {
        panic!("a bug")
    }

    #[tokio::test]
    async fn a_panic_is_a_json_500() {
        let tasks = RequestTasks::default();
        let app =
            Router::new()
                .route("/boom", get(boom))
                .layer(axum::middleware::from_fn_with_state(
                    tasks.clone(),
                    run_as_task,
                ));
        let request = Request::builder().uri("/boom").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 500);
        tasks.idle().await;
    }
}
