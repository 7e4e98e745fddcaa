//! Projects: `GET/POST /api/v1/projects`, `GET /api/v1/projects/{name}`.
//!
//! `POST` is get-or-create: posting a name that exists answers the existing project, so SDKs call
//! it at every start without checking first.

use axum::Json;
use axum::extract::State;
use caribou_model::api::{CreateProject, Page, Project};

use crate::api::{ApiJson, ApiPath, AppState, check_project};
use crate::error::ApiError;

pub async fn list(State(state): State<AppState>) -> Result<Json<Page<Project>>, ApiError> {
    let data = state.store.list_projects().await?;
    Ok(Json(Page {
        data,
        next_cursor: None,
    }))
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(body, _memory): ApiJson<CreateProject>,
) -> Result<Json<Project>, ApiError> {
    check_project("name", &body.name)?;
    Ok(Json(state.store.get_or_create_project(&body.name).await?))
}

pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Project>, ApiError> {
    Ok(Json(require_project(&state, &name).await?))
}

/// The project of that name, or a 404 that names it.
pub async fn require_project(state: &AppState, name: &str) -> Result<Project, ApiError> {
    check_project("project", name)?;
    state
        .store
        .get_project(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no project named {name:?}")))
}
