//! The consumer's checkout page: `GET /c/{token}` (hosted) and `GET /embed/{token}` (embedded),
//! with `POST …/pay` and `POST …/cancel`. Answers are HTML; a paid or cancelled hosted checkout
//! redirects to the merchant (post, redirect, get), an embedded one shows its outcome and tells the
//! parent window.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::order::Mode;
use domain::session::{CheckoutRecord, Paid, SessionError};
use serde::Deserialize;

use crate::observe::ErrorCause;
use crate::page::{self, Notice, Render};
use crate::AppState;

/// Which of the two pages a route serves.
#[derive(Debug, Clone, Copy)]
pub struct PageMode(pub Mode);

/// Headers every checkout page carries. The token is in the URL, so nothing may leak it onward;
/// only the embedded page may be framed, and only by the merchant's own site (the origin of its
/// `successUrl`). Every origin in a header is rebuilt from a parsed URL, never copied from input.
fn secured(mut response: HttpResponse, mode: Mode, state: &AppState, record: Option<&CheckoutRecord>) -> HttpResponse {
    let success_origin = record.and_then(|r| page::origin(&r.success_url));
    let mut form_action = vec!["'self'".to_owned()];
    for origin in success_origin.iter().cloned().chain(record.and_then(|r| page::origin(&r.cancel_url))) {
        if !form_action.contains(&origin) {
            form_action.push(origin);
        }
    }
    let frame_ancestors = match (mode, record) {
        (Mode::Hosted, _) => "'none'".to_owned(),
        (Mode::Embedded, Some(_)) => success_origin.unwrap_or_else(|| "'none'".to_owned()),
        // A page without a checkout (not found, an error) has no form and nothing of an order:
        // it may show inside whichever merchant page framed the link.
        (Mode::Embedded, None) if state.require_https => "https:".to_owned(),
        (Mode::Embedded, None) => "*".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; \
         base-uri 'none'; form-action {}; frame-ancestors {frame_ancestors}",
        form_action.join(" ")
    );
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(header::CONTENT_SECURITY_POLICY, &csp);
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::CACHE_CONTROL, "no-store");
    set(header::HeaderName::from_static("permissions-policy"), "camera=(), microphone=(), geolocation=()");
    if mode == Mode::Hosted {
        set(header::X_FRAME_OPTIONS, "DENY");
    }
    if state.require_https {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    response
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body)
}

fn show(
    state: &AppState,
    mode: Mode,
    token: &str,
    record: &CheckoutRecord,
    status: StatusCode,
    notice: Notice,
) -> HttpResponse {
    let form_token = state.urls.form_token(token);
    let render = Render { token, form_token: &form_token, notice, now: state.sessions.now() };
    secured(html(status, page::render(record, &render)), mode, state, Some(record))
}

fn redirect(state: &AppState, mode: Mode, record: &CheckoutRecord, location: &str) -> HttpResponse {
    let response = HttpResponse::SeeOther().insert_header((header::LOCATION, header_safe(location))).finish();
    secured(response, mode, state, Some(record))
}

/// A URL fit for a header: bytes outside visible ASCII percent-encoded (a URL stored before return
/// URLs were kept in their parsed, ASCII form may hold them).
fn header_safe(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for byte in url.bytes() {
        if (0x21..0x7f).contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn failure(state: &AppState, mode: Mode, error: SessionError) -> HttpResponse {
    let (status, message) = match &error {
        SessionError::NotFound => return secured(html(StatusCode::NOT_FOUND, page::not_found()), mode, state, None),
        SessionError::ModeUnsupported => (StatusCode::CONFLICT, "Card payments are not available for this checkout."),
        SessionError::Conflict => (StatusCode::CONFLICT, "This checkout changed meanwhile. Reload the page."),
        SessionError::Store(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "Checkout is briefly unavailable. Please try again.")
        }
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>Checkout</title><link rel=\"stylesheet\" \
         href=\"/assets/checkout.css\"></head><body><main><section class=\"panel status\" role=\"alert\">\
         <h1>Something went wrong</h1><p>{}</p></section></main></body></html>",
        page::escape(message)
    );
    let mut response = secured(html(status, body), mode, state, None);
    response.extensions_mut().insert(ErrorCause(format!("checkout page: {error}")));
    response
}

/// Runs a page use case off the async executor; `None` when the blocking pool failed.
async fn run<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SessionError> + Send + 'static,
) -> Result<T, SessionError> {
    web::block(work).await.unwrap_or_else(|e| {
        Err(SessionError::Store(domain::ports::StoreError::Unexpected(format!("blocking task failed: {e}").into())))
    })
}

/// `GET /c/{token}` and `GET /embed/{token}`.
pub async fn view(state: web::Data<AppState>, mode: web::Data<PageMode>, token: web::Path<String>) -> HttpResponse {
    let (mode, token) = (mode.0, token.into_inner());
    let sessions = state.sessions.clone();
    let lookup = token.clone();
    match run(move || sessions.view(&lookup)).await {
        Ok(record) if record.mode == mode => show(&state, mode, &token, &record, StatusCode::OK, Notice::None),
        Ok(_) | Err(SessionError::NotFound) => failure(&state, mode, SessionError::NotFound),
        Err(error) => failure(&state, mode, error),
    }
}

/// The fields of the page's forms (the cancel form sends only the form token).
#[derive(Debug, Default, Deserialize)]
pub struct PageForm {
    #[serde(default)]
    form_token: String,
    #[serde(default)]
    number: String,
    #[serde(default)]
    expiry: String,
    #[serde(default)]
    cvc: String,
}

/// Reads a form, or refuses one that this service did not render for this page, or that another
/// site posted.
fn read_form(state: &AppState, req: &HttpRequest, token: &str, body: &[u8]) -> Option<PageForm> {
    let form: PageForm = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let foreign_origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| o != "null" && page::origin(state.urls.public_url()).as_deref() != Some(o));
    (!foreign_origin && state.urls.verify_form_token(token, &form.form_token)).then_some(form)
}

fn forbidden(state: &AppState, mode: Mode) -> HttpResponse {
    let body = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Checkout</title>\
                <link rel=\"stylesheet\" href=\"/assets/checkout.css\"></head><body><main><section \
                class=\"panel status\" role=\"alert\"><h1>This form was not accepted</h1><p>Reload the checkout \
                page and try again.</p></section></main></body></html>";
    secured(html(StatusCode::FORBIDDEN, body.to_owned()), mode, state, None)
}

/// Spends one form post of the client address, or answers 429 with a page that says to wait.
fn over_limit(state: &AppState, mode: Mode, req: &HttpRequest) -> Option<HttpResponse> {
    let wait = crate::ratelimit::retry_after(state.limits.page_post(req).err()?);
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Checkout</title>\
         <link rel=\"stylesheet\" href=\"/assets/checkout.css\"></head><body><main><section \
         class=\"panel status\" role=\"alert\"><h1>Too many attempts</h1><p>Wait {wait} seconds, then reload \
         the checkout page and try again. You were not charged.</p></section></main></body></html>"
    );
    let mut response = secured(html(StatusCode::TOO_MANY_REQUESTS, body), mode, state, None);
    if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    Some(response)
}

/// A page acts only on checkouts of its own mode: a hosted token posted to `/embed/…` (or the
/// reverse) is not found, and nothing is charged or cancelled.
async fn own_mode(state: &AppState, mode: Mode, token: &str) -> Result<(), SessionError> {
    let (sessions, lookup) = (state.sessions.clone(), token.to_owned());
    match run(move || sessions.view(&lookup)).await? {
        record if record.mode == mode => Ok(()),
        _ => Err(SessionError::NotFound),
    }
}

/// `POST /c/{token}/pay` and `POST /embed/{token}/pay`.
pub async fn pay(
    state: web::Data<AppState>,
    mode: web::Data<PageMode>,
    req: HttpRequest,
    token: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (mode, token) = (mode.0, token.into_inner());
    if let Some(refused) = over_limit(&state, mode, &req) {
        return refused;
    }
    let Some(form) = read_form(&state, &req, &token, &body) else {
        return forbidden(&state, mode);
    };
    if let Err(error) = own_mode(&state, mode, &token).await {
        return failure(&state, mode, error);
    }
    let sessions = state.sessions.clone();
    let lookup = token.clone();
    let paid = run(move || sessions.pay(&lookup, &form.number, &form.expiry, &form.cvc)).await;
    match paid {
        Ok(Paid::Succeeded(record)) | Ok(Paid::Refused(record, domain::lifecycle::Refused::Paid)) => {
            let location = match mode {
                Mode::Hosted => record.success_redirect(),
                Mode::Embedded => page::path(mode, &token),
            };
            redirect(&state, mode, &record, &location)
        }
        Ok(Paid::Refused(record, _)) => redirect(&state, mode, &record, &page::path(mode, &token)),
        Ok(Paid::Declined(record, code)) => {
            show(&state, mode, &token, &record, StatusCode::PAYMENT_REQUIRED, Notice::Declined(code.message()))
        }
        Ok(Paid::InvalidCard(record, error)) => {
            show(&state, mode, &token, &record, StatusCode::UNPROCESSABLE_ENTITY, Notice::Card(error))
        }
        Err(error) => failure(&state, mode, error),
    }
}

/// `POST /c/{token}/cancel` and `POST /embed/{token}/cancel`.
pub async fn cancel(
    state: web::Data<AppState>,
    mode: web::Data<PageMode>,
    req: HttpRequest,
    token: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (mode, token) = (mode.0, token.into_inner());
    if let Some(refused) = over_limit(&state, mode, &req) {
        return refused;
    }
    if read_form(&state, &req, &token, &body).is_none() {
        return forbidden(&state, mode);
    }
    if let Err(error) = own_mode(&state, mode, &token).await {
        return failure(&state, mode, error);
    }
    let sessions = state.sessions.clone();
    let lookup = token.clone();
    match run(move || sessions.cancel_by_token(&lookup)).await {
        Ok(Ok(record)) if mode == Mode::Hosted => redirect(&state, mode, &record, &record.cancel_redirect()),
        Ok(Ok(record)) | Ok(Err((record, _))) => redirect(&state, mode, &record, &page::path(mode, &token)),
        Err(error) => failure(&state, mode, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_sent_as_visible_ascii() {
        assert_eq!(header_safe("https://shop.example/ok?x=1"), "https://shop.example/ok?x=1");
        assert_eq!(header_safe("https://shöp.example/ä b"), "https://sh%C3%B6p.example/%C3%A4%20b");
        assert!(HeaderValue::from_str(&header_safe("https://x.example/\u{0}\n")).is_ok());
    }
}
