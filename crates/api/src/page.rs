//! The checkout page's HTML: server-rendered, no external resources, one stylesheet and one small
//! script served by this service. Every value from a claim or a merchant is escaped.

use chrono::{DateTime, Utc};
use domain::checkout::format_time;
use domain::lifecycle::Refused;
use domain::merchant::Livemode;
use domain::order::{CancellationReason, Mode, PaymentStatus};
use domain::payment::CardError;
use domain::session::CheckoutRecord;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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

/// Text from a claim or a merchant, escaped, with every disguising character shown as `[U+202E]`,
/// so a name cannot hide or reorder what is around it.
pub fn visible(text: &str) -> String {
    let shown: String =
        text.chars().map(|c| if disguising(c) { format!("[U+{:04X}]", c as u32) } else { c.to_string() }).collect();
    escape(&shown)
}

/// A name in running text: [`visible`], and isolated (`<bdi>`), so that right-to-left text in it
/// cannot reorder the words around it.
pub fn name(text: &str) -> String {
    format!("<bdi>{}</bdi>", visible(text))
}

/// The origin (`scheme://host[:port]`) of an http(s) URL with a valid host, rebuilt from the
/// parsed URL, so that nothing else of the text can reach a header or a `postMessage` target.
pub fn origin(url: &str) -> Option<String> {
    domain::checkout::origin_of(url)
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

/// The path of a checkout page: its mode's [`Mode::page_path`], then the token.
pub fn path(mode: Mode, token: &str) -> String {
    format!("{}/{token}", mode.page_path())
}

fn summary(record: &CheckoutRecord) -> String {
    let currency = &record.currency;
    let rows: String = record
        .items
        .iter()
        .map(|item| {
            format!(
                "<tr><td>{name}<div class=\"qty\">{qty} × {unit}</div></td><td class=\"amount\">{amount}</td></tr>",
                name = name(&item.name),
                qty = item.quantity,
                unit = escape(&currency.format(item.unit_amount)),
                amount = escape(&currency.format(item.amount)),
            )
        })
        .collect();
    let total = escape(&currency.format(record.amount_total));
    let badge = if record.livemode == Livemode::Test { "<span class=\"badge\">Test mode</span>" } else { "" };
    format!(
        "<section class=\"panel\" aria-labelledby=\"summary-title\">\
         <p class=\"merchant\">{merchant} {badge}</p>\
         <p class=\"total-label\" id=\"summary-title\">Order total</p>\
         <p class=\"total\">{total}</p>\
         <table><caption class=\"sr-only\">Items in this order</caption>\
         <thead><tr><th scope=\"col\">Item</th><th scope=\"col\" class=\"amount\">Amount</th></tr></thead>\
         <tbody>{rows}</tbody>\
         <tfoot><tr><td>Total</td><td class=\"amount\">{total}</td></tr></tfoot></table>\
         </section>",
        merchant = name(&record.merchant_name),
    )
}

fn field(id: &str, label: &str, attrs: &str, error: Option<CardError>) -> String {
    let invalid = error.filter(|e| e.field() == id);
    let described =
        invalid.map(|_| format!(" aria-invalid=\"true\" aria-describedby=\"{id}-error\"")).unwrap_or_default();
    let message = invalid
        .map(|e| format!("<p class=\"field-error\" id=\"{id}-error\">{}</p>", escape(&e.to_string())))
        .unwrap_or_default();
    format!("<div><label for=\"{id}\">{label}</label><input id=\"{id}\" name=\"{id}\" {attrs}{described} required>{message}</div>")
}

fn payment_form(record: &CheckoutRecord, render: &Render<'_>) -> String {
    let path = path(record.mode, render.token);
    let card_error = match render.notice {
        Notice::Card(error) => Some(error),
        _ => None,
    };
    let alert = match &render.notice {
        Notice::Declined(message) => format!("<div class=\"alert\" role=\"alert\">{}</div>", escape(message)),
        Notice::Card(error) => format!("<div class=\"alert\" role=\"alert\">{}</div>", escape(&error.to_string())),
        Notice::None => String::new(),
    };
    let remaining = (record.state.expires_at - render.now).num_minutes().max(0);
    let hint = if record.livemode == Livemode::Test {
        "<p class=\"hint\">Test mode: pay with 4242 4242 4242 4242, any future expiry and any 3-digit CVC.</p>"
    } else {
        ""
    };
    format!(
        "<section class=\"panel\" aria-labelledby=\"pay-title\"><h1 id=\"pay-title\">Pay with card</h1>{alert}\
         <form class=\"payment\" method=\"post\" action=\"{path}/pay\" novalidate>\
         <input type=\"hidden\" name=\"form_token\" value=\"{form_token}\">\
         {number}<div class=\"row\">{expiry}{cvc}</div>\
         <button class=\"pay\" type=\"submit\">Pay {total}</button></form>\
         <form class=\"cancel\" method=\"post\" action=\"{path}/cancel\">\
         <input type=\"hidden\" name=\"form_token\" value=\"{form_token}\">\
         <button class=\"link\" type=\"submit\">Cancel and return to {merchant}</button></form>\
         <p class=\"timer\" data-expires-at=\"{expires_at}\">Expires in {remaining} min</p>{hint}</section>",
        form_token = escape(render.form_token),
        number = field(
            "number",
            "Card number",
            "inputmode=\"numeric\" autocomplete=\"cc-number\" placeholder=\"1234 1234 1234 1234\" maxlength=\"23\"",
            card_error
        ),
        expiry = field(
            "expiry",
            "Expiry (MM/YY)",
            "autocomplete=\"cc-exp\" placeholder=\"MM/YY\" maxlength=\"7\"",
            card_error
        ),
        cvc = field(
            "cvc",
            "CVC",
            "inputmode=\"numeric\" autocomplete=\"cc-csc\" placeholder=\"123\" maxlength=\"4\"",
            card_error
        ),
        total = escape(&record.currency.format(record.amount_total)),
        merchant = name(&record.merchant_name),
        expires_at = format_time(record.state.expires_at),
    )
}

/// What an ended checkout says of the money: nothing moved, or a charge that landed late went back.
fn money(record: &CheckoutRecord) -> &'static str {
    if record.state.payment == PaymentStatus::Refunded {
        "Your payment arrived after that and was refunded."
    } else {
        "You were not charged."
    }
}

fn ended(record: &CheckoutRecord, refused: Refused) -> String {
    let (cancelled, expired) = (
        format!("This checkout was cancelled. {}", money(record)),
        format!("This checkout has expired. {}", money(record)),
    );
    let (class, icon, title, text, link) = match refused {
        Refused::Paid => {
            ("ok", "✓", "Payment received", "Thank you, your order is paid.", Some(record.success_redirect()))
        }
        Refused::Cancelled if record.state.cancellation == Some(CancellationReason::TooManyFailedAttempts) => (
            "",
            "✕",
            "Checkout closed",
            "Too many cards were declined, so this checkout was closed. You were not charged. \
             Ask the merchant for a new checkout.",
            Some(record.cancel_redirect()),
        ),
        Refused::Cancelled => ("", "✕", "Checkout cancelled", cancelled.as_str(), Some(record.cancel_redirect())),
        Refused::Expired => ("", "⏱", "Checkout expired", expired.as_str(), None),
        Refused::InProgress => {
            ("", "…", "Payment in progress", "Your payment is being processed. Refresh this page in a moment.", None)
        }
        Refused::Unavailable => (
            "",
            "!",
            "Checkout unavailable",
            "This checkout is unavailable right now. Nothing was charged. Please try again later.",
            None,
        ),
    };
    let link = link
        .map(|url| {
            format!("<p><a href=\"{}\" target=\"_top\">Return to {}</a></p>", escape(&url), name(&record.merchant_name))
        })
        .unwrap_or_default();
    format!(
        "<section class=\"panel status {class}\" role=\"status\" aria-live=\"polite\"><div class=\"icon\" aria-hidden=\"true\">{icon}</div>\
         <h1>{title}</h1><p>{text}</p>{link}</section>"
    )
}

/// The whole page for a checkout in its current state.
pub fn render(record: &CheckoutRecord, render: &Render<'_>) -> String {
    let refused = record.refusal();
    let body = match refused {
        None => payment_form(record, render),
        Some(refused) => ended(record, refused),
    };
    let outcome = match (record.mode, refused) {
        (Mode::Embedded, Some(Refused::Paid)) => Some(("completed", record.success_redirect())),
        (Mode::Embedded, Some(Refused::Cancelled)) => Some(("cancelled", record.cancel_redirect())),
        (Mode::Embedded, Some(Refused::Expired)) => Some(("expired", String::new())),
        _ => None,
    };
    let outcome = outcome
        .and_then(|(kind, redirect)| {
            let parent = origin(&record.success_url)?;
            Some(format!(
                "<div hidden data-outcome=\"{kind}\" data-order-id=\"{}\" data-redirect=\"{}\" data-parent-origin=\"{}\"></div>",
                record.order_id,
                escape(&redirect),
                escape(&parent)
            ))
        })
        .unwrap_or_default();
    let body_class = if record.mode == Mode::Embedded { "embedded" } else { "hosted" };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Checkout · {merchant}</title><link rel=\"stylesheet\" href=\"/assets/checkout.css\">\
         <script src=\"/assets/checkout.js\" defer></script></head>\
         <body class=\"{body_class}\"><main>{summary}{body}</main>{outcome}</body></html>",
        merchant = visible(&record.merchant_name),
        summary = summary(record),
    )
}

/// A page for a token that leads nowhere.
pub fn not_found() -> String {
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
     <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Checkout not found</title>\
     <link rel=\"stylesheet\" href=\"/assets/checkout.css\"></head><body><main>\
     <section class=\"panel status\" role=\"status\"><h1>Checkout not found</h1>\
     <p>This checkout link is not valid. Ask the merchant for a new one.</p></section></main></body></html>"
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_escaped() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn names_cannot_disguise_the_text_around_them() {
        assert_eq!(name("Tee"), "<bdi>Tee</bdi>");
        assert_eq!(name("abc\u{202e}gpj.exe"), "<bdi>abc[U+202E]gpj.exe</bdi>");
        assert_eq!(visible("a\u{200b}b\u{2066}c\u{0}d\u{85}<"), "a[U+200B]b[U+2066]c[U+0000]d[U+0085]&lt;");
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
}
