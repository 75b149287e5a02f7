//! Money: integer minor units with an ISO 4217 currency. Never a float.

use std::fmt;

use serde::Serialize;

/// The largest amount the service accepts, in minor units: JavaScript's `Number.MAX_SAFE_INTEGER`,
/// so that every amount survives a round trip through a merchant's JSON client exactly.
pub const MAX_AMOUNT: i64 = 9_007_199_254_740_991;

/// A lower-case ISO 4217 code such as `usd`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    /// Accepts three ASCII letters, in any case, and keeps them lower-case.
    pub fn parse(code: &str) -> Option<Self> {
        (code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic())).then(|| Self(code.to_ascii_lowercase()))
    }

    /// The code, lower-case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `quantity × unit_amount`, or `None` when it leaves the accepted range.
pub fn line_amount(quantity: i64, unit_amount: i64) -> Option<i64> {
    quantity.checked_mul(unit_amount).filter(|amount| (0..=MAX_AMOUNT).contains(amount))
}

/// The sum of `amounts`, or `None` when it leaves the accepted range.
pub fn total(amounts: impl IntoIterator<Item = i64>) -> Option<i64> {
    amounts
        .into_iter()
        .try_fold(0i64, |sum, amount| sum.checked_add(amount))
        .filter(|sum| (0..=MAX_AMOUNT).contains(sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_are_three_letters_kept_lower_case() {
        assert_eq!(Currency::parse("USD").map(|c| c.to_string()), Some("usd".into()));
        assert_eq!(Currency::parse("eur").map(|c| c.to_string()), Some("eur".into()));
        assert_eq!(Currency::parse("us"), None);
        assert_eq!(Currency::parse("us1"), None);
        assert_eq!(Currency::parse("usdd"), None);
    }

    #[test]
    fn amounts_that_overflow_or_pass_the_limit_are_refused() {
        assert_eq!(line_amount(2, 2500), Some(5000));
        assert_eq!(line_amount(i64::MAX, 2), None);
        assert_eq!(line_amount(1, MAX_AMOUNT + 1), None);
        assert_eq!(total([MAX_AMOUNT, 1]), None);
        assert_eq!(total([i64::MAX, i64::MAX]), None);
        assert_eq!(total([1, 2, 3]), Some(6));
    }
}
