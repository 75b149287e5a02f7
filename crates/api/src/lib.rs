//! The HTTP surface of the Checkout API: routes, the bearer-key guard, body validation in
//! Valibot's issue format, and the one mapping of errors to HTTP. Depends on the domain's ports,
//! never on a database.

use std::sync::Arc;

use actix_web::{guard, middleware, web, HttpResponse};
use domain::checkout::{Authenticator, CheckoutService, CheckoutUrls};
use domain::order::Mode;
use domain::orders::Orders;
use domain::page::PageService;
use domain::ports::Diagnostics;

mod auth;
mod body;
mod error;
pub mod json;
pub mod metrics;
pub mod observe;
mod page;
pub mod ratelimit;
mod routes;
pub mod validation;
pub mod views;

pub use auth::{AuthenticatedMerchant, PresentedKey};
pub use body::{parse_contract_json, MAX_BODY_BYTES};
pub use error::ApiError;
pub use routes::openapi::{
    served_json as served_openapi_json, served_yaml as served_openapi_yaml, DOCUMENT as OPENAPI_DOCUMENT,
    DOCUMENT_JSON as OPENAPI_JSON,
};
pub use routes::webhook_endpoints::endpoint_json;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// `POST /checkout`.
    pub checkout: CheckoutService,
    /// The merchant's order endpoints.
    pub orders: Orders,
    /// The checkout page.
    pub pages: PageService,
    /// Page URLs and form tokens.
    pub urls: CheckoutUrls,
    /// Webhook endpoints.
    pub webhooks: domain::webhooks::WebhookService,
    /// The request limits (per merchant, per client address); also given to the key guard and its
    /// middleware on their own.
    pub limits: Arc<ratelimit::Limits>,
    /// What `/metrics` exports.
    pub metrics: metrics::Metrics,
    /// Readiness and pool figures of the database.
    pub diagnostics: Arc<dyn Diagnostics>,
    /// Who a secret key belongs to: for the key guard, and for requests refused before the
    /// checkout use case runs.
    pub authenticator: Authenticator,
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

/// A resource of the merchant API: its `routes`, the per-address limit on failed keys, and a
/// JSON 405 naming the `allowed` methods for any other. Every key-guarded endpoint is one.
fn key_guarded(
    path: String,
    allowed: &'static str,
    routes: impl IntoIterator<Item = actix_web::Route>,
) -> impl actix_web::dev::HttpServiceFactory {
    let resource = routes.into_iter().fold(web::resource(path), |resource, route| resource.route(route));
    resource.wrap(middleware::from_fn(ratelimit::authentication)).default_service(only(allowed))
}

/// Registers every route, at the root and under `/api` (the contract's two server URLs).
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state.metrics.clone()));
        cfg.app_data(web::Data::from(state.limits.clone()));
        cfg.app_data(web::Data::new(state.authenticator.clone()));
        let require_https = state.require_https;
        cfg.app_data(web::Data::new(state));
        for prefix in ["", "/api"] {
            cfg.service(key_guarded(format!("{prefix}/checkout"), "POST", [web::post().to(routes::checkout::post)]));
            cfg.service(key_guarded(
                format!("{prefix}/orders/{{order_id}}"),
                "GET, HEAD",
                [get().to(routes::orders::get)],
            ));
            cfg.service(key_guarded(
                format!("{prefix}/orders/{{order_id}}/cancel"),
                "POST",
                [web::post().to(routes::orders::cancel)],
            ));
            cfg.service(key_guarded(
                format!("{prefix}/webhook-endpoints"),
                "GET, HEAD, POST",
                [web::post().to(routes::webhook_endpoints::create), get().to(routes::webhook_endpoints::list)],
            ));
            cfg.service(key_guarded(
                format!("{prefix}/webhook-endpoints/{{endpoint_id}}"),
                "DELETE",
                [web::delete().to(routes::webhook_endpoints::remove)],
            ));
            cfg.service(key_guarded(
                format!("{prefix}/webhook-endpoints/{{endpoint_id}}/enable"),
                "POST",
                [web::post().to(routes::webhook_endpoints::enable)],
            ));
            cfg.service(key_guarded(
                format!("{prefix}/webhook-endpoints/{{endpoint_id}}/disable"),
                "POST",
                [web::post().to(routes::webhook_endpoints::disable)],
            ));
            cfg.service(
                web::resource(format!("{prefix}/openapi.yaml"))
                    .route(get().to(routes::openapi::yaml))
                    .default_service(only("GET, HEAD")),
            );
            cfg.service(
                web::resource(format!("{prefix}/openapi.json"))
                    .route(get().to(routes::openapi::json))
                    .default_service(only("GET, HEAD")),
            );
        }
        for mode in [Mode::Hosted, Mode::Embedded] {
            cfg.service(
                web::scope(mode.page_path())
                    .wrap(page::security_headers(mode, require_https))
                    .app_data(web::Data::new(routes::checkout_page::PageMode(mode)))
                    .route("/{token}", get().to(routes::checkout_page::view))
                    .route("/{token}/pay", web::post().to(routes::checkout_page::pay))
                    .route("/{token}/cancel", web::post().to(routes::checkout_page::cancel)),
            );
        }
        cfg.route("/healthz", get().to(routes::health::live));
        cfg.route("/metrics", get().to(routes::health::metrics));
        cfg.route("/readyz", get().to(routes::health::ready));
        cfg.route("/assets/checkout.css", get().to(routes::assets::css));
        cfg.route("/assets/checkout.js", get().to(routes::assets::js));
        cfg.route("/assets/docs.js", get().to(routes::assets::docs_js));
        cfg.route("/docs", get().to(routes::openapi::docs));
        // Like the document it reads, the page answers under `/api` too.
        cfg.route("/api/docs", get().to(routes::openapi::docs));
        cfg.default_service(web::to(not_found));
    }
}

/// A route for `GET` that answers `HEAD` too: the same handler, and the server sends the headers
/// without the body.
fn get() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// The answer to any other method on a resource that allows only `allowed`.
fn only(allowed: &'static str) -> actix_web::Route {
    web::to(move || async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed(allowed)) })
}
