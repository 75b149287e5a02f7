//! The HTTP surface of the Checkout API: routes, the bearer-key guard, body validation in
//! Valibot's issue format, and the one mapping of errors to HTTP. Depends on the domain's ports,
//! never on a database.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use domain::checkout::CheckoutService;
use domain::ports::MerchantStore;

mod auth;
mod body;
mod error;
mod routes;
mod validation;

pub use auth::PresentedKey;
pub use body::MAX_BODY_BYTES;
pub use error::ApiError;
pub use routes::openapi::DOCUMENT as OPENAPI_DOCUMENT;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// `POST /checkout`.
    pub checkout: CheckoutService,
    /// Key lookups for requests refused before the use case runs.
    pub merchants: Arc<dyn MerchantStore>,
    /// Production: return URLs must be `https`.
    pub require_https: bool,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("checkout", &self.checkout)
            .field("require_https", &self.require_https)
            .finish_non_exhaustive()
    }
}

/// Registers every route, at the root and under `/api` (the contract's two server URLs).
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state));
        for prefix in ["", "/api"] {
            cfg.service(
                web::resource(format!("{prefix}/checkout"))
                    .route(web::post().to(routes::checkout::post))
                    .default_service(web::to(method_not_allowed)),
            );
            cfg.service(
                web::resource(format!("{prefix}/openapi.yaml"))
                    .route(web::get().to(routes::openapi::get))
                    .default_service(web::to(method_not_allowed)),
            );
        }
        cfg.default_service(web::to(not_found));
    }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}
