//! `POST /checkout`: a signed claim becomes an order, a pending payment and a checkout page.

use actix_web::{web, HttpResponse};
use domain::checkout::{Answer, Outcome};
use serde_json::Value;

use crate::auth::AuthenticatedMerchant;
use crate::body::read_json;
use crate::error::ApiError;
use crate::validation::checkout_request;
use crate::AppState;

/// The header that marks a stored response sent again.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// Creates a checkout session, or replays the answer stored under the idempotency key.
pub async fn post(
    state: web::Data<AppState>,
    merchant: AuthenticatedMerchant,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(payload).await?;
    let request = checkout_request(body.as_ref(), state.require_https).map_err(ApiError::Validation)?;
    let service = state.checkout.clone();
    let answer = web::block(move || service.create(&merchant.0, request))
        .await?
        .map_err(|e| ApiError::from_checkout(e, body.as_ref().unwrap_or(&Value::Null)))?;
    Ok(respond(answer))
}

fn respond(Answer { outcome, replayed }: Answer) -> HttpResponse {
    let mut response = match outcome {
        Outcome::Created(session) => HttpResponse::Ok().json(session),
        Outcome::ClaimAlreadyRedeemed => actix_web::ResponseError::error_response(&ApiError::ClaimAlreadyRedeemed),
    };
    if replayed {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("idempotent-replayed"),
            actix_web::http::header::HeaderValue::from_static("true"),
        );
    }
    response
}
