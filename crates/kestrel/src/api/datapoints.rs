//! Datapoints of a project or of a run: `GET/POST /api/v1/projects/{name}/datapoints`,
//! `GET /api/v1/projects/{name}/datapoints/{id}`, `GET/POST /api/v1/runs/{run_id}/datapoints`.
//!
//! Datapoint ids are unique within a project; posting one again replaces its content. Posting to
//! a run adds the datapoints to the run's project and links them to the run.

use axum::Json;
use axum::extract::State;
use caribou_model::Limits;
use caribou_model::api::{AddDatapoints, AddDatapointsResponse, Datapoint, NewDatapoint, Page};
use caribou_model::validate::check_datapoint;

use crate::api::projects::require_project;
use crate::api::runs::require_run;
use crate::api::{ApiJson, ApiPath, ApiQuery, AppState, PageQuery, check_id, check_project};
use crate::error::ApiError;

fn check_datapoints(datapoints: &[NewDatapoint]) -> Result<(), ApiError> {
    for (i, dp) in datapoints.iter().enumerate() {
        check_datapoint(&format!("datapoints[{i}]"), dp, &Limits::DEFAULT)?;
    }
    Ok(())
}

pub async fn list_for_project(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<Datapoint>>, ApiError> {
    let page = q.into_request()?;
    require_project(&state, &name).await?;
    Ok(Json(state.store.list_datapoints(&name, None, page).await?))
}

pub async fn add_to_project(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body, _memory): ApiJson<AddDatapoints>,
) -> Result<Json<AddDatapointsResponse>, ApiError> {
    check_project("project", &name)?;
    check_datapoints(&body.datapoints)?;
    let written = state
        .store
        .add_datapoints(&name, None, body.datapoints)
        .await?;
    Ok(Json(AddDatapointsResponse { written }))
}

pub async fn get_in_project(
    State(state): State<AppState>,
    ApiPath((name, id)): ApiPath<(String, String)>,
) -> Result<Json<Datapoint>, ApiError> {
    check_project("project", &name)?;
    check_id("id", &id)?;
    state
        .store
        .get_datapoint(&name, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("project {name:?} has no datapoint {id:?}")))
}

pub async fn list_for_run(
    State(state): State<AppState>,
    ApiPath(run_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<Datapoint>>, ApiError> {
    let page = q.into_request()?;
    let run = require_run(&state, &run_id).await?;
    Ok(Json(
        state
            .store
            .list_datapoints(&run.project, Some(&run.id), page)
            .await?,
    ))
}

pub async fn add_to_run(
    State(state): State<AppState>,
    ApiPath(run_id): ApiPath<String>,
    ApiJson(body, _memory): ApiJson<AddDatapoints>,
) -> Result<Json<AddDatapointsResponse>, ApiError> {
    check_datapoints(&body.datapoints)?;
    let run = require_run(&state, &run_id).await?;
    let written = state
        .store
        .add_datapoints(&run.project, Some(&run.id), body.datapoints)
        .await?;
    Ok(Json(AddDatapointsResponse { written }))
}
