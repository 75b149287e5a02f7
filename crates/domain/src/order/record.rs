//! The order as one aggregate: the record read from storage, the charge attempts it keeps, and
//! the changes applied to it (each a compare-and-set on the order's version).

use chrono::{DateTime, Utc};

use super::{AttemptOutcome, LineItem, Mode, OrderState, Refused};
use crate::ids::{MerchantId, OrderId, PaymentId};
use crate::livemode::Livemode;
use crate::money::Currency;
use crate::payment::DeclineCode;
use crate::webhook::NewEvent;

/// One charge tried, as stored: never the card number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Unique per attempt; also the provider's idempotency key.
    pub id: String,
    /// Which provider answered.
    pub provider: String,
    /// Where it stands.
    pub outcome: AttemptOutcome,
    /// Why not, when it did not.
    pub decline_code: Option<DeclineCode>,
    /// `visa`, `mastercard`, …
    pub card_brand: String,
    /// The last four digits.
    pub card_last4: String,
    /// When it was started.
    pub created_at: DateTime<Utc>,
}

/// An order with its payment, session and latest charge attempt: the aggregate every change of a
/// checkout applies to, as the page, the merchant API and the sweeper read it.
#[derive(Debug, Clone)]
pub struct Order {
    /// `ord_…`
    pub order_id: OrderId,
    /// `pay_…`
    pub payment_id: PaymentId,
    /// The seller.
    pub merchant_id: MerchantId,
    /// Shown on the page.
    pub merchant_name: String,
    /// Whether the merchant may take payments now (not suspended).
    pub merchant_active: bool,
    /// Test or live.
    pub livemode: Livemode,
    /// The order's currency.
    pub currency: Currency,
    /// Sum of the lines, minor units.
    pub amount_total: i64,
    /// What is sold.
    pub items: Vec<LineItem>,
    /// Hosted or embedded.
    pub mode: Mode,
    /// Where the consumer goes after paying.
    pub success_url: String,
    /// Where the consumer goes after cancelling.
    pub cancel_url: String,
    /// The three statuses and the session's end, as stored.
    pub state: OrderState,
    /// The order's version: every change moves it, and a change applies only to the version it
    /// was computed from.
    pub version: i64,
    /// The most recent charge tried.
    pub last_attempt: Option<Attempt>,
    /// When the order was made.
    pub created_at: DateTime<Utc>,
    /// When any of its records last changed.
    pub updated_at: DateTime<Utc>,
}

/// A merchant URL with `{ORDER_ID}` (also percent-encoded) replaced by the order id.
fn with_order_id(url: &str, order_id: OrderId) -> String {
    let id = order_id.to_string();
    url.replace("{ORDER_ID}", &id).replace("%7BORDER_ID%7D", &id).replace("%7Border_id%7D", &id)
}

impl Order {
    /// Why the checkout cannot be paid now, if it cannot: as [`OrderState::refusal`], and an open
    /// checkout of a suspended merchant is unavailable.
    pub fn refusal(&self) -> Option<Refused> {
        match self.state.refusal() {
            None | Some(Refused::InProgress) if !self.merchant_active => Some(Refused::Unavailable),
            refusal => refusal,
        }
    }

    /// The record after a change to `state` at `at`: the version moved by one.
    pub fn moved_to(self, state: OrderState, at: DateTime<Utc>) -> Self {
        Self { state, version: self.version + 1, updated_at: at, ..self }
    }

    /// Where a paid checkout sends the consumer.
    pub fn success_redirect(&self) -> String {
        with_order_id(&self.success_url, self.order_id)
    }

    /// Where a cancelled checkout sends the consumer.
    pub fn cancel_redirect(&self) -> String {
        with_order_id(&self.cancel_url, self.order_id)
    }
}

/// What a change does to the charge attempts.
#[derive(Debug, Clone, Copy)]
pub enum AttemptChange<'a> {
    /// A charge starts: recorded (as `processing`) before the provider is asked.
    Begin(&'a Attempt),
    /// The attempt `id` now stands at `outcome`.
    End {
        /// Which attempt.
        id: &'a str,
        /// Where it stands now.
        outcome: AttemptOutcome,
        /// Why it failed, when it did.
        decline_code: Option<DeclineCode>,
    },
}

/// One change of a checkout, applied as a compare-and-set on the order's version, with what it
/// leaves behind.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    /// The order's version that the change was computed from.
    pub version: i64,
    /// Where the records stood at that version.
    pub from: OrderState,
    /// Where they move.
    pub to: OrderState,
    /// What happens to the charge attempts.
    pub attempt: Option<AttemptChange<'a>>,
    /// The webhook events the change causes (written only if the change applies).
    pub events: &'a [NewEvent],
    /// When.
    pub at: DateTime<Utc>,
}
