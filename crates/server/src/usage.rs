//! "Last used" for secret keys without a write on a request's path: the checkout store is wrapped
//! so that each key its one read finds usable is noted in memory ([`KeyUsage`]); the sweep writes
//! the notes in one transaction per replica and interval. Only the lookup is watched; every other
//! call passes straight through.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::idempotency::IdempotencyKey;
use domain::ports::{CheckoutStore, KeyLookup, NewOrderRecords, Redemption, StoreError};
use domain::secret::SecretHash;
use persistence::KeyUsage;

/// A [`CheckoutStore`] that notes the keys its lookups find.
pub struct NotingKeyUse {
    inner: Arc<dyn CheckoutStore>,
    usage: Arc<KeyUsage>,
}

impl NotingKeyUse {
    /// Wraps `inner`, noting in `usage`.
    pub fn new(inner: Arc<dyn CheckoutStore>, usage: Arc<KeyUsage>) -> Self {
        Self { inner, usage }
    }
}

impl std::fmt::Debug for NotingKeyUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotingKeyUse").finish_non_exhaustive()
    }
}

impl CheckoutStore for NotingKeyUse {
    fn lookup(
        &self,
        hash: &SecretHash,
        idempotency_key: &IdempotencyKey,
        stale_before: DateTime<Utc>,
    ) -> Result<Option<KeyLookup>, StoreError> {
        let found = self.inner.lookup(hash, idempotency_key, stale_before)?;
        if let Some(found) = &found {
            self.usage.note(&found.key, Utc::now());
        }
        Ok(found)
    }

    fn redeem(&self, checkout: &NewOrderRecords) -> Result<Redemption, StoreError> {
        self.inner.redeem(checkout)
    }

    fn purge_idempotency(&self, stale_before: DateTime<Utc>) -> Result<usize, StoreError> {
        self.inner.purge_idempotency(stale_before)
    }
}
