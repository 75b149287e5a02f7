//! `GET /orders/{orderId}` and `POST /orders/{orderId}/cancel`: a merchant's view of its orders.
//! Another merchant's order, or one of the other mode, is a 404.

use actix_web::{web, HttpResponse};
use domain::ids::OrderId;
use domain::lifecycle::Refused;
use domain::session::SessionError;

use crate::auth::AuthenticatedMerchant;
use crate::error::ApiError;
use crate::AppState;

fn order_id(text: &str) -> Result<OrderId, ApiError> {
    text.parse().map_err(|_| ApiError::NotFound)
}

/// `GET /orders/{orderId}`
pub async fn get(
    state: web::Data<AppState>,
    merchant: AuthenticatedMerchant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(&id)?;
    let sessions = state.sessions.clone();
    let record = web::block(move || sessions.order(&merchant.0, id)).await??;
    Ok(HttpResponse::Ok().json(record.view()))
}

/// `POST /orders/{orderId}/cancel`: ends an open checkout; cancelling again answers the same.
pub async fn cancel(
    state: web::Data<AppState>,
    merchant: AuthenticatedMerchant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(&id)?;
    let sessions = state.sessions.clone();
    match web::block(move || sessions.cancel_order(&merchant.0, id)).await?? {
        Ok(record) => Ok(HttpResponse::Ok().json(record.view())),
        Err((_, Refused::InProgress)) => Err(ApiError::PaymentInProgress),
        Err((_, refused)) => Err(ApiError::NotCancellable(refused.to_string())),
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::NotFound => ApiError::NotFound,
            SessionError::Store(e) => e.into(),
            SessionError::Conflict => ApiError::Unavailable(error.to_string()),
            SessionError::ModeUnsupported => ApiError::Internal(error.to_string()),
        }
    }
}
