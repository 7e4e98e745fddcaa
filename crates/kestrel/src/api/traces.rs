//! Traces: `GET /api/v1/traces` (filters in the query, see [`TraceFilter`]),
//! `GET /api/v1/projects/{name}/traces`, `GET /api/v1/runs/{run_id}/traces` (the same filters,
//! scoped by the path), `GET /api/v1/traces/{trace_id}` (detail with turns and items) and
//! `POST /api/v1/traces/{trace_id}/grades` (grading after the fact).
//!
//! A scope given in the path must not be contradicted by the query (`/projects/a/traces?project=b`
//! is a 400), so a client never reads traces of another scope than the one it asked for.
//!
//! `q=` is a search-language query (see `kestrel_query`), parsed here: a mistake is a 400 with
//! code `bad_query` whose message names the bad term and its position. `sort=grade_desc|grade_asc`
//! order by the grade named `grade=` (default `reward`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use caribou_model::api::{
    AddGrade, ItemPage, Page, StoredItem, TraceFilter, TraceSort, TraceSummary,
};
use caribou_model::{Limits, validate};
use kestrel_query::Query;

use crate::api::projects::require_project;
use crate::api::runs::require_run;
use crate::api::{
    ApiJson, ApiPath, ApiQuery, AppState, check_id, check_limit, check_project, json_response,
    text_json,
};
use crate::error::ApiError;

/// Checks the filter and parses its `q`.
fn check_filter(filter: &TraceFilter) -> Result<Option<Query>, ApiError> {
    check_limit(filter.limit)?;
    if let Some(g) = &filter.grade {
        check_project("grade", g)?;
        if !matches!(filter.sort, TraceSort::GradeDesc | TraceSort::GradeAsc) {
            return Err(ApiError::bad_request(
                "invalid query parameter `grade`: it names the grade that sort=grade_desc or \
                 sort=grade_asc orders by; add one of those sorts or leave it out",
            ));
        }
    }
    if let Some(p) = &filter.project {
        check_project("project", p)?;
    }
    if let Some(r) = &filter.run_id {
        check_id("run_id", r)?;
    }
    if let Some(d) = &filter.datapoint_id {
        check_id("datapoint_id", d)?;
    }
    if let Some(step) = filter.step
        && step < 0
    {
        return Err(ApiError::bad_request(format!(
            "invalid query parameter `step`: must be >= 0, got {step}"
        )));
    }
    parse_q(filter.q.as_deref())
}

/// Parses an optional `q` parameter; a mistake is a `bad_query` 400.
pub fn parse_q(q: Option<&str>) -> Result<Option<Query>, ApiError> {
    Ok(q.map(kestrel_query::parse).transpose()?)
}

/// Puts the path's scope into the filter, refusing a query that names another one.
fn scope(slot: &mut Option<String>, param: &str, value: &str) -> Result<(), ApiError> {
    match slot {
        Some(given) if given != value => Err(ApiError::bad_request(format!(
            "query parameter `{param}`={given:?} contradicts the path ({value:?}); leave it out"
        ))),
        _ => {
            *slot = Some(value.to_owned());
            Ok(())
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<TraceFilter>,
) -> Result<Json<Page<TraceSummary>>, ApiError> {
    let q = check_filter(&filter)?;
    Ok(Json(state.store.search_traces(&filter, q.as_ref()).await?))
}

pub async fn list_for_project(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(mut filter): ApiQuery<TraceFilter>,
) -> Result<Json<Page<TraceSummary>>, ApiError> {
    scope(&mut filter.project, "project", &name)?;
    let q = check_filter(&filter)?;
    require_project(&state, &name).await?;
    Ok(Json(state.store.search_traces(&filter, q.as_ref()).await?))
}

pub async fn list_for_run(
    State(state): State<AppState>,
    ApiPath(run_id): ApiPath<String>,
    ApiQuery(mut filter): ApiQuery<TraceFilter>,
) -> Result<Json<Page<TraceSummary>>, ApiError> {
    scope(&mut filter.run_id, "run_id", &run_id)?;
    let q = check_filter(&filter)?;
    require_run(&state, &run_id).await?;
    Ok(Json(state.store.search_traces(&filter, q.as_ref()).await?))
}

/// The whole trace, as the store's JSON (a `TraceDetail`; the SQLite store copies its items'
/// stored JSON instead of parsing and re-encoding it). Built and sent within the answer memory
/// budget ([`crate::answer_budget`]): past it, a 503.
pub async fn get(
    State(state): State<AppState>,
    ApiPath(trace_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_id("trace_id", &trace_id)?;
    let turn = state.answers.turn().await;
    let json = state
        .store
        .get_trace_json(&trace_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no trace with id {trace_id:?}")))?;
    Ok(json_response(state.answers.hold(json, turn).await?))
}

/// The query of `GET /api/v1/traces/{trace_id}/items`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemsQuery {
    /// Position of the first item (0-based); default 0.
    pub offset: Option<u64>,
    /// Items per page, 1..=[`MAX_ITEMS_PAGE`]; default [`DEFAULT_ITEMS_PAGE`].
    pub limit: Option<u64>,
}

/// Default and largest page of `GET /api/v1/traces/{trace_id}/items`.
pub const DEFAULT_ITEMS_PAGE: u64 = 500;
pub const MAX_ITEMS_PAGE: u64 = 5_000;

/// A page of a trace's items, within the answer memory budget like the whole trace.
pub async fn items(
    State(state): State<AppState>,
    ApiPath(trace_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ItemsQuery>,
) -> Result<Response, ApiError> {
    check_id("trace_id", &trace_id)?;
    let limit = query.limit.unwrap_or(DEFAULT_ITEMS_PAGE);
    if !(1..=MAX_ITEMS_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "invalid query parameter `limit`: {limit} is out of range; use 1..={MAX_ITEMS_PAGE} \
             (default {DEFAULT_ITEMS_PAGE})"
        )));
    }
    let turn = state.answers.turn().await;
    let page: ItemPage = state
        .store
        .get_trace_items(&trace_id, query.offset.unwrap_or(0), limit)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no trace with id {trace_id:?}")))?;
    let json = text_json(&page)?;
    drop(page);
    Ok(json_response(state.answers.hold(json, turn).await?))
}

pub async fn add_grade(
    State(state): State<AppState>,
    ApiPath(trace_id): ApiPath<String>,
    ApiJson(grade, _memory): ApiJson<AddGrade>,
) -> Result<(StatusCode, Json<StoredItem>), ApiError> {
    check_id("trace_id", &trace_id)?;
    let limits = &Limits::DEFAULT;
    validate::check_grade(&grade.name, &grade.value, limits)?;
    validate::check_grade_notes(
        "",
        grade.grader.as_deref(),
        grade.comment.as_deref(),
        grade.metadata.as_ref(),
        limits,
    )?;
    let item = state.store.add_grade(&trace_id, grade).await?;
    Ok((StatusCode::CREATED, Json(item)))
}
