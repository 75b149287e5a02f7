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

/// The currencies of ISO 4217 (its list of codes in use) that can be paid in, each with its minor
/// unit: how many digits follow the decimal point. Funds and precious metals without a minor unit
/// (XAU, XDR, XTS, …) are not among them.
#[rustfmt::skip]
const ISO_4217: &[(&str, u32)] = &[
    ("aed", 2), ("afn", 2), ("all", 2), ("amd", 2), ("ang", 2), ("aoa", 2), ("ars", 2), ("aud", 2), ("awg", 2),
    ("azn", 2), ("bam", 2), ("bbd", 2), ("bdt", 2), ("bgn", 2), ("bhd", 3), ("bif", 0), ("bmd", 2), ("bnd", 2),
    ("bob", 2), ("bov", 2), ("brl", 2), ("bsd", 2), ("btn", 2), ("bwp", 2), ("byn", 2), ("bzd", 2), ("cad", 2),
    ("cdf", 2), ("che", 2), ("chf", 2), ("chw", 2), ("clf", 4), ("clp", 0), ("cny", 2), ("cop", 2), ("cou", 2),
    ("crc", 2), ("cup", 2), ("cve", 2), ("czk", 2), ("djf", 0), ("dkk", 2), ("dop", 2), ("dzd", 2), ("egp", 2),
    ("ern", 2), ("etb", 2), ("eur", 2), ("fjd", 2), ("fkp", 2), ("gbp", 2), ("gel", 2), ("ghs", 2), ("gip", 2),
    ("gmd", 2), ("gnf", 0), ("gtq", 2), ("gyd", 2), ("hkd", 2), ("hnl", 2), ("htg", 2), ("huf", 2), ("idr", 2),
    ("ils", 2), ("inr", 2), ("iqd", 3), ("irr", 2), ("isk", 0), ("jmd", 2), ("jod", 3), ("jpy", 0), ("kes", 2),
    ("kgs", 2), ("khr", 2), ("kmf", 0), ("kpw", 2), ("krw", 0), ("kwd", 3), ("kyd", 2), ("kzt", 2), ("lak", 2),
    ("lbp", 2), ("lkr", 2), ("lrd", 2), ("lsl", 2), ("lyd", 3), ("mad", 2), ("mdl", 2), ("mga", 2), ("mkd", 2),
    ("mmk", 2), ("mnt", 2), ("mop", 2), ("mru", 2), ("mur", 2), ("mvr", 2), ("mwk", 2), ("mxn", 2), ("mxv", 2),
    ("myr", 2), ("mzn", 2), ("nad", 2), ("ngn", 2), ("nio", 2), ("nok", 2), ("npr", 2), ("nzd", 2), ("omr", 3),
    ("pab", 2), ("pen", 2), ("pgk", 2), ("php", 2), ("pkr", 2), ("pln", 2), ("pyg", 0), ("qar", 2), ("ron", 2),
    ("rsd", 2), ("rub", 2), ("rwf", 0), ("sar", 2), ("sbd", 2), ("scr", 2), ("sdg", 2), ("sek", 2), ("sgd", 2),
    ("shp", 2), ("sle", 2), ("sos", 2), ("srd", 2), ("ssp", 2), ("stn", 2), ("svc", 2), ("syp", 2), ("szl", 2),
    ("thb", 2), ("tjs", 2), ("tmt", 2), ("tnd", 3), ("top", 2), ("try", 2), ("ttd", 2), ("twd", 2), ("tzs", 2),
    ("uah", 2), ("ugx", 0), ("usd", 2), ("usn", 2), ("uyi", 0), ("uyu", 2), ("uyw", 4), ("uzs", 2), ("ved", 2),
    ("ves", 2), ("vnd", 0), ("vuv", 0), ("wst", 2), ("xaf", 0), ("xcd", 2), ("xcg", 2), ("xof", 0), ("xpf", 0),
    ("yer", 2), ("zar", 2), ("zmw", 2), ("zwg", 2),
];

impl Currency {
    /// Accepts a code of ISO 4217 (the codes in use that have a minor unit), in any case, and keeps it lower-case: what
    /// a claim may name.
    pub fn iso4217(code: &str) -> Option<Self> {
        let code = code.to_ascii_lowercase();
        ISO_4217.iter().any(|(known, _)| *known == code).then_some(Self(code))
    }

    /// Accepts three ASCII letters, in any case, and keeps them lower-case: for currencies
    /// already stored, which an older release may have taken without checking them against ISO
    /// 4217. New claims go through [`Currency::iso4217`].
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
    /// Digits after the decimal point in this currency (its ISO 4217 minor unit; 2 for a stored
    /// code that is not in the table).
    pub fn exponent(&self) -> u32 {
        ISO_4217.iter().find(|(code, _)| *code == self.0).map_or(2, |(_, minor)| *minor)
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
    fn claims_name_iso_4217_currencies() {
        assert_eq!(Currency::iso4217("JPY").map(|c| c.exponent()), Some(0));
        assert_eq!(Currency::iso4217("kwd").map(|c| c.exponent()), Some(3));
        assert_eq!(Currency::iso4217("clf").map(|c| c.exponent()), Some(4));
        assert_eq!(Currency::iso4217("eur").map(|c| c.exponent()), Some(2));
        for unknown in ["abc", "xau", "xts", "usdd", "us", "", "ＵＳＤ"] {
            assert_eq!(Currency::iso4217(unknown), None, "{unknown}");
        }
        assert!(ISO_4217.windows(2).all(|w| w[0].0 < w[1].0), "sorted, no code twice");
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
        assert_eq!(Currency::parse("bhd").unwrap().format(1_234_567), "BHD 1,234.567");
        assert_eq!(Currency::parse("clf").unwrap().format(12_345), "CLF 1.2345");
        assert_eq!(Currency::parse("isk").unwrap().format(1_500), "ISK 1,500");
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
