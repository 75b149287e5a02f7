//! `GET /openapi.yaml`: the wire contract this server implements (the seed plus its additions).

use actix_web::HttpResponse;

/// The document, compiled in so the server always serves the contract it was built against.
pub const DOCUMENT: &str = include_str!("../../../../docs/openapi.yaml");

/// Serves the OpenAPI document.
pub async fn get() -> HttpResponse {
    HttpResponse::Ok().content_type("application/yaml; charset=utf-8").body(DOCUMENT)
}
