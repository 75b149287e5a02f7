//! Idempotency: what a key means, how a request is fingerprinted, and what a stored record says
//! about a new request with the same key.
//!
//! Storage enforces the one-record-per-key rule with a unique index; this module only decides.

use serde::{Deserialize, Serialize};

use crate::ids::MerchantId;
use crate::livemode::Livemode;
use crate::order::Mode;
use crate::secret::sha256_hex;

/// Longest idempotency key accepted, in characters.
pub const MAX_KEY_LEN: usize = 255;

/// A merchant-chosen key, 1 to 255 characters, scoped to that merchant and mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// A key of the wrong length; carries the length in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an idempotency key is 1 to 255 characters, not {0}")]
pub struct InvalidIdempotencyKey(pub usize);

impl IdempotencyKey {
    /// Accepts 1 to 255 characters.
    pub fn parse(key: &str) -> Result<Self, InvalidIdempotencyKey> {
        let len = key.chars().count();
        if (1..=MAX_KEY_LEN).contains(&len) {
            Ok(Self(key.to_owned()))
        } else {
            Err(InvalidIdempotencyKey(len))
        }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 of a request's canonical form: every field that shapes the outcome, in a fixed order,
/// so that whitespace, key order and unknown fields of the JSON body do not matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of a request to `operation` (`POST /checkout`) whose outcome the `fields`
    /// shape, in the operation's fixed order.
    pub fn of(operation: &str, fields: &[&str]) -> Self {
        let canonical: Vec<&str> = std::iter::once(operation).chain(fields.iter().copied()).collect();
        Self(sha256_hex(serde_json::json!(canonical).to_string().as_bytes()))
    }

    /// Wraps a stored fingerprint.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The facts of a completed outcome, as stored with the key. Holds nothing secret: the checkout
/// URL is derived again from the order id when the response is replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StoredOutcome {
    /// A checkout was created.
    #[serde(rename_all = "camelCase")]
    Created {
        /// `ord_…`
        order_id: String,
        /// `pay_…`
        payment_id: String,
        /// Hosted or embedded.
        mode: Mode,
        /// RFC 3339 with milliseconds, as first sent.
        expires_at: String,
    },
    /// The claim already backed another open order.
    ClaimAlreadyRedeemed,
}

/// What was stored under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The first request's fingerprint.
    pub fingerprint: Fingerprint,
    /// What it led to.
    pub outcome: StoredOutcome,
}

/// What to do with a request whose key already has a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Same request: answer with the first outcome again.
    Replay(StoredOutcome),
    /// Another request under a used key: refuse (422).
    KeyReused,
}

/// Compares a new request with the record stored under its key.
pub fn decide(record: IdempotencyRecord, fingerprint: &Fingerprint) -> Decision {
    if &record.fingerprint == fingerprint {
        Decision::Replay(record.outcome)
    } else {
        Decision::KeyReused
    }
}

/// Where an idempotency key lives: one merchant, one mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyScope {
    /// The key's owner.
    pub merchant_id: MerchantId,
    /// Test and live keys never meet.
    pub livemode: Livemode,
    /// The merchant's key.
    pub key: IdempotencyKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_characters() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"é".repeat(255)).is_ok());
        assert_eq!(IdempotencyKey::parse(""), Err(InvalidIdempotencyKey(0)));
        assert_eq!(IdempotencyKey::parse(&"k".repeat(256)), Err(InvalidIdempotencyKey(256)));
    }

    #[test]
    fn a_fingerprint_is_of_the_operation_and_its_fields_in_order() {
        let fingerprint = Fingerprint::of("POST /checkout", &["claim", "hosted", "https://a", "https://b"]);
        // The stored fingerprints of every record made so far are of this very text.
        let canonical = r#"["POST /checkout","claim","hosted","https://a","https://b"]"#;
        assert_eq!(fingerprint, Fingerprint::from_stored(sha256_hex(canonical.as_bytes())));
        assert_ne!(fingerprint, Fingerprint::of("POST /checkout", &["claim", "hosted", "https://b", "https://a"]));
    }

    #[test]
    fn a_record_replays_only_for_the_same_fingerprint() {
        let outcome = StoredOutcome::ClaimAlreadyRedeemed;
        let record = IdempotencyRecord { fingerprint: Fingerprint::from_stored("aa".into()), outcome: outcome.clone() };
        assert_eq!(decide(record.clone(), &Fingerprint::from_stored("aa".into())), Decision::Replay(outcome));
        assert_eq!(decide(record, &Fingerprint::from_stored("bb".into())), Decision::KeyReused);
    }

    #[test]
    fn stored_outcomes_hold_no_url() {
        let created = StoredOutcome::Created {
            order_id: "ord_1".into(),
            payment_id: "pay_1".into(),
            mode: Mode::Hosted,
            expires_at: "2026-11-25T10:30:00.000Z".into(),
        };
        let json = serde_json::to_string(&created).unwrap_or_default();
        assert!(json.contains("\"outcome\":\"created\""), "{json}");
        assert!(!json.contains("http"));
        assert_eq!(serde_json::from_str::<StoredOutcome>(&json).ok(), Some(created));
    }
}
