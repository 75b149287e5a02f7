//! The checkout page's use cases (view, pay, cancel), the merchant's order use cases (read,
//! cancel) and the sweeper's (expire), over one state machine: see [`crate::lifecycle`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::time::format_time;
use crate::webhook::{EventType, NewEvent};

use crate::ids::{MerchantId, OrderId, PaymentId};
use crate::lifecycle::{ChargeEnd, Checkout, Refused};
use crate::livemode::Livemode;
use crate::merchant::Caller;
use crate::money::Currency;
use crate::order::{AttemptOutcome, CancellationReason, LineItem, Mode, OrderStatus};
use crate::payment::{Card, CardError, Charge, ChargeLookup, ChargeResult, DeclineCode, PaymentProvider};
use crate::ports::{Clock, StoreError};
use crate::secret::SecretHash;

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
    pub state: Checkout,
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

/// An order as `GET /orders/{id}` shows it, and as webhook events carry it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
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
    /// `pending`, `processing`, `succeeded`, `failed` or `refunded`.
    pub status: &'static str,
    /// Minor units.
    pub amount: i64,
    /// Cards declined so far.
    pub failed_attempts: i32,
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
    /// `processing`, `succeeded`, `failed`, `refund_pending` or `refunded`.
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
            cancellation_reason: None,
            livemode: livemode.is_live(),
            currency: claim.currency.as_str().to_owned(),
            amount_total: claim.amount_total,
            items: claim.items.clone(),
            payment: PaymentView {
                id: payment_id.to_string(),
                status: PaymentStatus::Pending.as_str(),
                amount: claim.amount_total,
                failed_attempts: 0,
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
            cancellation_reason: self.state.cancellation.map(CancellationReason::as_str),
            livemode: self.livemode.is_live(),
            currency: self.currency.as_str().to_owned(),
            amount_total: self.amount_total,
            items: self.items.clone(),
            payment: PaymentView {
                id: self.payment_id.to_string(),
                status: self.state.payment.as_str(),
                amount: self.amount_total,
                failed_attempts: self.state.failed_attempts,
                currency: self.currency.as_str().to_owned(),
                last_attempt: self.last_attempt.as_ref().map(|a| AttemptView {
                    outcome: a.outcome.as_str(),
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

    /// Why the checkout cannot be paid now, if it cannot: as [`Checkout::refusal`], and an open
    /// checkout of a suspended merchant is unavailable.
    pub fn refusal(&self) -> Option<Refused> {
        match self.state.refusal() {
            None | Some(Refused::InProgress) if !self.merchant_active => Some(Refused::Unavailable),
            refusal => refusal,
        }
    }

    /// The record after a change to `state` at `at`: the version moved by one.
    fn moved_to(self, state: Checkout, at: DateTime<Utc>) -> Self {
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

    /// In one transaction: applies `change` if the order is still at `change.version` (moving it to
    /// the next version), records its attempt change and writes its events to the webhook outbox;
    /// `false`, with nothing written, if the order had moved on.
    fn transition(&self, order_id: OrderId, change: Transition<'_>) -> Result<bool, StoreError>;

    /// Checkouts whose open session ended at or before `now` and that no charge is running for, at
    /// most `limit` of them.
    fn due_for_expiry(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<CheckoutRecord>, StoreError>;

    /// Checkouts whose payment has been `processing` since `before` or longer: a charge whose
    /// answer was never recorded (its process died, or the provider is slow).
    fn stuck_charges(&self, before: DateTime<Utc>, limit: i64) -> Result<Vec<CheckoutRecord>, StoreError>;

    /// Charges that moved money for a checkout that they do not pay (outcome `refund_pending`),
    /// with their attempt ids, at most `limit` of them.
    fn stray_charges(&self, limit: i64) -> Result<Vec<(CheckoutRecord, String)>, StoreError>;
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
    pub from: Checkout,
    /// Where they move.
    pub to: Checkout,
    /// What happens to the charge attempts.
    pub attempt: Option<AttemptChange<'a>>,
    /// The webhook events the change causes (written only if the change applies).
    pub events: &'a [NewEvent],
    /// When.
    pub at: DateTime<Utc>,
}

/// What a pay attempt came to.
#[derive(Debug)]
pub enum Paid {
    /// The money moved; send the consumer to the success URL.
    Succeeded(CheckoutRecord),
    /// The provider declined (or could not take the charge); the page says why. The consumer may
    /// try again, unless that was the last attempt allowed (then the record shows it cancelled).
    Declined(CheckoutRecord, DeclineCode),
    /// A field of the card form is wrong; nothing was charged.
    InvalidCard(CheckoutRecord, CardError),
    /// The checkout cannot be charged (paid, cancelled, expired, a charge running, or the
    /// merchant suspended).
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
    /// The checkout kept changing under a change (retrying later will see where it settled).
    #[error("the checkout kept changing while it was being updated")]
    Conflict,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a charge may stay `processing` before the provider is asked what became of it: well
/// past the provider call's own budget.
pub const STUCK_AFTER_SECONDS: i64 = 120;

/// How many times a change is computed again when the order moved meanwhile.
const ROUNDS: usize = 3;

/// The checkout page, the merchant's order endpoints and the sweeper.
#[derive(Clone)]
pub struct SessionService {
    store: Arc<dyn SessionStore>,
    provider: Arc<dyn PaymentProvider>,
    clock: Arc<dyn Clock>,
    max_failed_attempts: i32,
}

impl std::fmt::Debug for SessionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").field("provider", &self.provider.name()).finish_non_exhaustive()
    }
}

fn new_attempt_id() -> String {
    format!("pa_{}", &crate::secret::random_token().expose()[..24])
}

impl SessionService {
    /// Wires the use cases. A checkout closes after `max_failed_attempts` declined cards.
    pub fn new(
        store: Arc<dyn SessionStore>,
        provider: Arc<dyn PaymentProvider>,
        clock: Arc<dyn Clock>,
        max_failed_attempts: i32,
    ) -> Self {
        Self { store, provider, clock, max_failed_attempts: max_failed_attempts.max(1) }
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

    fn reload(&self, record: &CheckoutRecord) -> Result<CheckoutRecord, SessionError> {
        self.store.find_order(record.merchant_id, record.livemode, record.order_id)?.ok_or(SessionError::NotFound)
    }

    /// Applies `to` (with its attempt change and events) to `record` if its order has not moved
    /// on; the record as changed, or `None` if it had moved.
    fn apply(
        &self,
        record: &CheckoutRecord,
        to: Checkout,
        attempt: Option<AttemptChange<'_>>,
        events: &[EventType],
    ) -> Result<Option<CheckoutRecord>, SessionError> {
        let now = self.clock.now();
        let mut next = record.clone().moved_to(to, now);
        if let (Some(AttemptChange::End { id, outcome, decline_code }), Some(last)) =
            (attempt, next.last_attempt.as_mut())
        {
            if last.id == id {
                last.outcome = outcome;
                last.decline_code = decline_code;
            }
        }
        if let Some(AttemptChange::Begin(attempt)) = attempt {
            next.last_attempt = Some(attempt.clone());
        }
        let events: Vec<NewEvent> = events.iter().map(|&t| next.event(t, now)).collect();
        let change = Transition { version: record.version, from: record.state, to, attempt, events: &events, at: now };
        Ok(self.store.transition(record.order_id, change)?.then_some(next))
    }

    /// The checkout behind a page token, as of now.
    pub fn view(&self, token: &str) -> Result<CheckoutRecord, SessionError> {
        self.by_token(token).map(|r| self.shown(r))
    }

    /// Charges the card typed on the page, once: a second submission while the first is being
    /// answered, or after it succeeded, charges nothing; nor does any page of a suspended merchant.
    pub fn pay(&self, token: &str, number: &str, expiry: &str, cvc: &str) -> Result<Paid, SessionError> {
        let record = self.by_token(token)?;
        let now = self.clock.now();
        if !record.merchant_active {
            return Ok(Paid::Refused(self.shown(record), Refused::Unavailable));
        }
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
        let attempt = Attempt {
            id: new_attempt_id(),
            provider: self.provider.name().to_owned(),
            outcome: AttemptOutcome::Processing,
            decline_code: None,
            card_brand: card.brand().to_owned(),
            card_last4: card.last4().to_owned(),
            created_at: now,
        };
        let Some(record) = self.apply(&record, charging, Some(AttemptChange::Begin(&attempt)), &[])? else {
            // Another submission, a cancel or the sweeper got there first.
            let current = self.reload(&record)?;
            let refused = current.refusal().or(current.state.begin_charge(now).err()).unwrap_or(Refused::InProgress);
            return Ok(Paid::Refused(self.shown(current), refused));
        };
        let payment_id = record.payment_id.to_string();
        let result = self.provider.charge(&Charge {
            payment_id: &payment_id,
            attempt_id: &attempt.id,
            amount: record.amount_total,
            currency: record.currency.as_str(),
            livemode: record.livemode,
            card: &card,
        });
        let (end, decline) = match result {
            Ok(ChargeResult::Succeeded) => (ChargeEnd::Succeeded, None),
            Ok(ChargeResult::Declined(code)) => (ChargeEnd::Declined, Some(code)),
            Err(error) => {
                log::warn!("charge {} was not taken: {error}", attempt.id);
                (ChargeEnd::NotCharged, Some(DeclineCode::ProcessingError))
            }
        };
        let record = self.settle(record, Some(&attempt.id), end, decline)?;
        let ours = record.last_attempt.as_ref().filter(|a| a.id == attempt.id);
        Ok(match (ours.map(|a| a.outcome), decline) {
            (Some(AttemptOutcome::Succeeded), _) => Paid::Succeeded(record),
            (Some(AttemptOutcome::Failed), Some(code)) => Paid::Declined(record, code),
            _ => {
                let refused = record.refusal().unwrap_or(Refused::InProgress);
                Paid::Refused(self.shown(record), refused)
            }
        })
    }

    /// Records how the running charge `attempt` of `record` ended. If the order moved on meanwhile
    /// (only the stuck-charge job can move it while a charge runs), a success is still recorded:
    /// it pays the order if the order can still be paid, and is given back otherwise.
    fn settle(
        &self,
        record: CheckoutRecord,
        attempt: Option<&str>,
        end: ChargeEnd,
        decline: Option<DeclineCode>,
    ) -> Result<CheckoutRecord, SessionError> {
        let Ok(ended) = record.state.end_charge(end, self.max_failed_attempts) else {
            return self.landed(record, attempt, end);
        };
        let (outcome, events): (_, &[EventType]) = match end {
            ChargeEnd::Succeeded => (AttemptOutcome::Succeeded, &[EventType::OrderCompleted]),
            _ if ended.order == OrderStatus::Cancelled => {
                (AttemptOutcome::Failed, &[EventType::PaymentFailed, EventType::OrderCancelled])
            }
            _ => (AttemptOutcome::Failed, &[EventType::PaymentFailed]),
        };
        let change = attempt.map(|id| AttemptChange::End { id, outcome, decline_code: decline });
        match self.apply(&record, ended, change, events)? {
            Some(settled) => Ok(settled),
            None => {
                let current = self.reload(&record)?;
                self.landed(current, attempt, end)
            }
        }
    }

    /// A charge's end that found its checkout moved on. Only a success needs anything: it is
    /// recorded already (the stuck-charge job asked the provider), or it pays the checkout if that
    /// is still open and unpaid, or it is given back.
    fn landed(
        &self,
        mut record: CheckoutRecord,
        attempt: Option<&str>,
        end: ChargeEnd,
    ) -> Result<CheckoutRecord, SessionError> {
        let Some(id) = attempt.filter(|_| end == ChargeEnd::Succeeded) else {
            return Ok(record);
        };
        for _ in 0..ROUNDS {
            let ours = record.last_attempt.as_ref().filter(|a| a.id == id).map(|a| a.outcome);
            if matches!(
                ours,
                Some(AttemptOutcome::Succeeded | AttemptOutcome::RefundPending | AttemptOutcome::Refunded)
            ) {
                return Ok(record);
            }
            let paid = if ours == Some(AttemptOutcome::Processing) {
                record.state.end_charge(end, self.max_failed_attempts).ok()
            } else {
                record.state.charge_landed()
            };
            let change = |outcome| Some(AttemptChange::End { id, outcome, decline_code: None });
            let applied = match paid {
                Some(paid) => {
                    self.apply(&record, paid, change(AttemptOutcome::Succeeded), &[EventType::OrderCompleted])?
                }
                None => match self.apply(&record, record.state, change(AttemptOutcome::RefundPending), &[])? {
                    Some(pending) => return self.give_back(pending, id),
                    None => None,
                },
            };
            match applied {
                Some(settled) => return Ok(settled),
                None => record = self.reload(&record)?,
            }
        }
        Err(SessionError::Conflict)
    }

    /// Refunds a stray charge (`refund_pending`) through the provider and records it. If the
    /// provider cannot answer now, the charge stays `refund_pending` for the next sweep.
    fn give_back(&self, mut record: CheckoutRecord, attempt: &str) -> Result<CheckoutRecord, SessionError> {
        if let Err(error) = self.provider.refund(attempt) {
            log::warn!("refund of charge {attempt} failed, to be retried: {error}");
            return Ok(record);
        }
        for _ in 0..ROUNDS {
            let change = AttemptChange::End { id: attempt, outcome: AttemptOutcome::Refunded, decline_code: None };
            match self.apply(&record, record.state.refunded(), Some(change), &[EventType::PaymentRefunded])? {
                Some(refunded) => return Ok(refunded),
                None => record = self.reload(&record)?,
            }
        }
        Err(SessionError::Conflict)
    }

    /// Ends an open checkout early, once, however many requests race: the first cancel changes it
    /// and writes the event; the others answer the cancelled checkout.
    fn cancel(
        &self,
        mut record: CheckoutRecord,
        reason: CancellationReason,
    ) -> Result<Result<CheckoutRecord, (CheckoutRecord, Refused)>, SessionError> {
        for _ in 0..ROUNDS {
            if !record.merchant_active {
                return Ok(Err((self.shown(record), Refused::Unavailable)));
            }
            match record.state.cancel(self.clock.now(), reason) {
                Ok(cancelled) if cancelled == record.state => return Ok(Ok(record)),
                Ok(cancelled) => match self.apply(&record, cancelled, None, &[EventType::OrderCancelled])? {
                    Some(changed) => return Ok(Ok(changed)),
                    None => record = self.reload(&record)?,
                },
                Err(refused) => return Ok(Err((self.shown(record), refused))),
            }
        }
        Err(SessionError::Conflict)
    }

    /// The consumer leaves the page: cancels an open session (again is fine).
    pub fn cancel_by_token(
        &self,
        token: &str,
    ) -> Result<Result<CheckoutRecord, (CheckoutRecord, Refused)>, SessionError> {
        self.cancel(self.by_token(token)?, CancellationReason::Abandoned)
    }

    /// A merchant's order, as of now; another merchant's or mode's order is not found.
    pub fn order(&self, caller: &Caller, order_id: OrderId) -> Result<CheckoutRecord, SessionError> {
        let record = self.store.find_order(caller.merchant_id, caller.livemode, order_id)?;
        record.map(|r| self.shown(r)).ok_or(SessionError::NotFound)
    }

    /// The merchant ends an open session early. Idempotent: cancelling a cancelled order answers
    /// it. Refused while a charge is being answered (that charge decides).
    pub fn cancel_order(
        &self,
        caller: &Caller,
        order_id: OrderId,
    ) -> Result<Result<CheckoutRecord, (CheckoutRecord, Refused)>, SessionError> {
        let record = self.store.find_order(caller.merchant_id, caller.livemode, order_id)?;
        self.cancel(record.ok_or(SessionError::NotFound)?, CancellationReason::RequestedByMerchant)
    }

    /// Resolves charges left `processing` for longer than any charge takes (their process died
    /// between asking the provider and recording its answer, or the provider is slow): asks the
    /// provider what became of each and records that, so a charge that went through is never
    /// lost and the consumer is never charged twice. A charge the provider is still answering is
    /// left alone. Then gives back stray charges whose refund failed earlier. Returns how many
    /// checkouts it changed.
    pub fn release_stuck_charges(&self, batch: i64) -> Result<usize, SessionError> {
        let now = self.clock.now();
        let mut changed = 0;
        for record in self.store.stuck_charges(now - chrono::Duration::seconds(STUCK_AFTER_SECONDS), batch)? {
            let attempt =
                record.last_attempt.as_ref().filter(|a| a.outcome == AttemptOutcome::Processing).map(|a| a.id.clone());
            let answer = match &attempt {
                Some(id) => match self.provider.lookup(id) {
                    Ok(answer) => answer,
                    Err(error) => {
                        log::warn!("cannot ask the provider about charge {id} yet: {error}");
                        continue;
                    }
                },
                // Started before attempts were recorded up front: the provider cannot be asked.
                None => ChargeLookup::NotFound,
            };
            let (end, decline) = match answer {
                ChargeLookup::Pending => continue,
                ChargeLookup::Succeeded => (ChargeEnd::Succeeded, None),
                ChargeLookup::Declined(code) => (ChargeEnd::Declined, Some(code)),
                ChargeLookup::NotFound | ChargeLookup::Refunded => {
                    (ChargeEnd::NotCharged, Some(DeclineCode::ProcessingError))
                }
            };
            let version = record.version;
            if self.settle(record, attempt.as_deref(), end, decline)?.version != version {
                changed += 1;
            }
        }
        for (record, attempt) in self.store.stray_charges(batch)? {
            let version = record.version;
            if self.give_back(record, &attempt)?.version != version {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Expires sessions past their end, a batch at a time; safe to run on several replicas at once:
    /// each change applies only to the order's version it read, so each order expires (and its
    /// event is written) once. Returns how many it expired.
    pub fn expire_due(&self, batch: i64) -> Result<usize, SessionError> {
        let now = self.clock.now();
        let mut expired = 0;
        for record in self.store.due_for_expiry(now, batch)? {
            if let Ok(next) = record.state.expire(now) {
                if next != record.state && self.apply(&record, next, None, &[EventType::OrderExpired])?.is_some() {
                    expired += 1;
                }
            }
        }
        Ok(expired)
    }
}
