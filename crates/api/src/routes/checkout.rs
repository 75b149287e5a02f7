//! `POST /checkout`: a signed claim becomes an order, a pending payment and a checkout page.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpResponse, ResponseError};
use domain::checkout::{Answer, CheckoutError, Outcome};

use crate::auth::PresentedKey;
use crate::body::read_contract_json;
use crate::error::ApiError;
use crate::json::Json;
use crate::metrics::Metrics;
use crate::observe::MerchantTag;
use crate::validation::checkout_request;
use crate::views::CheckoutResponse;
use crate::AppState;

/// Creates a checkout session, or replays the answer stored under the idempotency key.
///
/// The key is always judged before the body, so a stranger learns nothing from validation errors.
/// Database work runs in one blocking call: for a valid body, authentication and the replay lookup
/// are a single read.
pub async fn post(
    state: web::Data<AppState>,
    key: PresentedKey,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_contract_json(payload).await;
    let metrics = state.metrics.clone();
    let answer = web::block(move || {
        let parsed = body.and_then(|body| {
            let request = checkout_request(body.as_ref(), state.require_https).map_err(ApiError::Validation)?;
            Ok((request, body.unwrap_or_default()))
        });
        match parsed {
            Ok((request, body)) => state.checkout.create(&key.0, request).map_err(|error| {
                count_refusal(&state.metrics, &error);
                ApiError::from_checkout(error, body)
            }),
            // A refused body still has its key judged first: 401 or 403 before any 400 or 413.
            Err(refusal) => {
                let caller =
                    state.authenticator.authenticate(&key.0).map_err(|e| ApiError::from_checkout(e, Json::Null))?;
                state.limits.admit_merchant(&caller)?;
                Err(refusal)
            }
        }
    })
    .await??;
    match (&answer.outcome, answer.replayed) {
        (_, true) => metrics.replays.inc(),
        (Outcome::Created(_), false) => metrics.checkouts_created.inc(),
        (Outcome::ClaimAlreadyRedeemed, false) => {}
    }
    Ok(respond(answer))
}

fn count_refusal(metrics: &Metrics, error: &CheckoutError) {
    match error {
        CheckoutError::InvalidClaim(claim) => metrics.claim_rejections.with_label_values(&[claim.reason()]).inc(),
        CheckoutError::KeyReused => metrics.idempotency_conflicts.with_label_values(&["key_reused"]).inc(),
        CheckoutError::KeyInProgress => metrics.idempotency_conflicts.with_label_values(&["in_progress"]).inc(),
        CheckoutError::Auth(_) | CheckoutError::Store(_) | CheckoutError::RateLimited(_) => {}
    }
}

fn respond(Answer { outcome, replayed, merchant_id }: Answer) -> HttpResponse {
    let mut response = match outcome {
        Outcome::Created(created) => HttpResponse::Ok().json(CheckoutResponse::from(&created)),
        Outcome::ClaimAlreadyRedeemed => ApiError::ClaimAlreadyRedeemed.error_response(),
    };
    if replayed {
        response.headers_mut().insert(HeaderName::from_static("idempotent-replayed"), HeaderValue::from_static("true"));
    }
    response.extensions_mut().insert(MerchantTag(merchant_id.to_string()));
    response
}
