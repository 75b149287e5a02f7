//! The pages' HTML, as compile-time templates (`maud`): every value is escaped unless it is
//! wrapped in `PreEscaped`, which nothing here does. Text from a claim or a merchant goes through
//! [`visible`], names also through [`name`]. Pure: no HTTP, no I/O.

use domain::livemode::Livemode;
use domain::order::Order;
use domain::order::Refused;
use domain::order::{CancellationReason, Mode, PaymentStatus};
use domain::payment::CardError;
use domain::time::format_time;
use maud::{html, Markup, DOCTYPE};

use super::{origin, path, visible, Notice, Render};

/// The frame every page shares: `title` in the tab, the stylesheet, `script` if the page has
/// one, and `body` inside `<body class="…">`.
fn layout(title: &str, script: Option<&str>, body_class: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="/assets/checkout.css";
                @if let Some(script) = script {
                    script src=(script) defer {}
                }
            }
            body class=[body_class] { (body) }
        }
    }
}

/// A name in running text: [`visible`], and isolated (`<bdi>`), so that right-to-left text in it
/// cannot reorder the words around it.
fn name(text: &str) -> Markup {
    html! { bdi { (visible(text)) } }
}

fn summary(record: &Order) -> Markup {
    let currency = &record.currency;
    let total = currency.format(record.amount_total);
    html! {
        section.panel aria-labelledby="summary-title" {
            p.merchant {
                (name(&record.merchant_name)) " "
                @if record.livemode == Livemode::Test { span.badge { "Test mode" } }
            }
            p.total-label #summary-title { "Order total" }
            p.total { (total) }
            table {
                caption.sr-only { "Items in this order" }
                thead { tr { th scope="col" { "Item" } th scope="col" class="amount" { "Amount" } } }
                tbody {
                    @for item in &record.items {
                        tr {
                            td {
                                (name(&item.name))
                                div.qty { (item.quantity) " × " (currency.format(item.unit_amount)) }
                            }
                            td.amount { (currency.format(item.amount)) }
                        }
                    }
                }
                tfoot { tr { td { "Total" } td.amount { (total) } } }
            }
        }
    }
}

/// One input of the card form: what differs between the three.
struct Field {
    id: &'static str,
    label: &'static str,
    inputmode: Option<&'static str>,
    autocomplete: &'static str,
    placeholder: &'static str,
    maxlength: u8,
}

const CARD_FIELDS: [Field; 3] = [
    Field {
        id: "number",
        label: "Card number",
        inputmode: Some("numeric"),
        autocomplete: "cc-number",
        placeholder: "1234 1234 1234 1234",
        maxlength: 23,
    },
    Field {
        id: "expiry",
        label: "Expiry (MM/YY)",
        inputmode: None,
        autocomplete: "cc-exp",
        placeholder: "MM/YY",
        maxlength: 7,
    },
    Field {
        id: "cvc",
        label: "CVC",
        inputmode: Some("numeric"),
        autocomplete: "cc-csc",
        placeholder: "123",
        maxlength: 4,
    },
];

/// An input, marked invalid (and described by the message under it) when `error` is about it.
fn field(field: &Field, error: Option<CardError>) -> Markup {
    let invalid = error.filter(|e| e.field() == field.id);
    let error_id = format!("{}-error", field.id);
    html! {
        div {
            label for=(field.id) { (field.label) }
            input id=(field.id) name=(field.id) inputmode=[field.inputmode] autocomplete=(field.autocomplete)
                placeholder=(field.placeholder) maxlength=(field.maxlength)
                aria-invalid=[invalid.map(|_| "true")] aria-describedby=[invalid.map(|_| &error_id)] required;
            @if let Some(error) = invalid {
                p.field-error id=(error_id) { (error) }
            }
        }
    }
}

fn payment_form(record: &Order, render: &Render<'_>) -> Markup {
    let action = path(record.mode, render.token);
    let card_error = match render.notice {
        Notice::Card(error) => Some(error),
        _ => None,
    };
    let remaining = (record.state.expires_at - render.now).num_minutes().max(0);
    let [number, expiry, cvc] = &CARD_FIELDS;
    html! {
        section.panel aria-labelledby="pay-title" {
            h1 #pay-title { "Pay with card" }
            @match &render.notice {
                Notice::Declined(message) => div.alert role="alert" { (message) },
                Notice::Card(error) => div.alert role="alert" { (error) },
                Notice::None => {},
            }
            form.payment method="post" action={ (action) "/pay" } novalidate {
                input type="hidden" name="form_token" value=(render.form_token);
                (field(number, card_error))
                div.row { (field(expiry, card_error)) (field(cvc, card_error)) }
                button.pay type="submit" { "Pay " (record.currency.format(record.amount_total)) }
            }
            form.cancel method="post" action={ (action) "/cancel" } {
                input type="hidden" name="form_token" value=(render.form_token);
                button.link type="submit" { "Cancel and return to " (name(&record.merchant_name)) }
            }
            p.timer data-expires-at=(format_time(record.state.expires_at)) { "Expires in " (remaining) " min" }
            @if record.livemode == Livemode::Test {
                p.hint { "Test mode: pay with 4242 4242 4242 4242, any future expiry and any 3-digit CVC." }
            }
        }
    }
}

/// What an ended checkout says of the money: nothing moved, or a charge that landed late went back.
fn money(record: &Order) -> &'static str {
    if record.state.payment == PaymentStatus::Refunded {
        "Your payment arrived after that and was refunded."
    } else {
        "You were not charged."
    }
}

fn ended(record: &Order, refused: Refused) -> Markup {
    let (cancelled, expired) = (
        format!("This checkout was cancelled. {}", money(record)),
        format!("This checkout has expired. {}", money(record)),
    );
    let (ok, icon, title, text, link) = match refused {
        Refused::Paid => {
            (true, "✓", "Payment received", "Thank you, your order is paid.", Some(record.success_redirect()))
        }
        Refused::Cancelled if record.state.cancellation == Some(CancellationReason::TooManyFailedAttempts) => (
            false,
            "✕",
            "Checkout closed",
            "Too many cards were declined, so this checkout was closed. You were not charged. \
             Ask the merchant for a new checkout.",
            Some(record.cancel_redirect()),
        ),
        Refused::Cancelled => (false, "✕", "Checkout cancelled", cancelled.as_str(), Some(record.cancel_redirect())),
        Refused::Expired => (false, "⏱", "Checkout expired", expired.as_str(), None),
        Refused::InProgress => {
            (false, "…", "Payment in progress", "Your payment is being processed. Refresh this page in a moment.", None)
        }
        Refused::Unavailable => (
            false,
            "!",
            "Checkout unavailable",
            "This checkout is unavailable right now. Nothing was charged. Please try again later.",
            None,
        ),
    };
    html! {
        section.panel.status.ok[ok] role="status" aria-live="polite" {
            div.icon aria-hidden="true" { (icon) }
            h1 { (title) }
            p { (text) }
            @if let Some(url) = link {
                p { a href=(url) target="_top" { "Return to " (name(&record.merchant_name)) } }
            }
        }
    }
}

/// What an embedded page that has ended tells the parent window (`checkout.js` posts it to the
/// merchant's origin): nothing for a hosted page, or one whose merchant has no origin to post to.
fn outcome(record: &Order, refused: Option<Refused>) -> Option<Markup> {
    let (kind, redirect) = match (record.mode, refused) {
        (Mode::Embedded, Some(Refused::Paid)) => ("completed", record.success_redirect()),
        (Mode::Embedded, Some(Refused::Cancelled)) => ("cancelled", record.cancel_redirect()),
        (Mode::Embedded, Some(Refused::Expired)) => ("expired", String::new()),
        _ => return None,
    };
    let parent = origin(&record.success_url)?;
    Some(html! {
        div hidden data-outcome=(kind) data-order-id=(record.order_id) data-redirect=(redirect)
            data-parent-origin=(parent) {}
    })
}

/// The whole page for a checkout in its current state.
pub fn checkout(record: &Order, render: &Render<'_>) -> Markup {
    let refused = record.refusal();
    let body_class = if record.mode == Mode::Embedded { "embedded" } else { "hosted" };
    let title = format!("Checkout · {}", visible(&record.merchant_name));
    let body = html! {
        main {
            (summary(record))
            @match refused {
                None => (payment_form(record, render)),
                Some(refused) => (ended(record, refused)),
            }
        }
        @if let Some(outcome) = outcome(record, refused) { (outcome) }
    };
    layout(&title, Some("/assets/checkout.js"), Some(body_class), body)
}

/// How a page without a checkout speaks: `Alert` for a failure, `Status` for a plain fact.
#[derive(Debug, Clone, Copy)]
pub enum Tone {
    /// `role="alert"`.
    Alert,
    /// `role="status"`.
    Status,
}

/// A page that says, instead of a checkout, why there is none to show.
pub fn problem(title: &str, tone: Tone, heading: &str, text: &str) -> Markup {
    let role = match tone {
        Tone::Alert => "alert",
        Tone::Status => "status",
    };
    let body = html! {
        main { section.panel.status role=(role) { h1 { (heading) } p { (text) } } }
    };
    layout(title, None, None, body)
}

/// `/docs`: an empty page that `docs.js` fills from `/openapi.json`.
pub fn docs() -> Markup {
    layout("Checkout API", Some("/assets/docs.js"), Some("docs"), html! { main #docs {} })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_by_the_templates() {
        let page = problem("<t>", Tone::Alert, "\"h\" & 'x'", "<script>alert(1)</script>").into_string();
        assert!(page.contains("<title>&lt;t&gt;</title>"), "{page}");
        assert!(page.contains("<h1>&quot;h&quot; &amp; 'x'</h1>"), "{page}");
        assert!(page.contains("<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"), "{page}");
        assert!(!page.contains("<script>alert"), "{page}");
    }

    #[test]
    fn names_are_isolated_and_cannot_disguise_the_text_around_them() {
        assert_eq!(name("Tee").into_string(), "<bdi>Tee</bdi>");
        assert_eq!(name("abc\u{202e}gpj.exe<b>").into_string(), "<bdi>abc[U+202E]gpj.exe&lt;b&gt;</bdi>");
    }
}
