//! The router as hyper calls it on one connection: marks the connection's phase, puts the body
//! deadline on the request and `X-Content-Type-Options: nosniff` on every answer.
//!
//! A body that has not arrived whole within `body_timeout` of the head fails the handler's read;
//! whatever the handler answers to that failure is replaced by a JSON 408 with
//! `Connection: close` (the rest of the body is never read). A handler cannot be committing a
//! request whose body it has not read whole, so the deadline never cuts a write in progress.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, Response, header};
use axum::response::IntoResponse;
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep, sleep_until};
use tower::ServiceExt;

use super::ConnState;
use crate::error::ApiError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// hyper's service for one connection.
#[derive(Debug, Clone)]
pub struct ConnService {
    router: Router,
    state: Arc<ConnState>,
    body_timeout: Duration,
}

impl ConnService {
    pub fn new(router: Router, state: Arc<ConnState>, body_timeout: Duration) -> Self {
        ConnService {
            router,
            state,
            body_timeout,
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<AnswerBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.state.on_request();
        let timed_out = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + self.body_timeout;
        let request = request.map(|body| {
            Body::new(TimedBody {
                inner: body,
                deadline,
                timer: None,
                timed_out: Arc::clone(&timed_out),
            })
        });
        let router = self.router.clone();
        let state = Arc::clone(&self.state);
        let body_timeout = self.body_timeout;
        Box::pin(async move {
            let mut response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if timed_out.load(Ordering::Relaxed) {
                response = ApiError::RequestTimeout(format!(
                    "the request body did not arrive within {} s of its headers; send it \
                     faster or in smaller batches (the limit is --body-timeout / \
                     KESTREL_BODY_TIMEOUT)",
                    body_timeout.as_secs_f64()
                ))
                .into_response();
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            Ok(response.map(|inner| AnswerBody { inner, state }))
        })
    }
}

/// A request body that fails once its deadline has passed before its end.
struct TimedBody {
    inner: Incoming,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

/// The error a [`TimedBody`] fails with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the body timeout")]
struct BodyTimeout;

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                tracing::debug!("request body not complete within the body timeout");
                this.timed_out.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(BodyTimeout.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body; dropping it (hyper does once it holds the last byte, or gives up) marks
/// the request answered on its connection.
#[derive(Debug)]
pub struct AnswerBody {
    inner: Body,
    state: Arc<ConnState>,
}

impl hyper::body::Body for AnswerBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        self.state.on_answered();
    }
}
