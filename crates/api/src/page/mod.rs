//! The checkout page as one component: what it shows ([`markup`]: compile-time templates that
//! escape every value), the HTML answers it gives, and the headers every answer on its routes
//! carries. Server-rendered, no external resources, one stylesheet and one small script served by
//! this service. Its failures are `PageError`s, mapped to their pages in `error.rs`; it must not
//! decide anything about the checkout itself (the use cases do).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::DefaultHeaders;
use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use domain::order::Mode;
use domain::order::Order;
use domain::payment::CardError;
use maud::Markup;

mod markup;

pub use markup::{checkout, docs, problem, Tone};

/// Whether a character changes how the text around it reads without showing itself: controls
/// (C0, DEL, C1), bidirectional marks, embeddings, overrides and isolates, line and paragraph
/// separators, and invisible format characters. Zero-width (non-)joiners stay: emoji and several
/// scripts need them.
fn disguising(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}' | '\u{1160}'
        | '\u{17b4}' | '\u{17b5}' | '\u{180b}'..='\u{180f}' | '\u{200b}' | '\u{200e}' | '\u{200f}'
        | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{feff}' | '\u{ffa0}'
        | '\u{fff9}'..='\u{fffb}' | '\u{e0000}'..='\u{e007f}')
}

/// Text from a claim or a merchant with every disguising character shown as `[U+202E]`, so a
/// name cannot hide or reorder what is around it. (The templates escape it, as everything.)
pub fn visible(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if disguising(c) {
            shown.push_str(&format!("[U+{:04X}]", u32::from(c)));
        } else {
            shown.push(c);
        }
    }
    shown
}

/// The origin (`scheme://host[:port]`) of an http(s) URL with a valid host, rebuilt from the
/// parsed URL, so that nothing else of the text can reach a header or a `postMessage` target.
pub fn origin(url: &str) -> Option<String> {
    domain::web_url::origin_of(url)
}

/// The path of a checkout page: its mode's [`Mode::page_path`], then the token.
pub fn path(mode: Mode, token: &str) -> String {
    format!("{}/{token}", mode.page_path())
}

/// What to show above or instead of the form.
#[derive(Debug, Clone)]
pub enum Notice {
    /// Nothing: a fresh page.
    None,
    /// A field of the card form is wrong.
    Card(CardError),
    /// The provider declined; the consumer may try again.
    Declined(&'static str),
}

/// Everything a page render needs beyond the checkout itself.
#[derive(Debug)]
pub struct Render<'a> {
    /// The page token (only inside this page's own form actions).
    pub token: &'a str,
    /// Ties the form to this page.
    pub form_token: &'a str,
    /// What to say.
    pub notice: Notice,
    /// For the time left.
    pub now: DateTime<Utc>,
}

/// A page with its status.
pub fn html(status: StatusCode, page: Markup) -> HttpResponse {
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(page.into_string())
}

/// The page of `record` in its current state, with the status its notice calls for.
pub fn show(record: &Order, render: &Render<'_>) -> HttpResponse {
    of_checkout(html(render.notice.status(), checkout(record, render)), record)
}

/// Post, redirect, get: after a form, the consumer is sent to `location` (the merchant's return
/// URL, or this page again).
pub fn redirect(record: &Order, location: &str) -> HttpResponse {
    of_checkout(HttpResponse::SeeOther().insert_header((header::LOCATION, header_safe(location))).finish(), record)
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

/// The Content-Security-Policy of a page answer. Its forms post only here, and to the merchant's
/// own sites (the origins of `record`'s return URLs, where a post redirects); `frame_ancestors`
/// says who may frame it. Every origin is rebuilt from a parsed URL, never copied from input.
fn content_security_policy(record: Option<&Order>, frame_ancestors: &str) -> String {
    let mut form_action = vec!["'self'".to_owned()];
    for origin in record.into_iter().flat_map(|r| [origin(&r.success_url), origin(&r.cancel_url)]).flatten() {
        if !form_action.contains(&origin) {
            form_action.push(origin);
        }
    }
    format!(
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; \
         base-uri 'none'; form-action {}; frame-ancestors {frame_ancestors}",
        form_action.join(" ")
    )
}

/// A checkout's own answer: only the embedded page may be framed, and only by the merchant's own
/// site (the origin of its `successUrl`). The other headers come from [`security_headers`].
fn of_checkout(mut response: HttpResponse, record: &Order) -> HttpResponse {
    let frame_ancestors = match record.mode {
        Mode::Hosted => None,
        Mode::Embedded => origin(&record.success_url),
    };
    let csp = content_security_policy(Some(record), frame_ancestors.as_deref().unwrap_or("'none'"));
    if let Ok(value) = HeaderValue::from_str(&csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// The headers of every answer on a checkout page's routes, whatever gave it (a page, a redirect,
/// a `PageError`): the token is in the URL, so nothing may leak it onward or keep it; a hosted
/// page is never framed. An answer without a checkout (not found, an error) has no form and
/// nothing of an order, so an embedded one may show inside whichever merchant page framed the
/// link; a checkout's own answer narrows that to its merchant.
pub fn security_headers(mode: Mode, require_https: bool) -> DefaultHeaders {
    let frame_ancestors = match mode {
        Mode::Hosted => "'none'",
        Mode::Embedded if require_https => "https:",
        Mode::Embedded => "*",
    };
    let mut headers = DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, content_security_policy(None, frame_ancestors)))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::CACHE_CONTROL, "no-store"))
        .add(("permissions-policy", "camera=(), microphone=(), geolocation=()"));
    if mode == Mode::Hosted {
        headers = headers.add((header::X_FRAME_OPTIONS, "DENY"));
    }
    if require_https {
        headers = headers.add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disguising_characters_are_shown_not_obeyed() {
        assert_eq!(visible("abc\u{202e}gpj.exe"), "abc[U+202E]gpj.exe");
        assert_eq!(visible("a\u{200b}b\u{2066}c\u{0}d\u{85}<"), "a[U+200B]b[U+2066]c[U+0000]d[U+0085]<");
        assert_eq!(visible("شاي 👨\u{200d}👩 é"), "شاي 👨\u{200d}👩 é");
    }

    #[test]
    fn origins_are_scheme_and_host() {
        assert_eq!(origin("https://Shop.example:8443/ok?x=1").as_deref(), Some("https://shop.example:8443"));
        assert_eq!(origin("https://shop.example:443/").as_deref(), Some("https://shop.example"));
        assert_eq!(origin("nonsense"), None);
        assert_eq!(origin("https://x.example;script-src-elem"), None);
        assert_eq!(origin("https://x.example frame-ancestors *"), None);
    }

    #[test]
    fn locations_are_sent_as_visible_ascii() {
        assert_eq!(header_safe("https://shop.example/ok?x=1"), "https://shop.example/ok?x=1");
        assert_eq!(header_safe("https://shöp.example/ä b"), "https://sh%C3%B6p.example/%C3%A4%20b");
        assert!(HeaderValue::from_str(&header_safe("https://x.example/\u{0}\n")).is_ok());
    }
}
