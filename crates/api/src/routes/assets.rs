//! The checkout page's stylesheet and script, compiled in: no CDN, nothing fetched elsewhere.

use actix_web::http::header;
use actix_web::HttpResponse;

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

/// `GET /assets/checkout.css`
pub async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", include_str!("../../assets/checkout.css"))
}

/// `GET /assets/checkout.js`
pub async fn js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", include_str!("../../assets/checkout.js"))
}

/// `GET /assets/docs.js`
pub async fn docs_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", include_str!("../../assets/docs.js"))
}
