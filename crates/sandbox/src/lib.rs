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

use domain::merchant::Livemode;
use domain::payment::{Charge, ChargeResult, DeclineCode, PaymentProvider, ProviderError};

/// The sandbox provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sandbox;

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
        Ok(match charge.card.number() {
            SUCCEEDS => ChargeResult::Succeeded,
            INSUFFICIENT_FUNDS => ChargeResult::Declined(DeclineCode::InsufficientFunds),
            _ => ChargeResult::Declined(DeclineCode::CardDeclined),
        })
    }
}

#[cfg(test)]
mod tests {
    use domain::payment::Card;

    use super::*;

    fn charge(number: &str, livemode: Livemode) -> Result<ChargeResult, ProviderError> {
        let card = Card::parse(number, "12/40", "123", chrono::Utc::now()).expect("a valid card");
        Sandbox.charge(&Charge {
            payment_id: "pay_1",
            attempt_id: "pa_1",
            amount: 100,
            currency: "usd",
            livemode,
            card: &card,
        })
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
        assert!(!Sandbox.supports(Livemode::Live));
        assert!(charge(SUCCEEDS, Livemode::Live).is_err());
    }
}
