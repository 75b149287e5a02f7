//! The checkout page's use cases: view a checkout by its token, pay it, leave it.

use crate::order::{Attempt, AttemptChange, AttemptOutcome, CancellationReason, ChargeEnd, Order, Refused};
use crate::orders::{OrderError, Orders};
use crate::payment::{Card, CardError, Charge, ChargeResult, DeclineCode};
use crate::secret::SecretHash;

/// What a pay attempt came to.
#[derive(Debug)]
pub enum Paid {
    /// The money moved; send the consumer to the success URL.
    Succeeded(Order),
    /// The provider declined (or could not take the charge); the page says why. The consumer may
    /// try again, unless that was the last attempt allowed (then the order shows it cancelled).
    Declined(Order, DeclineCode),
    /// A field of the card form is wrong; nothing was charged.
    InvalidCard(Order, CardError),
    /// The checkout cannot be charged (paid, cancelled, expired, a charge running, or the
    /// merchant suspended).
    Refused(Order, Refused),
}

fn new_attempt_id() -> String {
    format!("pa_{}", &crate::secret::random_token().expose()[..24])
}

/// The checkout page.
#[derive(Clone, Debug)]
pub struct PageService {
    orders: Orders,
}

impl PageService {
    /// The page's use cases over `orders`.
    pub fn new(orders: Orders) -> Self {
        Self { orders }
    }

    /// The current time, for pages that show time left.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.orders.now()
    }

    fn by_token(&self, token: &str) -> Result<Order, OrderError> {
        self.orders.store.find_by_token(&SecretHash::of(token))?.ok_or(OrderError::NotFound)
    }

    /// The checkout behind a page token, as of now.
    pub fn view(&self, token: &str) -> Result<Order, OrderError> {
        self.by_token(token).map(|r| self.orders.shown(r))
    }

    /// Charges the card typed on the page, once: a second submission while the first is being
    /// answered, or after it succeeded, charges nothing; nor does any page of a suspended merchant.
    pub fn pay(&self, token: &str, number: &str, expiry: &str, cvc: &str) -> Result<Paid, OrderError> {
        let record = self.by_token(token)?;
        let now = self.orders.clock.now();
        if !record.merchant_active {
            return Ok(Paid::Refused(self.orders.shown(record), Refused::Unavailable));
        }
        let charging = match record.state.begin_charge(now) {
            Ok(next) => next,
            Err(refused) => return Ok(Paid::Refused(self.orders.shown(record), refused)),
        };
        let card = match Card::parse(number, expiry, cvc, now) {
            Ok(card) => card,
            Err(error) => return Ok(Paid::InvalidCard(self.orders.shown(record), error)),
        };
        if !self.orders.provider.supports(record.livemode) {
            return Err(OrderError::ModeUnsupported);
        }
        let attempt = Attempt {
            id: new_attempt_id(),
            provider: self.orders.provider.name().to_owned(),
            outcome: AttemptOutcome::Processing,
            decline_code: None,
            card_brand: card.brand().to_owned(),
            card_last4: card.last4().to_owned(),
            created_at: now,
        };
        let Some(record) = self.orders.apply(&record, charging, Some(AttemptChange::Begin(&attempt)), &[])? else {
            // Another submission, a cancel or the sweeper got there first.
            let current = self.orders.reload(&record)?;
            let refused = current.refusal().or(current.state.begin_charge(now).err()).unwrap_or(Refused::InProgress);
            return Ok(Paid::Refused(self.orders.shown(current), refused));
        };
        let payment_id = record.payment_id.to_string();
        let result = self.orders.provider.charge(&Charge {
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
        let record = self.orders.settle(record, Some(&attempt.id), end, decline)?;
        let ours = record.last_attempt.as_ref().filter(|a| a.id == attempt.id);
        Ok(match (ours.map(|a| a.outcome), decline) {
            (Some(AttemptOutcome::Succeeded), _) => Paid::Succeeded(record),
            (Some(AttemptOutcome::Failed), Some(code)) => Paid::Declined(record, code),
            _ => {
                let refused = record.refusal().unwrap_or(Refused::InProgress);
                Paid::Refused(self.orders.shown(record), refused)
            }
        })
    }

    /// The consumer leaves the page: cancels an open session (again is fine).
    pub fn cancel_by_token(&self, token: &str) -> Result<Result<Order, (Order, Refused)>, OrderError> {
        self.orders.cancel(self.by_token(token)?, CancellationReason::Abandoned)
    }
}
