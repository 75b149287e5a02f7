//! The wire contract this server implements (the seed plus its additions): `GET /openapi.yaml` as
//! written, `GET /openapi.json` (made from it at build time), and `GET /docs`, a readable page.

use actix_web::http::header;
use actix_web::HttpResponse;

/// The document as written.
pub const DOCUMENT: &str = include_str!("../../../../docs/openapi.yaml");
/// The same document as JSON.
pub const DOCUMENT_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// `GET /openapi.yaml`
pub async fn yaml() -> HttpResponse {
    HttpResponse::Ok().content_type("application/yaml; charset=utf-8").body(DOCUMENT)
}

/// `GET /openapi.json`
pub async fn json() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(DOCUMENT_JSON)
}

/// `GET /docs`: renders `/openapi.json` in the browser with a script served here.
pub async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ))
        .body(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Checkout API</title>\
             <link rel=\"stylesheet\" href=\"/assets/checkout.css\"><script src=\"/assets/docs.js\" defer></script>\
             </head><body class=\"docs\"><main id=\"docs\"></main></body></html>",
        )
}
