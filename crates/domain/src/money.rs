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

impl Currency {
    /// Digits after the decimal point in this currency (ISO 4217 minor unit).
    pub fn exponent(&self) -> u32 {
        match self.0.as_str() {
            "bif" | "clp" | "djf" | "gnf" | "isk" | "jpy" | "kmf" | "krw" | "mga" | "pyg" | "rwf" | "ugx" | "vnd"
            | "vuv" | "xaf" | "xof" | "xpf" => 0,
            "bhd" | "iqd" | "jod" | "kwd" | "lyd" | "omr" | "tnd" => 3,
            _ => 2,
        }
    }

    /// How an amount of minor units reads to a consumer: `$1,234.50`, `€9.99`, `¥500`, `CHF 12.00`.
    pub fn format(&self, amount: i64) -> String {
        let exponent = self.exponent();
        let scale = 10i64.pow(exponent);
        let (sign, magnitude) = if amount < 0 { ("-", amount.unsigned_abs()) } else { ("", amount.unsigned_abs()) };
        let whole = (magnitude / scale as u64).to_string();
        let mut grouped = String::new();
        for (i, digit) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        let fraction = if exponent == 0 {
            String::new()
        } else {
            format!(".{:0width$}", magnitude % scale as u64, width = exponent as usize)
        };
        let symbol = match self.0.as_str() {
            "usd" => "$".to_owned(),
            "eur" => "€".to_owned(),
            "gbp" => "£".to_owned(),
            "jpy" => "¥".to_owned(),
            "cad" => "CA$".to_owned(),
            "aud" => "A$".to_owned(),
            other => format!("{} ", other.to_ascii_uppercase()),
        };
        format!("{sign}{symbol}{grouped}{fraction}")
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
    fn amounts_read_in_the_currency_s_own_units() {
        let usd = Currency::parse("usd").unwrap();
        assert_eq!(usd.format(123_450), "$1,234.50");
        assert_eq!(usd.format(5), "$0.05");
        assert_eq!(Currency::parse("jpy").unwrap().format(500), "¥500");
        assert_eq!(Currency::parse("kwd").unwrap().format(1_500), "KWD 1.500");
        assert_eq!(Currency::parse("chf").unwrap().format(1_200), "CHF 12.00");
        assert_eq!(Currency::parse("eur").unwrap().format(100_000_000), "€1,000,000.00");
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
