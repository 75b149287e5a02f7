//! Merchants, their secret keys, the rules of a merchant's name, and the rule that turns a
//! presented key into a caller. The operator's use cases over them are in [`crate::merchants`].

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::{ApiKeyId, MerchantId};
use crate::livemode::Livemode;
use crate::secret::{ApiKeyFormatError, ApiKeySecret};

/// Whether a merchant may transact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MerchantStatus {
    /// May create checkouts.
    Active,
    /// Blocked by the operator: every key answers 403.
    Suspended,
}

impl MerchantStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            MerchantStatus::Active => "active",
            MerchantStatus::Suspended => "suspended",
        }
    }

    /// From the stored text; anything unknown is treated as suspended (fail closed).
    pub fn from_stored(text: &str) -> Self {
        if text == "active" {
            MerchantStatus::Active
        } else {
            MerchantStatus::Suspended
        }
    }
}

/// A merchant account.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Merchant {
    /// `mer_…`
    pub id: MerchantId,
    /// Shown on checkout pages.
    pub name: String,
    /// Active or suspended.
    pub status: MerchantStatus,
    /// When it was created.
    #[serde(serialize_with = "crate::time::serialize_time")]
    pub created_at: DateTime<Utc>,
}

/// What the store knows of a key, found by the hash of the presented secret.
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    /// `key_…`
    pub id: ApiKeyId,
    /// Whose key it is.
    pub merchant_id: MerchantId,
    /// Test or live.
    pub livemode: Livemode,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it stops working (a rolled key), if it does.
    pub expires_at: Option<DateTime<Utc>>,
    /// The owning merchant's status.
    pub merchant_status: MerchantStatus,
}

impl ApiKeyRecord {
    /// Whether the key may act at `now`: not revoked, not past a roll's expiry, merchant active.
    pub fn usable_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none()
            && self.expires_at.is_none_or(|at| at > now)
            && self.merchant_status == MerchantStatus::Active
    }
}

/// A merchant's key as listed to the operator: never the secret.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeySummary {
    /// `key_…`
    pub id: ApiKeyId,
    /// Whose key it is.
    pub merchant_id: MerchantId,
    /// Test or live.
    pub livemode: Livemode,
    /// Last four characters of the secret.
    pub hint: String,
    /// When it was created.
    #[serde(serialize_with = "crate::time::serialize_time")]
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    #[serde(serialize_with = "crate::time::serialize_optional_time")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it stops working because it was rolled, if it was.
    #[serde(serialize_with = "crate::time::serialize_optional_time")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it last authenticated a request, as recorded (in batches, so up to a minute late).
    #[serde(serialize_with = "crate::time::serialize_optional_time")]
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The authenticated caller of a merchant endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The merchant acting.
    pub merchant_id: MerchantId,
    /// The key it used.
    pub key_id: ApiKeyId,
    /// Test or live, from the key: everything the call creates is of this mode.
    pub livemode: Livemode,
}

/// Why a request is not let in. `Unauthenticated` answers 401, `Forbidden` 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No usable credentials: missing, malformed or unknown key.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A real key that may not do this: revoked, suspended merchant, wrong kind of key.
    #[error("{0}")]
    Forbidden(&'static str),
}

impl AuthError {
    /// A stable machine-readable code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Unauthenticated(_) => "unauthorized",
            AuthError::Forbidden(_) => "forbidden",
        }
    }
}

/// Reads the value of an `Authorization` header into a well-formed secret key.
pub fn parse_bearer(header: Option<&str>) -> Result<ApiKeySecret, AuthError> {
    let header = header
        .ok_or(AuthError::Unauthenticated("Missing Authorization header; send `Authorization: Bearer <secret key>`"))?;
    let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Unauthenticated(
        "Malformed Authorization header; send `Authorization: Bearer <secret key>`",
    ))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Unauthenticated(
            "Unsupported authorization scheme; send `Authorization: Bearer <secret key>`",
        ));
    }
    ApiKeySecret::parse(token.trim()).map_err(|e| match e {
        ApiKeyFormatError::Malformed => AuthError::Unauthenticated("Malformed secret key"),
        ApiKeyFormatError::BadChecksum => AuthError::Unauthenticated(
            "Invalid secret key: the checksum does not match; check that it was copied whole",
        ),
        ApiKeyFormatError::Publishable => {
            AuthError::Forbidden("A publishable key cannot be used here; use a secret key (sk_test_… or sk_live_…)")
        }
    })
}

/// Decides whether the key found for a presented secret may act at `now`. A rolled key past its
/// expiry is refused like a revoked one.
pub fn authorize_at(
    presented: &ApiKeySecret,
    found: Option<ApiKeyRecord>,
    now: DateTime<Utc>,
) -> Result<Caller, AuthError> {
    let record = found.ok_or(AuthError::Unauthenticated("Invalid secret key"))?;
    if record.livemode != presented.livemode() {
        // The hash matched, so this cannot happen unless storage was edited; fail closed.
        return Err(AuthError::Unauthenticated("Invalid secret key"));
    }
    if record.revoked_at.is_some() {
        return Err(AuthError::Forbidden("This secret key has been revoked"));
    }
    if record.expires_at.is_some_and(|at| at <= now) {
        return Err(AuthError::Forbidden("This secret key has expired: it was rolled; use the key that replaced it"));
    }
    if record.merchant_status != MerchantStatus::Active {
        return Err(AuthError::Forbidden("This merchant account is suspended"));
    }
    Ok(Caller { merchant_id: record.merchant_id, key_id: record.id, livemode: record.livemode })
}

/// The longest merchant name, in characters (Unicode scalar values).
pub const MAX_MERCHANT_NAME: usize = 200;

/// A merchant's name, as consumers see it on checkout pages: trimmed, 1 to [`MAX_MERCHANT_NAME`]
/// characters, and free of control characters (C0, DEL, C1) and of the invisible marks that
/// reorder text (bidirectional overrides and isolates), which could make a page show another
/// name than the one stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantName(String);

/// Why a merchant name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MerchantNameError {
    /// Nothing but whitespace, or nothing at all.
    #[error("a merchant name is 1 to 200 characters")]
    Empty,
    /// Longer than [`MAX_MERCHANT_NAME`] once trimmed.
    #[error("a merchant name is 1 to 200 characters")]
    TooLong,
    /// A control character or a bidirectional formatting mark.
    #[error("a merchant name may not hold control characters or bidirectional formatting marks")]
    ControlCharacter,
}

impl MerchantName {
    /// Trims `text`, then checks the rules.
    pub fn parse(text: &str) -> Result<Self, MerchantNameError> {
        let name = text.trim();
        if name.is_empty() {
            return Err(MerchantNameError::Empty);
        }
        if name.chars().count() > MAX_MERCHANT_NAME {
            return Err(MerchantNameError::TooLong);
        }
        if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
            return Err(MerchantNameError::ControlCharacter);
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Unicode's explicit bidirectional formatting characters (embeddings, overrides, isolates and the
/// marks), which reorder or hide what is shown around them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &ApiKeySecret) -> ApiKeyRecord {
        ApiKeyRecord {
            id: ApiKeyId::new(),
            merchant_id: MerchantId::new(),
            livemode: key.livemode(),
            revoked_at: None,
            expires_at: None,
            merchant_status: MerchantStatus::Active,
        }
    }

    #[test]
    fn a_bearer_header_yields_the_key() {
        let key = ApiKeySecret::generate(Livemode::Test);
        let header = format!("Bearer {}", key.secret().expose());
        assert_eq!(parse_bearer(Some(&header)).map(|k| k.hash()), Ok(key.hash()));
        let lower = format!("bearer {}", key.secret().expose());
        assert!(parse_bearer(Some(&lower)).is_ok());
    }

    #[test]
    fn missing_or_malformed_headers_are_unauthenticated() {
        for header in [None, Some(""), Some("Bearer"), Some("Basic abc"), Some("Bearer sk_test_nope")] {
            assert!(matches!(parse_bearer(header), Err(AuthError::Unauthenticated(_))), "{header:?}");
        }
    }

    #[test]
    fn a_publishable_key_is_forbidden() {
        assert!(matches!(parse_bearer(Some("Bearer pk_test_abc")), Err(AuthError::Forbidden(_))));
    }

    #[test]
    fn unknown_revoked_and_suspended_keys_are_refused() {
        let key = ApiKeySecret::generate(Livemode::Live);
        let authorize = |found| authorize_at(&key, found, Utc::now());
        assert!(matches!(authorize(None), Err(AuthError::Unauthenticated(_))));

        let mut revoked = record(&key);
        revoked.revoked_at = Some(Utc::now());
        assert!(matches!(authorize(Some(revoked)), Err(AuthError::Forbidden(_))));

        let mut suspended = record(&key);
        suspended.merchant_status = MerchantStatus::Suspended;
        assert!(matches!(authorize(Some(suspended)), Err(AuthError::Forbidden(_))));

        let caller = authorize(Some(record(&key)));
        assert_eq!(caller.map(|c| c.livemode), Ok(Livemode::Live));
    }

    #[test]
    fn a_rolled_key_works_until_its_expiry_then_is_forbidden() {
        let key = ApiKeySecret::generate(Livemode::Test);
        let now = Utc::now();
        let mut rolled = record(&key);
        rolled.expires_at = Some(now + chrono::Duration::hours(1));
        assert!(authorize_at(&key, Some(rolled.clone()), now).is_ok());
        let later = now + chrono::Duration::hours(1);
        assert!(matches!(authorize_at(&key, Some(rolled), later), Err(AuthError::Forbidden(_))));
    }

    #[test]
    fn a_merchant_name_is_trimmed_and_one_to_two_hundred_characters() {
        assert_eq!(MerchantName::parse("  Drop Shop \n").map(|n| n.as_str().to_owned()), Ok("Drop Shop".into()));
        assert_eq!(MerchantName::parse(""), Err(MerchantNameError::Empty));
        assert_eq!(MerchantName::parse(" \t "), Err(MerchantNameError::Empty));
        let longest = "é".repeat(MAX_MERCHANT_NAME);
        assert!(MerchantName::parse(&longest).is_ok(), "characters are counted, not bytes");
        assert_eq!(MerchantName::parse(&format!("{longest}x")), Err(MerchantNameError::TooLong));
        assert!(MerchantName::parse(&format!("  {longest}  ")).is_ok(), "counted after trimming");
        for fine in ["Café Zürich ☕", "שלום", "株式会社ドロップ", "A & B <Shop>"] {
            assert!(MerchantName::parse(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn a_merchant_name_holds_no_control_or_reordering_characters() {
        for sneaky in [
            "Drop\nShop",
            "Drop\tShop",
            "Drop\0",
            "Drop\u{7f}",
            "Drop\u{85}Shop",
            "Drop \u{202E}pohS",
            "\u{2066}x\u{2069}",
        ] {
            assert_eq!(MerchantName::parse(sneaky), Err(MerchantNameError::ControlCharacter), "{sneaky:?}");
        }
    }
}
