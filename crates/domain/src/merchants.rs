//! The operator's use cases for merchants and their secret keys (make, list, suspend, roll,
//! revoke): every merchant and key is made here, whoever asks (the CLI, the development banner,
//! tests, the bench), so the name rules and how a key is made hold for all of them.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::ids::{ApiKeyId, MerchantId};
use crate::livemode::Livemode;
use crate::merchant::{ApiKeySummary, Merchant, MerchantName, MerchantNameError, MerchantStatus};
use crate::ports::{Clock, MerchantStore, StoreError};
use crate::secret::ApiKeySecret;

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
    use crate::merchant::ApiKeyRecord;

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
