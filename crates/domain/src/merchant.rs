//! Merchants, their secret keys, and the rule that turns a presented key into a caller; and the
//! operator's use cases over them ([`MerchantService`]), which the CLI, the development banner,
//! the tests and the bench all go through. No I/O of its own: storage is the `MerchantStore` port.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::ids::{ApiKeyId, MerchantId};
use crate::livemode::Livemode;
use crate::ports::{Clock, MerchantStore, StoreError};
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

/// Why an operator's request about merchants and keys failed.
#[derive(Debug, thiserror::Error)]
pub enum MerchantError {
    /// The name breaks [`MerchantName`]'s rules.
    #[error(transparent)]
    InvalidName(#[from] MerchantNameError),
    /// No merchant has this id.
    #[error("no merchant {0}")]
    MerchantNotFound(MerchantId),
    /// No key has this id.
    #[error("no key {0}")]
    KeyNotFound(ApiKeyId),
    /// The key is revoked: it can be neither used nor rolled.
    #[error("{0} is revoked; make a new key with key create")]
    KeyRevoked(ApiKeyId),
    /// The key was rolled already (it has an expiry, past or to come): a key is rolled once, so
    /// that rolling it again cannot mint another secret.
    #[error(
        "{id} was rolled already: it {} at {}; a key is rolled once. To end it now, run \
         `key revoke {id}`; to replace its successor, roll the key that replaced it",
        if *.expired { "expired" } else { "expires" },
        crate::time::format_time(*.expires_at)
    )]
    KeyAlreadyRolled {
        /// The key.
        id: ApiKeyId,
        /// When it stops (or stopped) working.
        expires_at: DateTime<Utc>,
        /// Whether that is past already.
        expired: bool,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key that replaced another: the new key (its secret shown once) and the old one, which works
/// until its `expires_at`.
#[derive(Debug)]
pub struct RolledKey {
    /// The new key.
    pub key: ApiKeySummary,
    /// The new key's secret: shown once, never stored.
    pub secret: ApiKeySecret,
    /// The key it replaces, with its new expiry.
    pub previous: ApiKeySummary,
}

/// The operator's use cases: merchants and their secret keys. Every merchant and key is made
/// here, whoever asks (the CLI, the development banner, tests, the bench), so the name rules and
/// how a key is made hold for all of them.
#[derive(Clone)]
pub struct MerchantService {
    store: Arc<dyn MerchantStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MerchantService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerchantService").finish_non_exhaustive()
    }
}

impl MerchantService {
    /// Wires the use cases.
    pub fn new(store: Arc<dyn MerchantStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Creates an active merchant named `name` (see [`MerchantName`]).
    pub fn create_merchant(&self, name: &str) -> Result<Merchant, MerchantError> {
        let name = MerchantName::parse(name)?;
        let merchant = Merchant {
            id: MerchantId::new(),
            name: name.as_str().to_owned(),
            status: MerchantStatus::Active,
            created_at: self.clock.now(),
        };
        self.store.create_merchant(&merchant)?;
        Ok(merchant)
    }

    /// Every merchant, oldest first.
    pub fn merchants(&self) -> Result<Vec<Merchant>, MerchantError> {
        Ok(self.store.list_merchants()?)
    }

    /// Whether there is no merchant yet (a new database).
    pub fn no_merchants(&self) -> Result<bool, MerchantError> {
        Ok(self.store.count_merchants()? == 0)
    }

    /// Suspends (every key answers 403) or activates a merchant.
    pub fn set_status(&self, id: MerchantId, status: MerchantStatus) -> Result<Merchant, MerchantError> {
        self.store.set_merchant_status(id, status)?.ok_or(MerchantError::MerchantNotFound(id))
    }

    /// Makes a secret key for a merchant; the secret is returned once and only its hash is kept.
    pub fn create_key(
        &self,
        merchant_id: MerchantId,
        livemode: Livemode,
    ) -> Result<(ApiKeySummary, ApiKeySecret), MerchantError> {
        let (summary, secret) = self.new_key(merchant_id, livemode);
        if !self.store.create_api_key(&summary, &secret.hash())? {
            return Err(MerchantError::MerchantNotFound(merchant_id));
        }
        Ok((summary, secret))
    }

    /// Keys (never their secrets), oldest first: of one merchant, or of all. A merchant that does
    /// not exist is not found, rather than a merchant without keys.
    pub fn keys(&self, merchant: Option<MerchantId>) -> Result<Vec<ApiKeySummary>, MerchantError> {
        let keys = self.store.list_api_keys(merchant)?;
        match merchant {
            Some(id) if keys.is_empty() && !self.store.list_merchants()?.iter().any(|m| m.id == id) => {
                Err(MerchantError::MerchantNotFound(id))
            }
            _ => Ok(keys),
        }
    }

    /// Replaces a key with a new one of the same merchant and mode; the old one keeps working for
    /// `grace` (zero: not at all). A key is rolled once: one that is revoked, expiring or expired
    /// is refused, and nothing is made.
    pub fn roll_key(&self, id: ApiKeyId, grace: Duration) -> Result<RolledKey, MerchantError> {
        let old = self.rollable(id)?;
        let (key, secret) = self.new_key(old.merchant_id, old.livemode);
        match self.store.roll_api_key(id, self.clock.now() + grace, &key, &secret.hash())? {
            Some(previous) => Ok(RolledKey { key, secret, previous }),
            // Revoked or rolled by someone else between the look and the roll: say which.
            None => Err(self.rollable(id).err().unwrap_or(MerchantError::KeyRevoked(id))),
        }
    }

    /// The key `id` if it may be rolled: known, not revoked, not rolled already.
    fn rollable(&self, id: ApiKeyId) -> Result<ApiKeySummary, MerchantError> {
        let old = self.store.list_api_keys(None)?.into_iter().find(|k| k.id == id);
        let old = old.ok_or(MerchantError::KeyNotFound(id))?;
        if old.revoked_at.is_some() {
            return Err(MerchantError::KeyRevoked(id));
        }
        if let Some(expires_at) = old.expires_at {
            return Err(MerchantError::KeyAlreadyRolled { id, expires_at, expired: expires_at <= self.clock.now() });
        }
        Ok(old)
    }

    /// Revokes a key: it answers 403 from now on. Revoking again keeps the first time.
    pub fn revoke_key(&self, id: ApiKeyId) -> Result<ApiKeySummary, MerchantError> {
        self.store.revoke_api_key(id, self.clock.now())?.ok_or(MerchantError::KeyNotFound(id))
    }

    /// A fresh key and its summary, not yet stored.
    fn new_key(&self, merchant_id: MerchantId, livemode: Livemode) -> (ApiKeySummary, ApiKeySecret) {
        let secret = ApiKeySecret::generate(livemode);
        let summary = ApiKeySummary {
            id: ApiKeyId::new(),
            merchant_id,
            livemode,
            hint: secret.hint(),
            created_at: self.clock.now(),
            revoked_at: None,
            expires_at: None,
            last_used_at: None,
        };
        (summary, secret)
    }
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

    /// Merchants and keys in memory.
    #[derive(Default)]
    struct Memory {
        merchants: std::sync::Mutex<Vec<Merchant>>,
        keys: std::sync::Mutex<Vec<ApiKeySummary>>,
    }

    impl MerchantStore for Memory {
        fn find_api_key(&self, _: &crate::secret::SecretHash) -> Result<Option<ApiKeyRecord>, StoreError> {
            Ok(None)
        }

        fn create_merchant(&self, merchant: &Merchant) -> Result<(), StoreError> {
            self.merchants.lock().unwrap().push(merchant.clone());
            Ok(())
        }

        fn set_merchant_status(&self, id: MerchantId, status: MerchantStatus) -> Result<Option<Merchant>, StoreError> {
            let mut merchants = self.merchants.lock().unwrap();
            Ok(merchants.iter_mut().find(|m| m.id == id).map(|m| {
                m.status = status;
                m.clone()
            }))
        }

        fn create_api_key(&self, key: &ApiKeySummary, _: &crate::secret::SecretHash) -> Result<bool, StoreError> {
            if !self.merchants.lock().unwrap().iter().any(|m| m.id == key.merchant_id) {
                return Ok(false);
            }
            self.keys.lock().unwrap().push(key.clone());
            Ok(true)
        }

        fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<Option<ApiKeySummary>, StoreError> {
            let mut keys = self.keys.lock().unwrap();
            Ok(keys.iter_mut().find(|k| k.id == id).map(|k| {
                k.revoked_at.get_or_insert(at);
                k.clone()
            }))
        }

        fn count_merchants(&self) -> Result<i64, StoreError> {
            Ok(self.merchants.lock().unwrap().len() as i64)
        }

        fn list_merchants(&self) -> Result<Vec<Merchant>, StoreError> {
            Ok(self.merchants.lock().unwrap().clone())
        }

        fn list_api_keys(&self, merchant: Option<MerchantId>) -> Result<Vec<ApiKeySummary>, StoreError> {
            let keys = self.keys.lock().unwrap();
            Ok(keys.iter().filter(|k| merchant.is_none_or(|m| k.merchant_id == m)).cloned().collect())
        }

        fn roll_api_key(
            &self,
            old: ApiKeyId,
            old_expires_at: DateTime<Utc>,
            new: &ApiKeySummary,
            _: &crate::secret::SecretHash,
        ) -> Result<Option<ApiKeySummary>, StoreError> {
            let mut keys = self.keys.lock().unwrap();
            let Some(previous) =
                keys.iter_mut().find(|k| k.id == old && k.revoked_at.is_none() && k.expires_at.is_none())
            else {
                return Ok(None);
            };
            previous.expires_at = Some(old_expires_at);
            let previous = previous.clone();
            keys.push(new.clone());
            Ok(Some(previous))
        }

        fn record_key_use(&self, _: &[(ApiKeyId, DateTime<Utc>)]) -> Result<usize, StoreError> {
            Ok(0)
        }
    }

    struct At(DateTime<Utc>);

    impl Clock for At {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
    }

    fn service() -> (MerchantService, DateTime<Utc>) {
        let now = Utc::now();
        (MerchantService::new(Arc::new(Memory::default()), Arc::new(At(now))), now)
    }

    #[test]
    fn a_merchant_is_made_active_under_its_trimmed_name_at_the_clock_s_time() {
        let (merchants, now) = service();
        let made = merchants.create_merchant("  Drop Shop ").unwrap();
        assert_eq!((made.name.as_str(), made.status, made.created_at), ("Drop Shop", MerchantStatus::Active, now));
        assert!(matches!(merchants.create_merchant("\u{202E}"), Err(MerchantError::InvalidName(_))));
        assert_eq!(merchants.merchants().unwrap().len(), 1, "a refused name stores nothing");
        assert!(!merchants.no_merchants().unwrap());
        let suspended = merchants.set_status(made.id, MerchantStatus::Suspended).unwrap();
        assert_eq!(suspended.status, MerchantStatus::Suspended);
        let stranger = MerchantId::new();
        assert!(
            matches!(merchants.set_status(stranger, MerchantStatus::Active), Err(MerchantError::MerchantNotFound(id)) if id == stranger)
        );
    }

    #[test]
    fn a_key_is_made_for_a_known_merchant_in_its_mode_and_shown_once() {
        let (merchants, now) = service();
        let merchant = merchants.create_merchant("Drop Shop").unwrap();
        let (key, secret) = merchants.create_key(merchant.id, Livemode::Live).unwrap();
        assert_eq!((key.merchant_id, key.livemode, key.created_at), (merchant.id, Livemode::Live, now));
        assert_eq!((secret.livemode(), secret.hint()), (Livemode::Live, key.hint.clone()));
        assert_eq!(merchants.keys(Some(merchant.id)).unwrap().len(), 1);
        let unknown = MerchantId::new();
        assert!(matches!(merchants.keys(Some(unknown)), Err(MerchantError::MerchantNotFound(id)) if id == unknown));
        let keyless = merchants.create_merchant("No Keys Yet").unwrap();
        assert!(merchants.keys(Some(keyless.id)).unwrap().is_empty(), "a merchant without keys has none");
        let stranger = MerchantId::new();
        assert!(
            matches!(merchants.create_key(stranger, Livemode::Test), Err(MerchantError::MerchantNotFound(id)) if id == stranger)
        );
    }

    #[test]
    fn a_rolled_key_keeps_working_for_its_grace_and_a_revoked_one_cannot_be_rolled() {
        let (merchants, now) = service();
        let merchant = merchants.create_merchant("Drop Shop").unwrap();
        let (old, _) = merchants.create_key(merchant.id, Livemode::Test).unwrap();
        let rolled = merchants.roll_key(old.id, Duration::hours(1)).unwrap();
        assert_eq!(rolled.previous.expires_at, Some(now + Duration::hours(1)));
        assert_eq!((rolled.key.merchant_id, rolled.key.livemode), (merchant.id, Livemode::Test));
        assert_ne!(rolled.key.id, old.id);
        assert_eq!(rolled.secret.hint(), rolled.key.hint);

        let again = merchants.roll_key(old.id, Duration::zero());
        assert!(
            matches!(again, Err(MerchantError::KeyAlreadyRolled { id, expires_at, expired: false }) if id == old.id && expires_at == now + Duration::hours(1)),
            "a key is rolled once: {again:?}"
        );
        assert_eq!(merchants.keys(Some(merchant.id)).unwrap().len(), 2, "and the refused roll made no key");
        let successor = merchants.roll_key(rolled.key.id, Duration::zero()).unwrap();
        assert_eq!(successor.previous.expires_at, Some(now), "the new key can be rolled in its turn");
        assert!(
            matches!(
                merchants.roll_key(rolled.key.id, Duration::hours(1)),
                Err(MerchantError::KeyAlreadyRolled { expired: true, .. })
            ),
            "an expired key is not rolled either"
        );

        let revoked = merchants.revoke_key(old.id).unwrap();
        assert_eq!(revoked.revoked_at, Some(now));
        assert!(
            matches!(merchants.roll_key(old.id, Duration::zero()), Err(MerchantError::KeyRevoked(id)) if id == old.id)
        );
        let unknown = ApiKeyId::new();
        assert!(matches!(merchants.roll_key(unknown, Duration::zero()), Err(MerchantError::KeyNotFound(_))));
        assert!(matches!(merchants.revoke_key(unknown), Err(MerchantError::KeyNotFound(_))));
    }
}
