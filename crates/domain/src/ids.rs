//! Prefixed, time-ordered identifiers (`ord_…`, `pay_…`, `mer_…`, `key_…`).
//!
//! Each id is a UUIDv7 written as 26 characters of Crockford base32 behind its prefix, so ids sort
//! by creation time as plain strings and a pasted id says what it names.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ENCODED_LEN: usize = 26;

fn encode(value: u128) -> String {
    (0..ENCODED_LEN).rev().map(|i| ALPHABET[((value >> (i * 5)) & 0x1f) as usize] as char).collect()
}

fn decode(text: &str) -> Option<u128> {
    if text.len() != ENCODED_LEN {
        return None;
    }
    let mut value: u128 = 0;
    for byte in text.bytes() {
        let digit = ALPHABET.iter().position(|&a| a == byte.to_ascii_uppercase())? as u128;
        value = value.checked_mul(32)?.checked_add(digit)?;
    }
    Some(value)
}

/// A string that is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid {1} id")]
pub struct InvalidId(pub String, pub &'static str);

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// The prefix written before the encoded UUID.
            pub const PREFIX: &'static str = $prefix;

            /// A new id, ordered after every id made before it by this process.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, encode(self.0.as_u128()))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.strip_prefix(concat!($prefix, "_"))
                    .and_then(decode)
                    .map(|v| Self(Uuid::from_u128(v)))
                    .ok_or_else(|| InvalidId(s.to_owned(), $prefix))
            }
        }
    };
}

prefixed_id!(
    /// An order: what the consumer is buying.
    OrderId,
    "ord"
);
prefixed_id!(
    /// A payment attempt against an order.
    PaymentId,
    "pay"
);
prefixed_id!(
    /// A merchant account.
    MerchantId,
    "mer"
);
prefixed_id!(
    /// A merchant's secret API key (the id, never the secret).
    ApiKeyId,
    "key"
);

prefixed_id!(
    /// A webhook event: the same id on every delivery and retry.
    EventId,
    "evt"
);
prefixed_id!(
    /// A merchant's webhook endpoint.
    EndpointId,
    "we"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let id = OrderId::new();
        let text = id.to_string();
        assert!(text.starts_with("ord_"));
        assert_eq!(text.len(), 4 + ENCODED_LEN);
        assert_eq!(text.parse::<OrderId>(), Ok(id));
    }

    #[test]
    fn ids_sort_by_creation_time_as_text() {
        let ids: Vec<String> = (0..200).map(|_| PaymentId::new().to_string()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn an_id_of_another_kind_or_garbage_is_refused() {
        let merchant = MerchantId::new().to_string();
        assert!(merchant.parse::<OrderId>().is_err());
        assert!("mer_".parse::<MerchantId>().is_err());
        assert!("mer_!!!!!!!!!!!!!!!!!!!!!!!!!!".parse::<MerchantId>().is_err());
        // 26 characters of 'Z' overflow 128 bits.
        assert!(format!("mer_{}", "Z".repeat(26)).parse::<MerchantId>().is_err());
    }
}
