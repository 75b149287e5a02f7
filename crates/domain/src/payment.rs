//! Payments: the card a consumer types, the provider port that charges it, and what a charge
//! leaves behind. A card number is never stored or logged; only its brand and last four digits.

use std::fmt;

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;

use crate::livemode::Livemode;

/// Card details as typed on the checkout page, checked for shape (not for funds).
#[derive(Clone)]
pub struct Card {
    number: String,
    exp_month: u32,
    exp_year: i32,
    cvc: String,
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Card({} ••••{})", self.brand(), self.last4())
    }
}

/// Which field of the card form is wrong, and why (shown next to that field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// Not 12–19 digits passing the Luhn check.
    #[error("Your card number is invalid.")]
    Number,
    /// Not a month and year in the future.
    #[error("Your card's expiry date is invalid or in the past.")]
    Expiry,
    /// Not 3 (or 4, for American Express) digits.
    #[error("Your card's security code is invalid.")]
    Cvc,
}

impl CardError {
    /// The form field the error belongs to.
    pub fn field(self) -> &'static str {
        match self {
            CardError::Number => "number",
            CardError::Expiry => "expiry",
            CardError::Cvc => "cvc",
        }
    }
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if !i.is_multiple_of(2) {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

impl Card {
    /// Reads the form: the number may contain spaces or dashes; expiry is `MM/YY` or `MM/YYYY`.
    pub fn parse(number: &str, expiry: &str, cvc: &str, now: DateTime<Utc>) -> Result<Self, CardError> {
        let number: String = number.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if !(12..=19).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) || !luhn(&number) {
            return Err(CardError::Number);
        }
        let (month, year) = expiry.trim().split_once('/').ok_or(CardError::Expiry)?;
        let exp_month: u32 = month.trim().parse().map_err(|_| CardError::Expiry)?;
        let year = year.trim();
        let exp_year: i32 = match (year.len(), year.parse::<i32>()) {
            (2, Ok(y)) => 2000 + y,
            (4, Ok(y)) => y,
            _ => return Err(CardError::Expiry),
        };
        let current = (now.year(), now.month());
        if !(1..=12).contains(&exp_month) || (exp_year, exp_month) < current || exp_year > current.0 + 20 {
            return Err(CardError::Expiry);
        }
        let cvc = cvc.trim();
        let cvc_len = if number.starts_with("34") || number.starts_with("37") { 4 } else { 3 };
        if cvc.len() != cvc_len || !cvc.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CardError::Cvc);
        }
        Ok(Self { number, exp_month, exp_year, cvc: cvc.to_owned() })
    }

    /// The full number, for the provider call only.
    pub fn number(&self) -> &str {
        &self.number
    }

    /// The security code, for the provider call only.
    pub fn cvc(&self) -> &str {
        &self.cvc
    }

    /// Expiry month and year.
    pub fn expiry(&self) -> (u32, i32) {
        (self.exp_month, self.exp_year)
    }

    /// The last four digits: all that is kept.
    pub fn last4(&self) -> &str {
        &self.number[self.number.len() - 4..]
    }

    /// The card network, from the number's prefix.
    pub fn brand(&self) -> &'static str {
        let n = &self.number;
        let prefix2: u32 = n[..2].parse().unwrap_or(0);
        let prefix4: u32 = n[..4].parse().unwrap_or(0);
        if n.starts_with('4') {
            "visa"
        } else if (51..=55).contains(&prefix2) || (2221..=2720).contains(&prefix4) {
            "mastercard"
        } else if prefix2 == 34 || prefix2 == 37 {
            "amex"
        } else if n.starts_with("6011") || n.starts_with("65") {
            "discover"
        } else {
            "unknown"
        }
    }
}

/// Why a provider declined a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclineCode {
    /// The issuer declined.
    CardDeclined,
    /// Not enough money.
    InsufficientFunds,
    /// The provider could not take the charge (an outage, or it has no record of it): nothing was
    /// charged, and it does not count as a declined card.
    ProcessingError,
}

impl DeclineCode {
    /// The stored (and wire) text.
    pub fn as_str(self) -> &'static str {
        match self {
            DeclineCode::CardDeclined => "card_declined",
            DeclineCode::InsufficientFunds => "insufficient_funds",
            DeclineCode::ProcessingError => "processing_error",
        }
    }

    /// From the stored text.
    pub fn from_stored(text: &str) -> Option<Self> {
        [DeclineCode::CardDeclined, DeclineCode::InsufficientFunds, DeclineCode::ProcessingError]
            .into_iter()
            .find(|c| c.as_str() == text)
    }

    /// What the consumer reads.
    pub fn message(self) -> &'static str {
        match self {
            DeclineCode::CardDeclined => "Your card was declined. Try another card.",
            DeclineCode::InsufficientFunds => "Your card has insufficient funds. Try another card.",
            DeclineCode::ProcessingError => {
                "The payment could not be processed. You were not charged; please try again."
            }
        }
    }
}

/// One charge, as sent to a provider.
#[derive(Debug, Clone)]
pub struct Charge<'a> {
    /// The payment being paid (`pay_…`).
    pub payment_id: &'a str,
    /// Unique per attempt: a provider that sees it twice charges once.
    pub attempt_id: &'a str,
    /// Minor units.
    pub amount: i64,
    /// ISO 4217, lower-case.
    pub currency: &'a str,
    /// Test or live.
    pub livemode: Livemode,
    /// The card.
    pub card: &'a Card,
}

/// A provider's answer to a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeResult {
    /// Captured.
    Succeeded,
    /// Declined, with the reason.
    Declined(DeclineCode),
}

/// What a provider knows of a charge it was asked for, by attempt id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeLookup {
    /// Captured (and not given back).
    Succeeded,
    /// Declined, with the reason.
    Declined(DeclineCode),
    /// Still being answered: ask again later.
    Pending,
    /// Given back.
    Refunded,
    /// The provider never saw it: nothing was charged.
    NotFound,
}

/// A provider that could not answer (network, outage). From `charge`, it means the charge did
/// not happen: an adapter that cannot tell must keep waiting for the answer, or look it up, rather
/// than return this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the payment provider failed: {0}")]
pub struct ProviderError(pub String);

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()
    }

    #[test]
    fn test_cards_parse_and_show_only_brand_and_last_four() {
        let card = Card::parse("4242 4242 4242 4242", "12/30", "123", now()).unwrap();
        assert_eq!((card.brand(), card.last4()), ("visa", "4242"));
        assert_eq!(format!("{card:?}"), "Card(visa ••••4242)");
        assert_eq!(Card::parse("5555-5555-5555-4444", "01/2031", "999", now()).unwrap().brand(), "mastercard");
        assert_eq!(Card::parse("378282246310005", "01/31", "1234", now()).unwrap().brand(), "amex");
    }

    #[test]
    fn malformed_cards_name_the_field() {
        assert_eq!(Card::parse("4242 4242 4242 4241", "12/30", "123", now()).err(), Some(CardError::Number));
        assert_eq!(Card::parse("4242", "12/30", "123", now()).err(), Some(CardError::Number));
        assert_eq!(Card::parse("4242424242424242", "10/26", "123", now()).err(), Some(CardError::Expiry));
        assert_eq!(Card::parse("4242424242424242", "13/30", "123", now()).err(), Some(CardError::Expiry));
        assert_eq!(Card::parse("4242424242424242", "1230", "123", now()).err(), Some(CardError::Expiry));
        assert_eq!(Card::parse("4242424242424242", "12/30", "12", now()).err(), Some(CardError::Cvc));
        assert!(Card::parse("4242424242424242", "11/26", "123", now()).is_ok(), "this month is still valid");
    }
}
