//! Runs and their steps: `GET/POST /api/v1/runs`, `GET /api/v1/runs/{run_id}`,
//! `GET/POST /api/v1/runs/{run_id}/steps` (`?q=` computes the figures over the matching rollouts
//! only), `GET /api/v1/runs/{run_id}/steps/{step}`.
//!
//! The store issues run ids. Registering a step is idempotent; steps that rollouts name but that
//! were never registered are listed too (the store computes them from the traces).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use caribou_model::api::{CreateRun, CreateRunStep, Page, Run, RunStep};
use serde::Deserialize;

use crate::api::traces::parse_q;
use crate::api::{
    ApiJson, ApiPath, ApiQuery, AppState, check_id, check_limit, check_project, parse_step,
};
use crate::error::ApiError;
use kestrel_store::PageRequest;

/// `GET /api/v1/runs?project=&limit=&cursor=`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    pub project: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Json<Page<Run>>, ApiError> {
    check_limit(q.limit)?;
    if let Some(p) = &q.project {
        check_project("project", p)?;
    }
    let page = PageRequest {
        limit: q.limit,
        cursor: q.cursor,
    };
    Ok(Json(
        state.store.list_runs(q.project.as_deref(), page).await?,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(body, _memory): ApiJson<CreateRun>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    check_project("project", &body.project)?;
    if let Some(name) = &body.name {
        check_project("name", name)?;
    }
    let run = state.store.create_run(body).await?;
    tracing::info!(run_id = %run.id, project = %run.project, phase = %run.phase, "run created");
    Ok((StatusCode::CREATED, Json(run)))
}

pub async fn get(
    State(state): State<AppState>,
    ApiPath(run_id): ApiPath<String>,
) -> Result<Json<Run>, ApiError> {
    Ok(Json(require_run(&state, &run_id).await?))
}

/// `GET /api/v1/runs/{run_id}/steps?q=`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepsQuery {
    /// Figures over the rollouts matching this search only.
    pub q: Option<String>,
}

pub async fn list_steps(
    State(state): State<AppState>,
    ApiPath(run_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<StepsQuery>,
) -> Result<Json<Page<RunStep>>, ApiError> {
    let q = parse_q(query.q.as_deref())?;
    require_run(&state, &run_id).await?;
    let data = match &q {
        Some(q) => state.store.list_run_steps_matching(&run_id, q).await?,
        None => state.store.list_run_steps(&run_id).await?,
    };
    Ok(Json(Page {
        data,
        next_cursor: None,
    }))
}

pub async fn create_step(
    State(state): State<AppState>,
    ApiPath(run_id): ApiPath<String>,
    ApiJson(body, _memory): ApiJson<CreateRunStep>,
) -> Result<Json<RunStep>, ApiError> {
    check_id("run_id", &run_id)?;
    if body.step < 0 {
        return Err(ApiError::bad_request(format!(
            "step: must be >= 0, got {}",
            body.step
        )));
    }
    Ok(Json(state.store.create_run_step(&run_id, body.step).await?))
}

pub async fn get_step(
    State(state): State<AppState>,
    ApiPath((run_id, step)): ApiPath<(String, String)>,
) -> Result<Json<RunStep>, ApiError> {
    let step = parse_step(&step)?;
    require_run(&state, &run_id).await?;
    state
        .store
        .get_run_step(&run_id, step)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("run {run_id:?} has no step {step}")))
}

/// The run of that id, or a 404 that names it.
pub async fn require_run(state: &AppState, run_id: &str) -> Result<Run, ApiError> {
    check_id("run_id", run_id)?;
    state
        .store
        .get_run(run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run with id {run_id:?}")))
}
