//! Every failure a handler can return, mapped to HTTP here and nowhere else: `ApiError` as JSON
//! `{error, message}`, `PageError` as a checkout page. Every status a handler answers with is
//! chosen in this file.

use actix_web::error::BlockingError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use domain::checkout::CheckoutError;
use domain::merchant::AuthError;
use domain::order::Refused;
use domain::orders::OrderError;
use domain::ports::StoreError;
use domain::webhooks::EndpointError;
use serde::Serialize;

use crate::json::Json;
use crate::observe::ErrorCause;
use crate::page::{self, Notice, Tone};
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
    #[error("this checkout claim already backs another order that is open or paid (in test or live mode)")]
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

impl From<OrderError> for ApiError {
    fn from(error: OrderError) -> Self {
        match error {
            OrderError::NotFound => ApiError::NotFound,
            OrderError::Store(e) => e.into(),
            OrderError::Conflict => ApiError::Unavailable(error.to_string()),
            OrderError::ModeUnsupported => ApiError::Internal(error.to_string()),
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
            EndpointError::Url(_) | EndpointError::EventType(_) | EndpointError::InternalHost(_) => {
                ApiError::InvalidRequest(error.to_string())
            }
            EndpointError::NotFound => ApiError::NotFound,
            EndpointError::TooMany => ApiError::EndpointLimitReached(error.to_string()),
            EndpointError::Store(e) => e.into(),
        }
    }
}

impl From<BlockingError> for ApiError {
    fn from(error: BlockingError) -> Self {
        ApiError::Internal(format!("blocking task failed: {error}"))
    }
}

/// Why a checkout page answers with something other than the checkout: a page of its own for
/// each, with its status, here. Every answer on the page's routes, these included, also carries
/// the page's headers (`page::security_headers`).
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// 404: no checkout behind the token, or one of the other mode.
    #[error("no such checkout")]
    NotFound,
    /// 403: a form this service did not render for this page, or one another site posted.
    #[error("the form was not rendered for this page")]
    FormRefused,
    /// 429: the client address has spent its page posts; retry after that many seconds.
    #[error("too many page posts; retry after {0} s")]
    TooManyPosts(u64),
    /// 409: the provider may not charge in this checkout's mode.
    #[error("{}", OrderError::ModeUnsupported)]
    ModeUnsupported,
    /// 409: the checkout kept changing under the change.
    #[error("{}", OrderError::Conflict)]
    Conflict,
    /// 503: storage (or the blocking pool) failed; logged with its cause, shown without it.
    #[error("{0}")]
    Unavailable(String),
}

impl From<OrderError> for PageError {
    fn from(error: OrderError) -> Self {
        match error {
            OrderError::NotFound => PageError::NotFound,
            OrderError::ModeUnsupported => PageError::ModeUnsupported,
            OrderError::Conflict => PageError::Conflict,
            OrderError::Store(e) => PageError::Unavailable(error_chain(&e)),
        }
    }
}

impl From<BlockingError> for PageError {
    fn from(error: BlockingError) -> Self {
        PageError::Unavailable(format!("blocking task failed: {error}"))
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::FormRefused => StatusCode::FORBIDDEN,
            PageError::TooManyPosts(_) => StatusCode::TOO_MANY_REQUESTS,
            PageError::ModeUnsupported | PageError::Conflict => StatusCode::CONFLICT,
            PageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let wrong = "Something went wrong";
        let (title, tone, heading, text) = match self {
            PageError::NotFound => (
                "Checkout not found",
                Tone::Status,
                "Checkout not found",
                "This checkout link is not valid. Ask the merchant for a new one.".to_owned(),
            ),
            PageError::FormRefused => (
                "Checkout",
                Tone::Alert,
                "This form was not accepted",
                "Reload the checkout page and try again.".into(),
            ),
            PageError::TooManyPosts(wait) => (
                "Checkout",
                Tone::Alert,
                "Too many attempts",
                format!(
                    "Wait {wait} {}, then reload the checkout page and try again. You were not charged.",
                    if *wait == 1 { "second" } else { "seconds" }
                ),
            ),
            PageError::ModeUnsupported => {
                ("Checkout", Tone::Alert, wrong, "Card payments are not available for this checkout.".into())
            }
            PageError::Conflict => {
                ("Checkout", Tone::Alert, wrong, "This checkout changed meanwhile. Reload the page.".into())
            }
            PageError::Unavailable(_) => {
                ("Checkout", Tone::Alert, wrong, "Checkout is briefly unavailable. Please try again.".into())
            }
        };
        let mut response = page::html(self.status_code(), page::problem(title, tone, heading, &text));
        match self {
            PageError::TooManyPosts(seconds) => {
                response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(*seconds));
            }
            PageError::ModeUnsupported | PageError::Conflict | PageError::Unavailable(_) => {
                if matches!(self, PageError::Conflict | PageError::Unavailable(_)) {
                    // Both pass by themselves: say when to try again, as the API does.
                    response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                }
                // Logged with the request id by `observe`; never shown.
                response.extensions_mut().insert(ErrorCause(format!("checkout page: {self}")));
            }
            PageError::NotFound | PageError::FormRefused => {}
        }
        response
    }
}

impl Notice {
    /// The status of a checkout page shown again with this notice: a decline is 402, a card
    /// field that cannot be right 422.
    pub fn status(&self) -> StatusCode {
        match self {
            Notice::None => StatusCode::OK,
            Notice::Declined(_) => StatusCode::PAYMENT_REQUIRED,
            Notice::Card(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
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

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;

    use super::*;

    fn page_of(error: &PageError) -> (StatusCode, String, Option<String>) {
        let response = error.error_response();
        let status = response.status();
        let cause = response.extensions().get::<ErrorCause>().map(|c| c.0.clone());
        let body = response.into_body().try_into_bytes().unwrap_or_default();
        (status, String::from_utf8_lossy(&body).into_owned(), cause)
    }

    #[test]
    fn a_failing_page_says_what_to_do_and_keeps_its_cause_for_the_log() {
        let (status, body, cause) = page_of(&PageError::Unavailable("pool timed out at db.internal:5432".into()));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("Checkout is briefly unavailable") && body.contains("role=\"alert\""), "{body}");
        assert!(!body.contains("db.internal"), "the cause is never shown: {body}");
        assert_eq!(cause.as_deref(), Some("checkout page: pool timed out at db.internal:5432"));

        let (status, body, cause) = page_of(&PageError::from(OrderError::Conflict));
        assert_eq!((status, cause.is_some()), (StatusCode::CONFLICT, true));
        assert!(body.contains("This checkout changed meanwhile"), "{body}");
        let (status, body, cause) = page_of(&PageError::from(OrderError::NotFound));
        assert_eq!((status, cause), (StatusCode::NOT_FOUND, None));
        assert!(body.contains("<title>Checkout not found</title>") && body.contains("role=\"status\""), "{body}");
    }

    #[test]
    fn too_many_page_posts_say_how_long_to_wait() {
        let response = PageError::TooManyPosts(42).error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("42"));
        let (_, body, _) = page_of(&PageError::TooManyPosts(42));
        assert!(body.contains("Wait 42 seconds"), "{body}");
        let (_, body, _) = page_of(&PageError::TooManyPosts(1));
        assert!(body.contains("Wait 1 second,"), "{body}");
    }

    #[test]
    fn a_page_that_fails_for_a_moment_says_when_to_try_again() {
        for error in [PageError::Unavailable("locked".into()), PageError::from(OrderError::Conflict)] {
            let response = error.error_response();
            assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("1"));
        }
        assert!(PageError::NotFound.error_response().headers().get(header::RETRY_AFTER).is_none());
    }
}
