//! `ApiError`: every failure a handler can return, mapped to HTTP in exactly one place.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use domain::checkout::CheckoutError;
use domain::dispatch::EndpointError;
use domain::lifecycle::Refused;
use domain::merchant::AuthError;
use domain::ports::StoreError;
use domain::session::SessionError;
use serde::Serialize;

use crate::json::Json;
use crate::observe::ErrorCause;
use crate::validation::Issue;

/// An error answered as JSON `{error, message}` (plus `issues` for validation errors).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body does not satisfy the contract.
    #[error("the request body is invalid")]
    Validation(Vec<Issue>),
    /// 400 `invalid_request`: a body that is not what the endpoint takes (outside the checkout
    /// contract, whose 400s are Valibot issues).
    #[error("{0}")]
    InvalidRequest(String),
    /// 401 or 403.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 409: the claim backs another open order.
    #[error("this checkout claim already backs an open order")]
    ClaimAlreadyRedeemed,
    /// 409: a request with this key is still running.
    #[error("a request with this idempotency key is still in progress; retry shortly")]
    IdempotencyInProgress,
    /// 422: the key was used for another request.
    #[error("this idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    /// 429: a request limit (the merchant's, or the client address's) is spent; retry after that
    /// many seconds.
    #[error("too many requests; retry after {0} s")]
    RateLimited(u64),
    /// 413.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 404.
    #[error("no such resource")]
    NotFound,
    /// 409: the order has ended otherwise (paid, expired).
    #[error("the order cannot be cancelled: {0}")]
    NotCancellable(String),
    /// 409: a charge for the order is with the provider; its answer decides the order.
    #[error("a payment for this order is in progress; its outcome decides the order, retry shortly")]
    PaymentInProgress,
    /// 409: the merchant has as many webhook endpoints as it may have in this mode.
    #[error("{0}")]
    EndpointLimitReached(String),
    /// 405; carries the methods the resource allows.
    #[error("method not allowed; this resource allows {0}")]
    MethodNotAllowed(&'static str),
    /// 503: the database is down or overloaded.
    #[error("the service is temporarily unavailable; retry shortly")]
    Unavailable(String),
    /// 500: logged with its cause, answered with nothing of it.
    #[error("an internal error occurred")]
    Internal(String),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation_error",
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::Auth(e) => e.code(),
            ApiError::ClaimAlreadyRedeemed => "claim_already_redeemed",
            ApiError::IdempotencyInProgress => "idempotency_request_in_progress",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::NotFound => "not_found",
            ApiError::NotCancellable(_) => "order_not_cancellable",
            ApiError::PaymentInProgress => "order_payment_in_progress",
            ApiError::EndpointLimitReached(_) => "webhook_endpoint_limit_reached",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// The JSON body. Issues are written as JavaScript would write them (they may echo a lone
    /// surrogate of the request), so the body is serialised directly, never through a `Value`.
    pub fn body(&self) -> ErrorBody<'_> {
        let issues = match self {
            ApiError::Validation(issues) => Some(issues.as_slice()),
            _ => None,
        };
        ErrorBody { error: self.code(), message: self.to_string(), issues }
    }
}

/// What an error answers: `{error, message}`, and `issues` for a validation error.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    error: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    issues: Option<&'a [Issue]>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Auth(AuthError::Unauthenticated(_)) => StatusCode::UNAUTHORIZED,
            ApiError::Auth(AuthError::Forbidden(_)) => StatusCode::FORBIDDEN,
            ApiError::ClaimAlreadyRedeemed
            | ApiError::IdempotencyInProgress
            | ApiError::NotCancellable(_)
            | ApiError::PaymentInProgress
            | ApiError::EndpointLimitReached(_) => StatusCode::CONFLICT,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Auth(AuthError::Unauthenticated(_)) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::IdempotencyInProgress | ApiError::Unavailable(_) | ApiError::PaymentInProgress => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            ApiError::MethodNotAllowed(allowed) => {
                response.insert_header((header::ALLOW, *allowed));
            }
            ApiError::RateLimited(seconds) => {
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            _ => {}
        }
        let mut response = response.json(self.body());
        if let ApiError::Internal(cause) | ApiError::Unavailable(cause) = self {
            // Logged with the request id by `observe`; never sent.
            response.extensions_mut().insert(ErrorCause(cause.clone()));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(why) => ApiError::Unavailable(why),
            StoreError::Unexpected(cause) => ApiError::Internal(error_chain(cause.as_ref())),
        }
    }
}

impl ApiError {
    /// Maps a checkout failure; a refused claim becomes an issue at `checkoutClaim` of `body`.
    pub fn from_checkout(error: CheckoutError, body: impl Into<Json>) -> Self {
        match error {
            CheckoutError::Auth(auth) => ApiError::Auth(auth),
            CheckoutError::InvalidClaim(claim) => {
                ApiError::Validation(vec![Issue::invalid_claim(&body.into(), &claim)])
            }
            CheckoutError::KeyReused => ApiError::IdempotencyKeyReused,
            CheckoutError::KeyInProgress => ApiError::IdempotencyInProgress,
            CheckoutError::Store(e) => e.into(),
            CheckoutError::RateLimited(wait) => ApiError::RateLimited(crate::ratelimit::retry_after(wait)),
        }
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

/// Why an order could not be cancelled: a charge still in flight (retry shortly), or it has ended.
impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::InProgress => ApiError::PaymentInProgress,
            refused => ApiError::NotCancellable(refused.to_string()),
        }
    }
}

impl From<EndpointError> for ApiError {
    fn from(error: EndpointError) -> Self {
        match error {
            EndpointError::Url(_) | EndpointError::EventType(_) => ApiError::InvalidRequest(error.to_string()),
            EndpointError::NotFound => ApiError::NotFound,
            EndpointError::TooMany => ApiError::EndpointLimitReached(error.to_string()),
            EndpointError::Store(e) => e.into(),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(format!("blocking task failed: {error}"))
    }
}

/// `error: cause: cause…`, for logs.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
