//! The HTTP server: routes, shared state, start and graceful shutdown.
//!
//! Invariants:
//! - Every error answer is JSON: unknown routes (404), wrong methods (405), a handler that
//!   panicked (500, [`crate::tasks`]), a body too slow (408) and a request head hyper cannot parse
//!   (400, 414, 431, [`crate::conn`]). Every answer carries `X-Content-Type-Options: nosniff`.
//! - With no API key configured the server listens on loopback only, unless `allow_open` is set
//!   (and then warns): an unauthenticated server is never exposed by accident.
//! - Connections have deadlines and a cap ([`crate::conn`], [`crate::listener`]); large answers
//!   have a memory budget ([`crate::answer_budget`]).
//! - On SIGINT/SIGTERM the listener stops accepting, in-flight requests finish (up to
//!   [`SHUTDOWN_GRACE`], including writes whose client went away), then the store is closed, so
//!   every acknowledged batch is on disk.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::{Method, Uri, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use kestrel_store::{SqliteConfig, SqliteStore, Store};
use tokio::net::TcpListener;

use crate::answer_budget::AnswerBudget;
use crate::api::{self, AppState};
use crate::auth::{self, ApiKeys};
use crate::body_budget::BodyBudget;
use crate::config::{ServeConfig, env};
use crate::conn::ConnLimits;
use crate::error::ApiError;
use crate::tasks::{self, RequestTasks};

/// How long in-flight requests may run after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The hand-written OpenAPI 3.1 document of this API.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// Builds the whole application: routes, JSON fallbacks, the auth layer, and one task per
/// request (counted by `tasks`).
pub fn router(state: AppState, keys: ApiKeys, tasks: RequestTasks) -> Router {
    let v1 = Router::new()
        .route("/ingest", post(api::ingest::ingest))
        .route("/openapi.json", get(openapi))
        .route(
            "/projects",
            get(api::projects::list).post(api::projects::create),
        )
        .route("/projects/{name}", get(api::projects::get))
        .route(
            "/projects/{name}/datapoints",
            get(api::datapoints::list_for_project).post(api::datapoints::add_to_project),
        )
        .route(
            "/projects/{name}/datapoints/{id}",
            get(api::datapoints::get_in_project),
        )
        .route(
            "/projects/{name}/traces",
            get(api::traces::list_for_project),
        )
        .route("/projects/{name}/timeseries", get(api::stats::timeseries))
        .route("/stats", get(api::stats::stats))
        .route("/status", get(api::stats::status))
        .route("/runs", get(api::runs::list).post(api::runs::create))
        .route("/runs/{run_id}", get(api::runs::get))
        .route(
            "/runs/{run_id}/steps",
            get(api::runs::list_steps).post(api::runs::create_step),
        )
        .route("/runs/{run_id}/steps/{step}", get(api::runs::get_step))
        .route(
            "/runs/{run_id}/datapoints",
            get(api::datapoints::list_for_run).post(api::datapoints::add_to_run),
        )
        .route("/runs/{run_id}/traces", get(api::traces::list_for_run))
        .route("/traces", get(api::traces::list))
        .route("/traces/{trace_id}", get(api::traces::get))
        .route("/traces/{trace_id}/items", get(api::traces::items))
        .route("/traces/{trace_id}/grades", post(api::traces::add_grade));
    Router::new()
        .route(auth::OPEN_PATH, get(healthz))
        .nest("/api/v1", v1)
        .fallback(not_found)
        // Must come after the routes: it applies to the method routers registered so far.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            keys,
            auth::require_key,
        ))
        .layer(axum::middleware::from_fn_with_state(
            tasks,
            tasks::run_as_task,
        ))
        // After the auth layer: the web UI's files hold no data and load without a key.
        .merge(crate::ui::router())
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {}; the API lives under /api/v1, see /api/v1/openapi.json",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{method} is not allowed on {}; see /api/v1/openapi.json for the methods of each path",
        uri.path()
    ))
}

/// Refuses to expose an unauthenticated server beyond this machine, and warns when
/// `allow_open` does.
pub fn check_exposure(config: &ServeConfig, keys: &ApiKeys) -> anyhow::Result<()> {
    if keys.is_enabled() || config.addr.ip().is_loopback() {
        return Ok(());
    }
    if config.allow_open {
        tracing::warn!(
            addr = %config.addr,
            "listening beyond this machine without an API key (--allow-open): anyone who can \
             reach it can read and write all traces"
        );
        return Ok(());
    }
    anyhow::bail!(
        "refusing to listen on {} without an API key: anyone who can reach it could read and write \
         all traces. Set {} (or --api-keys-file), listen on 127.0.0.1, or pass --allow-open \
         ({}=1) if this network is trusted",
        config.addr,
        env::API_KEY,
        env::ALLOW_OPEN
    )
}

/// Runs the server until SIGINT or SIGTERM, then shuts it down gracefully.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let keys = ApiKeys::load(config.api_key.as_deref(), config.api_keys_file.as_deref())?;
    check_exposure(&config, &keys)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data dir {}", config.data_dir.display()))?;
    let store_config = SqliteConfig {
        query_timeout: config.query_timeout,
        ..SqliteConfig::new(config.data_dir.clone())
    };
    let store = SqliteStore::open(store_config)
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    let store: Arc<dyn Store> = Arc::new(store);
    let conn = fit_connections(config.conn);
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    let addr = listener.local_addr().unwrap_or(config.addr);
    tracing::info!(
        %addr,
        data_dir = %config.data_dir.display(),
        auth = keys.is_enabled(),
        api_keys = keys.count(),
        "kestrel listening"
    );

    let tasks = RequestTasks::default();
    let state = AppState {
        store: Arc::clone(&store),
        limits: config.limits,
        answers: AnswerBudget::new(config.max_answer_memory),
        bodies: BodyBudget::new(config.max_ingest_memory),
    };
    let app = router(state, keys, tasks.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::spawn(crate::listener::run(listener, app, conn, stop_rx));

    let served = tokio::select! {
        joined = &mut connections => {
            joined.map_err(|e| anyhow::anyhow!("the HTTP server task failed: {e}"))
        }
        signal = shutdown_signal() => {
            tracing::info!(signal, "shutting down: finishing in-flight requests");
            let _ = stop_tx.send(true);
            let finished = async {
                let _ = (&mut connections).await;
                // Writes whose client went away run on after their connection closed.
                tasks.idle().await;
            };
            if tokio::time::timeout(SHUTDOWN_GRACE, finished).await.is_err() {
                tracing::warn!(grace_s = SHUTDOWN_GRACE.as_secs(), "requests still running after the grace period; closing anyway");
                connections.abort();
            }
            Ok(())
        }
    };
    store.close().await.context("closing the store failed")?;
    tracing::info!("kestrel stopped");
    served
}

/// The connection cap that fits under the open-file limit (raised if needed), logged.
fn fit_connections(limits: ConnLimits) -> ConnLimits {
    let fit = crate::fdlimit::fit(&limits);
    if fit.max_connections < limits.max_connections {
        tracing::warn!(
            wanted = limits.max_connections,
            max_connections = fit.max_connections,
            fd_limit = fit.fd_limit,
            "the open-file limit (ulimit -n) allows fewer connections than --max-connections"
        );
    }
    tracing::info!(
        max_connections = fit.max_connections,
        fd_limit = fit.fd_limit,
        fd_limit_raised_from = fit.raised_from,
        header_timeout_s = limits.header_timeout.as_secs_f64(),
        idle_timeout_s = limits.idle_timeout.as_secs_f64(),
        body_timeout_s = limits.body_timeout.as_secs_f64(),
        write_timeout_s = limits.write_timeout.as_secs_f64(),
        "connection limits"
    );
    ConnLimits {
        max_connections: fit.max_connections,
        ..limits
    }
}

/// Resolves on the first SIGINT or SIGTERM, with the signal's name.
async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => "SIGINT",
        () = term => "SIGTERM",
    }
}
