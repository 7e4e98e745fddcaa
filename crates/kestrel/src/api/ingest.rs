//! `POST /api/v1/ingest`: a [`Batch`] of records from an SDK's exporter.
//!
//! Invariants:
//! - A batch is validated whole ([`check_batch`]) before anything is written: one bad record
//!   refuses the batch with a 400 naming the record's index and field, and nothing is stored.
//! - The answer is sent only after [`kestrel_store::Store::ingest`] returned, i.e. after the batch
//!   is committed; a client that got a 200 can forget the batch.
//! - Ingest is idempotent: a retried batch answers with its records counted as `duplicates`.

use axum::Json;
use axum::extract::State;
use caribou_model::api::IngestResponse;
use caribou_model::validate::check_batch;
use caribou_model::{Batch, Limits};

use crate::api::{ApiJson, AppState};
use crate::error::ApiError;

pub async fn ingest(
    State(state): State<AppState>,
    ApiJson(batch, _memory): ApiJson<Batch>,
) -> Result<Json<IngestResponse>, ApiError> {
    check_batch(&batch, &Limits::DEFAULT)?;
    let records = batch.records.len();
    let response = state.store.ingest(batch).await?;
    tracing::debug!(
        records,
        accepted = response.accepted,
        duplicates = response.duplicates,
        "batch ingested"
    );
    Ok(Json(response))
}
