//! The checkout page's use cases (view, pay, cancel), the merchant's order use cases (read,
//! cancel) and the sweeper's (expire), over one state machine: see [`crate::lifecycle`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::checkout::format_time;
use crate::webhook::{EventType, NewEvent};

use crate::ids::{MerchantId, OrderId, PaymentId};
use crate::lifecycle::{ChargeEnd, Checkout, Refused};
use crate::merchant::{Caller, Livemode};
use crate::money::Currency;
use crate::order::{LineItem, Mode};
use crate::payment::{Card, CardError, Charge, ChargeResult, DeclineCode, PaymentProvider, ProviderError};
use crate::ports::{Clock, StoreError};
use crate::secret::SecretHash;

/// One charge tried, as stored: never the card number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Unique per attempt; also the provider's idempotency key.
    pub id: String,
    /// Which provider answered.
    pub provider: String,
    /// Whether the money moved.
    pub succeeded: bool,
    /// Why not, when it did not.
    pub decline_code: Option<DeclineCode>,
    /// `visa`, `mastercard`, …
    pub card_brand: String,
    /// The last four digits.
    pub card_last4: String,
    /// When it was answered.
    pub created_at: DateTime<Utc>,
}

/// A checkout as its page and the merchant API show it.
#[derive(Debug, Clone)]
pub struct CheckoutRecord {
    /// `ord_…`
    pub order_id: OrderId,
    /// `pay_…`
    pub payment_id: PaymentId,
    /// The seller.
    pub merchant_id: MerchantId,
    /// Shown on the page.
    pub merchant_name: String,
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
    pub state: Checkout,
    /// The most recent charge tried.
    pub last_attempt: Option<Attempt>,
    /// When the order was made.
    pub created_at: DateTime<Utc>,
    /// When any of its records last changed.
    pub updated_at: DateTime<Utc>,
}

/// An order as `GET /orders/{id}` shows it, and as webhook events carry it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    /// `ord_…`
    pub id: String,
    /// `pending`, `paid`, `cancelled` or `expired`.
    pub status: &'static str,
    /// Test or live.
    pub livemode: bool,
    /// ISO 4217, lower-case.
    pub currency: String,
    /// Minor units.
    pub amount_total: i64,
    /// What is sold.
    pub items: Vec<LineItem>,
    /// The payment.
    pub payment: PaymentView,
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
pub struct PaymentView {
    /// `pay_…`
    pub id: String,
    /// `pending`, `processing`, `succeeded` or `failed`.
    pub status: &'static str,
    /// Minor units.
    pub amount: i64,
    /// ISO 4217, lower-case.
    pub currency: String,
    /// The most recent charge tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<AttemptView>,
}

/// A charge tried, in an [`OrderView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    /// `succeeded` or `failed`.
    pub outcome: &'static str,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<&'static str>,
    /// Brand and last four digits.
    pub card: CardView,
    /// RFC 3339.
    pub created_at: String,
}

/// What is kept of a card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CardView {
    /// `visa`, …
    pub brand: String,
    /// The last four digits.
    pub last4: String,
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

/// A merchant URL with `{ORDER_ID}` (also percent-encoded) replaced by the order id.
fn with_order_id(url: &str, order_id: OrderId) -> String {
    let id = order_id.to_string();
    url.replace("{ORDER_ID}", &id).replace("%7BORDER_ID%7D", &id).replace("%7Border_id%7D", &id)
}

impl OrderView {
    /// A new order as `POST /checkout` makes it: pending, with an open session.
    pub fn opened(
        order_id: OrderId,
        payment_id: PaymentId,
        livemode: Livemode,
        claim: &crate::claim::VerifiedClaim,
        mode: Mode,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        use crate::order::{OrderStatus, PaymentStatus, SessionStatus};
        Self {
            id: order_id.to_string(),
            status: OrderStatus::Pending.as_str(),
            livemode: livemode.is_live(),
            currency: claim.currency.as_str().to_owned(),
            amount_total: claim.amount_total,
            items: claim.items.clone(),
            payment: PaymentView {
                id: payment_id.to_string(),
                status: PaymentStatus::Pending.as_str(),
                amount: claim.amount_total,
                currency: claim.currency.as_str().to_owned(),
                last_attempt: None,
            },
            session: SessionView {
                status: SessionStatus::Open.as_str(),
                mode: mode.as_str(),
                expires_at: format_time(expires_at),
            },
            created_at: format_time(now),
            updated_at: format_time(now),
        }
    }
}

impl CheckoutRecord {
    /// The order as the merchant sees it.
    pub fn view(&self) -> OrderView {
        OrderView {
            id: self.order_id.to_string(),
            status: self.state.order.as_str(),
            livemode: self.livemode.is_live(),
            currency: self.currency.as_str().to_owned(),
            amount_total: self.amount_total,
            items: self.items.clone(),
            payment: PaymentView {
                id: self.payment_id.to_string(),
                status: self.state.payment.as_str(),
                amount: self.amount_total,
                currency: self.currency.as_str().to_owned(),
                last_attempt: self.last_attempt.as_ref().map(|a| AttemptView {
                    outcome: if a.succeeded { "succeeded" } else { "failed" },
                    decline_code: a.decline_code.map(DeclineCode::as_str),
                    card: CardView { brand: a.card_brand.clone(), last4: a.card_last4.clone() },
                    created_at: format_time(a.created_at),
                }),
            },
            session: SessionView {
                status: self.state.session.as_str(),
                mode: self.mode.as_str(),
                expires_at: format_time(self.state.expires_at),
            },
            created_at: format_time(self.created_at),
            updated_at: format_time(self.updated_at),
        }
    }

    /// An event about this checkout as it now stands.
    pub fn event(&self, event_type: EventType, at: DateTime<Utc>) -> NewEvent {
        NewEvent::about(event_type, &self.view(), self.merchant_id, self.livemode, at)
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

/// Checkouts as the page, the merchant API and the sweeper need them.
pub trait SessionStore: Send + Sync {
    /// The checkout behind a page token.
    fn find_by_token(&self, token_hash: &SecretHash) -> Result<Option<CheckoutRecord>, StoreError>;

    /// A merchant's order, in the caller's mode only.
    fn find_order(
        &self,
        merchant_id: MerchantId,
        livemode: Livemode,
        order_id: OrderId,
    ) -> Result<Option<CheckoutRecord>, StoreError>;

    /// In one transaction: moves the checkout's records from `from` to `to` if they still stand at
    /// `from`, records `attempt`, and writes `event` to the webhook outbox; `false`, with nothing
    /// written, if anything had moved.
    fn transition(&self, order_id: OrderId, change: Transition<'_>) -> Result<bool, StoreError>;

    /// Checkouts whose open session ended at or before `now`, at most `limit` of them.
    fn due_for_expiry(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<CheckoutRecord>, StoreError>;

    /// Checkouts whose payment has been `processing` since `before` or longer: a charge whose
    /// process died between asking the provider and recording the answer.
    fn stuck_charges(&self, before: DateTime<Utc>, limit: i64) -> Result<Vec<CheckoutRecord>, StoreError>;
}

/// One compare-and-set change of a checkout, with what it leaves behind.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    /// Where the records must still stand.
    pub from: Checkout,
    /// Where they move.
    pub to: Checkout,
    /// A charge's record, if the change ends one.
    pub attempt: Option<&'a Attempt>,
    /// The webhook event the change causes, if any.
    pub event: Option<&'a NewEvent>,
    /// When.
    pub at: DateTime<Utc>,
}

impl<'a> Transition<'a> {
    /// A change that leaves nothing behind but the new statuses.
    pub fn plain(from: Checkout, to: Checkout, at: DateTime<Utc>) -> Self {
        Self { from, to, attempt: None, event: None, at }
    }
}

/// What a pay attempt came to.
#[derive(Debug)]
pub enum Paid {
    /// The money moved; send the consumer to the success URL.
    Succeeded(CheckoutRecord),
    /// The provider declined; the page says why and the consumer may try again.
    Declined(CheckoutRecord, DeclineCode),
    /// A field of the card form is wrong; nothing was charged.
    InvalidCard(CheckoutRecord, CardError),
    /// The checkout cannot be charged (paid, cancelled, expired, or a charge running).
    Refused(CheckoutRecord, Refused),
}

/// Failures of the page and order use cases.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No checkout behind that token or id (404).
    #[error("no such checkout")]
    NotFound,
    /// The provider may not charge in this mode (live orders refuse the sandbox).
    #[error("payments in this mode are not available with the configured provider")]
    ModeUnsupported,
    /// The provider could not answer; nothing was charged.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Another transition won a race that should not be possible; nothing was written.
    #[error("the checkout changed while it was being updated")]
    Conflict,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a charge may stay `processing` before it is taken for dead: well past the provider
/// call's own 30-second budget.
pub const STUCK_AFTER_SECONDS: i64 = 120;

/// The checkout page, the merchant's order endpoints and the sweeper.
#[derive(Clone)]
pub struct SessionService {
    store: Arc<dyn SessionStore>,
    provider: Arc<dyn PaymentProvider>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SessionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").field("provider", &self.provider.name()).finish_non_exhaustive()
    }
}

impl SessionService {
    /// Wires the use cases.
    pub fn new(store: Arc<dyn SessionStore>, provider: Arc<dyn PaymentProvider>, clock: Arc<dyn Clock>) -> Self {
        Self { store, provider, clock }
    }

    /// The current time, for pages that show time left.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn shown(&self, mut record: CheckoutRecord) -> CheckoutRecord {
        record.state = record.state.at(self.clock.now());
        record
    }

    fn by_token(&self, token: &str) -> Result<CheckoutRecord, SessionError> {
        self.store.find_by_token(&SecretHash::of(token))?.ok_or(SessionError::NotFound)
    }

    /// The checkout behind a page token, as of now.
    pub fn view(&self, token: &str) -> Result<CheckoutRecord, SessionError> {
        self.by_token(token).map(|r| self.shown(r))
    }

    /// Charges the card typed on the page, once: a second submission while the first is being
    /// answered, or after it succeeded, charges nothing.
    pub fn pay(&self, token: &str, number: &str, expiry: &str, cvc: &str) -> Result<Paid, SessionError> {
        let record = self.by_token(token)?;
        let now = self.clock.now();
        let charging = match record.state.begin_charge(now) {
            Ok(next) => next,
            Err(refused) => return Ok(Paid::Refused(self.shown(record), refused)),
        };
        let card = match Card::parse(number, expiry, cvc, now) {
            Ok(card) => card,
            Err(error) => return Ok(Paid::InvalidCard(self.shown(record), error)),
        };
        if !self.provider.supports(record.livemode) {
            return Err(SessionError::ModeUnsupported);
        }
        if !self.store.transition(record.order_id, Transition::plain(record.state, charging, now))? {
            // Another submission got there first.
            let current = self.by_token(token)?;
            let refused = current.state.begin_charge(now).err().unwrap_or(Refused::InProgress);
            return Ok(Paid::Refused(self.shown(current), refused));
        }
        let attempt_id = format!("pa_{}", &crate::secret::random_token().expose()[..24]);
        let payment_id = record.payment_id.to_string();
        let result = self.provider.charge(&Charge {
            payment_id: &payment_id,
            attempt_id: &attempt_id,
            amount: record.amount_total,
            currency: record.currency.as_str(),
            livemode: record.livemode,
            card: &card,
        });
        let (end, decline) = match result {
            Ok(ChargeResult::Succeeded) => (ChargeEnd::Succeeded, None),
            Ok(ChargeResult::Declined(code)) => (ChargeEnd::Failed, Some(code)),
            Err(error) => {
                // Nothing was charged: free the payment for another try.
                let failed = charging.end_charge(ChargeEnd::Failed).map_err(|_| SessionError::Conflict)?;
                self.store.transition(record.order_id, Transition::plain(charging, failed, self.clock.now()))?;
                return Err(error.into());
            }
        };
        let ended = charging.end_charge(end).map_err(|_| SessionError::Conflict)?;
        let attempt = Attempt {
            id: attempt_id,
            provider: self.provider.name().to_owned(),
            succeeded: end == ChargeEnd::Succeeded,
            decline_code: decline,
            card_brand: card.brand().to_owned(),
            card_last4: card.last4().to_owned(),
            created_at: self.clock.now(),
        };
        let at = attempt.created_at;
        let record = CheckoutRecord { state: ended, last_attempt: Some(attempt), updated_at: at, ..record };
        let event_type = if decline.is_none() { EventType::OrderCompleted } else { EventType::PaymentFailed };
        let event = record.event(event_type, at);
        let change =
            Transition { from: charging, to: ended, attempt: record.last_attempt.as_ref(), event: Some(&event), at };
        if !self.store.transition(record.order_id, change)? {
            return Err(SessionError::Conflict);
        }
        Ok(match decline {
            None => Paid::Succeeded(record),
            Some(code) => Paid::Declined(record, code),
        })
    }

    fn cancel(
        &self,
        record: CheckoutRecord,
    ) -> Result<Result<CheckoutRecord, (CheckoutRecord, Refused)>, SessionError> {
        let now = self.clock.now();
        match record.state.cancel(now) {
            Ok(cancelled) if cancelled == record.state => Ok(Ok(record)),
            Ok(cancelled) => {
                let from = record.state;
                let record = CheckoutRecord { state: cancelled, updated_at: now, ..record };
                let event = record.event(EventType::OrderCancelled, now);
                let change = Transition { event: Some(&event), ..Transition::plain(from, cancelled, now) };
                if self.store.transition(record.order_id, change)? {
                    Ok(Ok(record))
                } else {
                    Err(SessionError::Conflict)
                }
            }
            Err(refused) => Ok(Err((self.shown(record), refused))),
        }
    }

    /// The consumer leaves the page: cancels an open session (again is fine).
    pub fn cancel_by_token(
        &self,
        token: &str,
    ) -> Result<Result<CheckoutRecord, (CheckoutRecord, Refused)>, SessionError> {
        self.cancel(self.by_token(token)?)
    }

    /// A merchant's order, as of now; another merchant's or mode's order is not found.
    pub fn order(&self, caller: &Caller, order_id: OrderId) -> Result<CheckoutRecord, SessionError> {
        let record = self.store.find_order(caller.merchant_id, caller.livemode, order_id)?;
        record.map(|r| self.shown(r)).ok_or(SessionError::NotFound)
    }

    /// The merchant ends an open session early. Idempotent: cancelling a cancelled order answers it.
    pub fn cancel_order(
        &self,
        caller: &Caller,
        order_id: OrderId,
    ) -> Result<Result<CheckoutRecord, (CheckoutRecord, Refused)>, SessionError> {
        let record = self.store.find_order(caller.merchant_id, caller.livemode, order_id)?;
        self.cancel(record.ok_or(SessionError::NotFound)?)
    }

    /// Frees payments left `processing` for longer than any charge takes (the process died between
    /// asking the provider and recording its answer): they become `failed`, so the consumer may
    /// try again and the session can expire. Returns how many it freed.
    pub fn release_stuck_charges(&self, batch: i64) -> Result<usize, SessionError> {
        let now = self.clock.now();
        let mut released = 0;
        for record in self.store.stuck_charges(now - chrono::Duration::seconds(STUCK_AFTER_SECONDS), batch)? {
            let Ok(failed) = record.state.end_charge(ChargeEnd::Failed) else { continue };
            let from = record.state;
            let record = CheckoutRecord { state: failed, updated_at: now, ..record };
            let event = record.event(EventType::PaymentFailed, now);
            if self.store.transition(
                record.order_id,
                Transition { event: Some(&event), ..Transition::plain(from, failed, now) },
            )? {
                released += 1;
            }
        }
        Ok(released)
    }

    /// Expires sessions past their end, a batch at a time; safe to run on several replicas at once
    /// (each change is a compare-and-set). Returns how many it expired.
    pub fn expire_due(&self, batch: i64) -> Result<usize, SessionError> {
        let now = self.clock.now();
        let mut expired = 0;
        for record in self.store.due_for_expiry(now, batch)? {
            if let Ok(next) = record.state.expire(now) {
                let from = record.state;
                let record = CheckoutRecord { state: next, updated_at: now, ..record };
                let event = record.event(EventType::OrderExpired, now);
                let change = Transition { event: Some(&event), ..Transition::plain(from, next, now) };
                if self.store.transition(record.order_id, change)? {
                    expired += 1;
                }
            }
        }
        Ok(expired)
    }
}
