//! The wire shapes of the API's answers and of webhook events, built from the domain's types:
//! the order as `GET /orders/{id}` shows it (and as every event carries it), the answer to
//! `POST /checkout`, and the event envelope.

use chrono::{DateTime, Utc};
use domain::checkout::CreatedCheckout;
use domain::claim::LineItem;
use domain::ids::EventId;
use domain::order::{CancellationReason, Order};
use domain::payment::DeclineCode;
use domain::ports::Envelopes;
use domain::time::format_time;
use domain::webhook::EventType;
use serde::Serialize;

/// An order as `GET /orders/{id}` shows it, and as webhook events carry it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView<'a> {
    /// `ord_…`
    pub id: String,
    /// `pending`, `paid`, `cancelled` or `expired`.
    pub status: &'static str,
    /// Why a cancelled order was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<&'static str>,
    /// Test or live.
    pub livemode: bool,
    /// ISO 4217, lower-case.
    pub currency: &'a str,
    /// Minor units.
    pub amount_total: i64,
    /// What is sold.
    pub items: &'a [LineItem],
    /// The payment.
    pub payment: PaymentView<'a>,
    /// The checkout page.
    pub session: SessionView,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// The payment part of an [`OrderView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView<'a> {
    /// `pay_…`
    pub id: String,
    /// `pending`, `processing`, `succeeded`, `failed` or `refunded`.
    pub status: &'static str,
    /// Minor units.
    pub amount: i64,
    /// Cards declined so far.
    pub failed_attempts: i32,
    /// ISO 4217, lower-case.
    pub currency: &'a str,
    /// The most recent charge tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<AttemptView<'a>>,
}

/// A charge tried, in an [`OrderView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView<'a> {
    /// `processing`, `succeeded`, `failed`, `refund_pending` or `refunded`.
    pub outcome: &'static str,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<&'static str>,
    /// Brand and last four digits.
    pub card: CardView<'a>,
    /// RFC 3339.
    pub created_at: String,
}

/// What is kept of a card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CardView<'a> {
    /// `visa`, …
    pub brand: &'a str,
    /// The last four digits.
    pub last4: &'a str,
}

/// The session part of an [`OrderView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// `open`, `complete`, `expired` or `cancelled`.
    pub status: &'static str,
    /// `hosted` or `embedded`.
    pub mode: &'static str,
    /// RFC 3339.
    pub expires_at: String,
}

impl<'a> From<&'a Order> for OrderView<'a> {
    fn from(order: &'a Order) -> Self {
        Self {
            id: order.order_id.to_string(),
            status: order.state.order.as_str(),
            cancellation_reason: order.state.cancellation.map(CancellationReason::as_str),
            livemode: order.livemode.is_live(),
            currency: order.currency.as_str(),
            amount_total: order.amount_total,
            items: &order.items,
            payment: PaymentView {
                id: order.payment_id.to_string(),
                status: order.state.payment.as_str(),
                amount: order.amount_total,
                failed_attempts: order.state.failed_attempts,
                currency: order.currency.as_str(),
                last_attempt: order.last_attempt.as_ref().map(|a| AttemptView {
                    outcome: a.outcome.as_str(),
                    decline_code: a.decline_code.map(DeclineCode::as_str),
                    card: CardView { brand: &a.card_brand, last4: &a.card_last4 },
                    created_at: format_time(a.created_at),
                }),
            },
            session: SessionView {
                status: order.state.session.as_str(),
                mode: order.mode.as_str(),
                expires_at: format_time(order.state.expires_at),
            },
            created_at: format_time(order.created_at),
            updated_at: format_time(order.updated_at),
        }
    }
}

/// The body of a successful `POST /checkout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutResponse<'a> {
    /// `ord_…`
    pub order_id: &'a str,
    /// `pay_…`
    pub payment_id: &'a str,
    /// The page where the consumer pays.
    pub checkout_url: &'a str,
    /// RFC 3339 UTC with milliseconds.
    pub expires_at: &'a str,
}

impl<'a> From<&'a CreatedCheckout> for CheckoutResponse<'a> {
    fn from(created: &'a CreatedCheckout) -> Self {
        Self {
            order_id: &created.order_id,
            payment_id: &created.payment_id,
            checkout_url: &created.checkout_url,
            expires_at: &created.expires_at,
        }
    }
}

/// The envelope merchants receive.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    id: String,
    #[serde(rename = "type")]
    event_type: &'static str,
    timestamp: String,
    merchant_id: String,
    livemode: bool,
    data: OrderView<'a>,
}

/// Writes webhook envelopes: the event, with the order exactly as `GET /orders/{id}` shows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct WireEnvelopes;

impl Envelopes for WireEnvelopes {
    fn envelope(&self, id: EventId, event_type: EventType, order: &Order, at: DateTime<Utc>) -> String {
        let envelope = Envelope {
            id: id.to_string(),
            event_type: event_type.as_str(),
            timestamp: format_time(at),
            merchant_id: order.merchant_id.to_string(),
            livemode: order.livemode.is_live(),
            data: OrderView::from(order),
        };
        // Plain structs of strings and numbers always serialise.
        serde_json::to_string(&envelope).unwrap_or_default()
    }
}
