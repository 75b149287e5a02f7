//! Merchants, their secret keys, and the rule that turns a presented key into a caller.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::{ApiKeyId, MerchantId};
use crate::secret::{ApiKeyFormatError, ApiKeySecret};

/// Test or live: keys, orders and idempotency records of one never see the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Livemode {
    /// Sandbox data, made with `sk_test_…` keys.
    Test,
    /// Real money, made with `sk_live_…` keys.
    Live,
}

impl Livemode {
    /// `true` for live mode, as stored.
    pub fn is_live(self) -> bool {
        self == Livemode::Live
    }

    /// From the stored flag.
    pub fn from_live(live: bool) -> Self {
        if live {
            Livemode::Live
        } else {
            Livemode::Test
        }
    }
}

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
    #[serde(serialize_with = "crate::checkout::serialize_time")]
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
    #[serde(serialize_with = "crate::checkout::serialize_time")]
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    #[serde(serialize_with = "crate::checkout::serialize_optional_time")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it stops working because it was rolled, if it was.
    #[serde(serialize_with = "crate::checkout::serialize_optional_time")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it last authenticated a request, as recorded (in batches, so up to a minute late).
    #[serde(serialize_with = "crate::checkout::serialize_optional_time")]
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

/// Decides whether the key found for a presented secret may act now.
pub fn authorize(presented: &ApiKeySecret, found: Option<ApiKeyRecord>) -> Result<Caller, AuthError> {
    authorize_at(presented, found, Utc::now())
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
        assert!(matches!(authorize(&key, None), Err(AuthError::Unauthenticated(_))));

        let mut revoked = record(&key);
        revoked.revoked_at = Some(Utc::now());
        assert!(matches!(authorize(&key, Some(revoked)), Err(AuthError::Forbidden(_))));

        let mut suspended = record(&key);
        suspended.merchant_status = MerchantStatus::Suspended;
        assert!(matches!(authorize(&key, Some(suspended)), Err(AuthError::Forbidden(_))));

        let caller = authorize(&key, Some(record(&key)));
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
}
