//! The consumer's checkout page: `GET /c/{token}` (hosted) and `GET /embed/{token}` (embedded),
//! with `POST …/pay` and `POST …/cancel`. Answers are HTML; a paid or cancelled hosted checkout
//! redirects to the merchant (post, redirect, get), an embedded one shows its outcome and tells the
//! parent window.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::order::Mode;
use domain::order::Order;
use domain::order::Refused;
use domain::page::Paid;
use serde::Deserialize;

use crate::error::PageError;
use crate::page::{self, Notice, Render};
use crate::ratelimit::retry_after;
use crate::AppState;

/// Which of the two pages a route serves.
#[derive(Debug, Clone, Copy)]
pub struct PageMode(pub Mode);

/// The page of `record`, with `notice` above its form.
fn show(state: &AppState, token: &str, record: &Order, notice: Notice) -> HttpResponse {
    let form_token = state.urls.form_token(token);
    page::show(record, &Render { token, form_token: &form_token, notice, now: state.pages.now() })
}

/// The checkout behind `token`, if it is of this page's mode: a hosted token used under `/embed/…`
/// (or the reverse) is not found, and nothing is charged or cancelled through it.
async fn checkout_of(state: &AppState, mode: Mode, token: &str) -> Result<Order, PageError> {
    let (pages, lookup) = (state.pages.clone(), token.to_owned());
    match web::block(move || pages.view(&lookup)).await?? {
        record if record.mode == mode => Ok(record),
        _ => Err(PageError::NotFound),
    }
}

/// `GET /c/{token}` and `GET /embed/{token}`.
pub async fn view(
    state: web::Data<AppState>,
    mode: web::Data<PageMode>,
    token: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let record = checkout_of(&state, mode.0, &token).await?;
    Ok(show(&state, &token, &record, Notice::None))
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

/// Spends one form post of the client address, then reads the form; refuses one that this service
/// did not render for this page, or that another site posted.
fn read_form(state: &AppState, req: &HttpRequest, token: &str, body: &[u8]) -> Result<PageForm, PageError> {
    state.limits.page_post(req).map_err(|wait| PageError::TooManyPosts(retry_after(wait)))?;
    let form: PageForm = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let foreign_origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| o != "null" && page::origin(state.urls.public_url()).as_deref() != Some(o));
    if foreign_origin || !state.urls.verify_form_token(token, &form.form_token) {
        return Err(PageError::FormRefused);
    }
    Ok(form)
}

/// A page post this service takes: its form rendered for this page and posted from it, for a
/// checkout of this page's mode.
async fn accepted(
    state: &AppState,
    mode: Mode,
    req: &HttpRequest,
    token: String,
    body: &[u8],
) -> Result<(Mode, String, PageForm), PageError> {
    let form = read_form(state, req, &token, body)?;
    checkout_of(state, mode, &token).await?;
    Ok((mode, token, form))
}

/// `POST /c/{token}/pay` and `POST /embed/{token}/pay`.
pub async fn pay(
    state: web::Data<AppState>,
    mode: web::Data<PageMode>,
    req: HttpRequest,
    token: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let (mode, token, form) = accepted(&state, mode.0, &req, token.into_inner(), &body).await?;
    let (pages, lookup) = (state.pages.clone(), token.clone());
    let paid = web::block(move || pages.pay(&lookup, &form.number, &form.expiry, &form.cvc)).await??;
    Ok(match paid {
        Paid::Succeeded(record) | Paid::Refused(record, Refused::Paid) if mode == Mode::Hosted => {
            page::redirect(&record, &record.success_redirect())
        }
        Paid::Succeeded(record) | Paid::Refused(record, _) => page::redirect(&record, &page::path(mode, &token)),
        Paid::Declined(record, code) => show(&state, &token, &record, Notice::Declined(code.message())),
        Paid::InvalidCard(record, error) => show(&state, &token, &record, Notice::Card(error)),
    })
}

/// `POST /c/{token}/cancel` and `POST /embed/{token}/cancel`.
pub async fn cancel(
    state: web::Data<AppState>,
    mode: web::Data<PageMode>,
    req: HttpRequest,
    token: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let (mode, token, _) = accepted(&state, mode.0, &req, token.into_inner(), &body).await?;
    let (pages, lookup) = (state.pages.clone(), token.clone());
    Ok(match web::block(move || pages.cancel_by_token(&lookup)).await?? {
        Ok(record) if mode == Mode::Hosted => page::redirect(&record, &record.cancel_redirect()),
        Ok(record) | Err((record, _)) => page::redirect(&record, &page::path(mode, &token)),
    })
}
