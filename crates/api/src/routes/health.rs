//! `GET /healthz` (the process answers), `GET /readyz` (the database answers and its schema is
//! current) for load balancers and orchestrators, and `GET /metrics` for Prometheus. No
//! authentication and nothing secret: expose them to the operator's network only.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::AppState;

/// `GET /healthz`
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 503 `unavailable` while the database is down or migrations are pending.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let diagnostics = state.diagnostics.clone();
    web::block(move || diagnostics.ready()).await??;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}

/// `GET /metrics`: the Prometheus text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let diagnostics = state.diagnostics.clone();
    let pools = web::block(move || diagnostics.pools()).await.unwrap_or_default();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render(&pools))
}
