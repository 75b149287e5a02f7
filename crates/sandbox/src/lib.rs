//! The sandbox payment provider, for test mode: no money moves, and the card number alone decides
//! the answer, so merchants can rehearse every outcome.
//!
//! | card number           | answer                          |
//! | --------------------- | ------------------------------- |
//! | `4242 4242 4242 4242` | succeeds                        |
//! | `4000 0000 0000 0002` | declined (`card_declined`)      |
//! | `4000 0000 0000 9995` | declined (`insufficient_funds`) |
//! | any other valid card  | declined (`card_declined`): test mode takes test cards only |
//!
//! Any future expiry and any 3-digit CVC (4 for American Express) are accepted. Live-mode charges
//! are refused: the sandbox never stands in for a real provider.
//!
//! Like a real provider it keeps a record of the charges it was asked for, by attempt id, so that
//! a charge whose answer was lost can be looked up and a stray one refunded. The record lives in
//! the process (the most recent [`Sandbox::REMEMBERED`] attempts): a replica that asks about
//! another's charge, or a restarted one, hears `NotFound`, which is true of the sandbox's money.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use domain::livemode::Livemode;
use domain::payment::{Charge, ChargeLookup, ChargeResult, DeclineCode, ProviderError};
use domain::ports::PaymentProvider;

/// The sandbox provider. Clones share one record of charges.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    ledger: Arc<Mutex<Ledger>>,
}

#[derive(Debug, Default)]
struct Ledger {
    charges: HashMap<String, ChargeLookup>,
    order: VecDeque<String>,
}

impl Ledger {
    fn set(&mut self, attempt_id: &str, state: ChargeLookup) {
        if self.charges.insert(attempt_id.to_owned(), state).is_none() {
            self.order.push_back(attempt_id.to_owned());
            while self.order.len() > Sandbox::REMEMBERED {
                if let Some(oldest) = self.order.pop_front() {
                    self.charges.remove(&oldest);
                }
            }
        }
    }
}

impl Sandbox {
    /// How many attempts the record keeps.
    pub const REMEMBERED: usize = 100_000;

    /// A sandbox with an empty record.
    pub fn new() -> Self {
        Self::default()
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // A panic while holding the lock cannot leave the map half-written: keep using it.
        self.ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every charge that moved money and was not given back, by attempt id: what a merchant's
    /// provider dashboard would list as captured.
    pub fn captured(&self) -> Vec<String> {
        let ledger = self.ledger();
        ledger.order.iter().filter(|id| ledger.charges.get(*id) == Some(&ChargeLookup::Succeeded)).cloned().collect()
    }

    /// Every charge given back, by attempt id.
    pub fn refunded(&self) -> Vec<String> {
        let ledger = self.ledger();
        ledger.order.iter().filter(|id| ledger.charges.get(*id) == Some(&ChargeLookup::Refunded)).cloned().collect()
    }
}

/// The test card that always succeeds.
pub const SUCCEEDS: &str = "4242424242424242";
/// The test card that is always declined.
pub const DECLINED: &str = "4000000000000002";
/// The test card that always lacks funds.
pub const INSUFFICIENT_FUNDS: &str = "4000000000009995";

impl PaymentProvider for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn supports(&self, livemode: Livemode) -> bool {
        livemode == Livemode::Test
    }

    fn charge(&self, charge: &Charge<'_>) -> Result<ChargeResult, ProviderError> {
        if charge.livemode == Livemode::Live {
            return Err(ProviderError("the sandbox does not charge live-mode payments".into()));
        }
        let mut ledger = self.ledger();
        // The same attempt id charges once: a repeat answers what the first did.
        match ledger.charges.get(charge.attempt_id) {
            Some(ChargeLookup::Succeeded | ChargeLookup::Refunded) => return Ok(ChargeResult::Succeeded),
            Some(ChargeLookup::Declined(code)) => return Ok(ChargeResult::Declined(*code)),
            Some(ChargeLookup::Pending | ChargeLookup::NotFound) | None => {}
        }
        let result = match charge.card.number() {
            SUCCEEDS => ChargeResult::Succeeded,
            INSUFFICIENT_FUNDS => ChargeResult::Declined(DeclineCode::InsufficientFunds),
            _ => ChargeResult::Declined(DeclineCode::CardDeclined),
        };
        let state = match result {
            ChargeResult::Succeeded => ChargeLookup::Succeeded,
            ChargeResult::Declined(code) => ChargeLookup::Declined(code),
        };
        ledger.set(charge.attempt_id, state);
        Ok(result)
    }

    fn lookup(&self, attempt_id: &str) -> Result<ChargeLookup, ProviderError> {
        Ok(self.ledger().charges.get(attempt_id).copied().unwrap_or(ChargeLookup::NotFound))
    }

    fn refund(&self, attempt_id: &str) -> Result<(), ProviderError> {
        let mut ledger = self.ledger();
        match ledger.charges.get(attempt_id) {
            Some(ChargeLookup::Succeeded) => {
                ledger.set(attempt_id, ChargeLookup::Refunded);
                Ok(())
            }
            Some(ChargeLookup::Refunded) => Ok(()),
            _ => Err(ProviderError(format!("no captured charge {attempt_id} to refund"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::payment::Card;

    use super::*;

    fn charge(number: &str, livemode: Livemode) -> Result<ChargeResult, ProviderError> {
        charge_as(&Sandbox::new(), "pa_1", number, livemode)
    }

    fn charge_as(
        sandbox: &Sandbox,
        attempt_id: &str,
        number: &str,
        livemode: Livemode,
    ) -> Result<ChargeResult, ProviderError> {
        let card = Card::parse(number, "12/40", "123", chrono::Utc::now()).expect("a valid card");
        sandbox.charge(&Charge { payment_id: "pay_1", attempt_id, amount: 100, currency: "usd", livemode, card: &card })
    }

    #[test]
    fn the_test_cards_answer_as_documented() {
        assert_eq!(charge(SUCCEEDS, Livemode::Test), Ok(ChargeResult::Succeeded));
        assert_eq!(charge(DECLINED, Livemode::Test), Ok(ChargeResult::Declined(DeclineCode::CardDeclined)));
        assert_eq!(
            charge(INSUFFICIENT_FUNDS, Livemode::Test),
            Ok(ChargeResult::Declined(DeclineCode::InsufficientFunds))
        );
        assert_eq!(charge("5555555555554444", Livemode::Test), Ok(ChargeResult::Declined(DeclineCode::CardDeclined)));
    }

    #[test]
    fn live_mode_is_refused() {
        assert!(!Sandbox::new().supports(Livemode::Live));
        assert!(charge(SUCCEEDS, Livemode::Live).is_err());
    }

    #[test]
    fn charges_are_remembered_looked_up_and_refunded_once() {
        let sandbox = Sandbox::new();
        assert_eq!(sandbox.lookup("pa_1"), Ok(ChargeLookup::NotFound));
        assert_eq!(charge_as(&sandbox, "pa_1", SUCCEEDS, Livemode::Test), Ok(ChargeResult::Succeeded));
        assert_eq!(
            charge_as(&sandbox, "pa_2", DECLINED, Livemode::Test),
            Ok(ChargeResult::Declined(DeclineCode::CardDeclined))
        );
        assert_eq!(
            charge_as(&sandbox, "pa_2", SUCCEEDS, Livemode::Test),
            Ok(ChargeResult::Declined(DeclineCode::CardDeclined)),
            "an attempt id charges once"
        );
        assert_eq!(sandbox.lookup("pa_1"), Ok(ChargeLookup::Succeeded));
        assert_eq!(sandbox.lookup("pa_2"), Ok(ChargeLookup::Declined(DeclineCode::CardDeclined)));
        assert_eq!(sandbox.captured(), vec!["pa_1".to_owned()]);
        assert!(sandbox.refund("pa_2").is_err(), "a declined charge has nothing to give back");
        assert_eq!(sandbox.refund("pa_1"), Ok(()));
        assert_eq!(sandbox.refund("pa_1"), Ok(()), "refunding twice refunds once");
        assert_eq!(sandbox.lookup("pa_1"), Ok(ChargeLookup::Refunded));
        assert_eq!((sandbox.captured(), sandbox.refunded()), (vec![], vec!["pa_1".to_owned()]));
    }
}
