//! Ports: what the rules need from the outside world, as traits that adapters implement.
//!
//! Calls are synchronous and may block; callers on an async runtime run them on a blocking pool.

use chrono::{DateTime, Utc};

use crate::claim::VerifiedClaim;
use crate::idempotency::{Fingerprint, IdempotencyKey, IdempotencyRecord, StoredOutcome};
use crate::ids::{ApiKeyId, MerchantId, OrderId, PaymentId};
use crate::livemode::Livemode;
use crate::merchant::{ApiKeyRecord, ApiKeySummary, Merchant, MerchantStatus};
use crate::order::Mode;
use crate::secret::SecretHash;

/// A storage failure, sorted by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded: retrying later may succeed.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or a broken database. Logged, never shown.
    #[error("unexpected database error: {0}")]
    Unexpected(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The current time, injectable so that expiry rules can be tested.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
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

/// Everything one successful checkout writes, in one transaction.
#[derive(Debug, Clone)]
pub struct NewCheckout {
    /// Under which key the outcome is recorded.
    pub scope: IdempotencyScope,
    /// The request's fingerprint, stored with the key.
    pub fingerprint: Fingerprint,
    /// The outcome recorded if the order is created.
    pub outcome: StoredOutcome,
    /// The new order's id.
    pub order_id: OrderId,
    /// The new pending payment's id.
    pub payment_id: PaymentId,
    /// What is sold, from the verified claim.
    pub claim: VerifiedClaim,
    /// Hosted or embedded.
    pub mode: Mode,
    /// Where the consumer goes after paying.
    pub success_url: String,
    /// Where the consumer goes after cancelling.
    pub cancel_url: String,
    /// SHA-256 of the checkout page token.
    pub token_hash: SecretHash,
    /// When the session ends (millisecond precision).
    pub expires_at: DateTime<Utc>,
    /// Now.
    pub created_at: DateTime<Utc>,
    /// Records under the key made at or before this are past retention and may be replaced.
    pub stale_before: DateTime<Utc>,
    /// `order.created`, for the webhook outbox.
    pub event: crate::webhook::NewEvent,
}

/// What became of a redemption attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// Order, payment and session were created and the outcome recorded under the key.
    Created,
    /// The claim backs another open order; that outcome was recorded under the key.
    ClaimAlreadyRedeemed,
    /// The key already had a record (a concurrent or earlier request); nothing was written.
    KeyTaken(IdempotencyRecord),
    /// Another request holding the key did not finish within the wait.
    KeyInProgress,
}

/// What one read finds for a request: the presented secret key (with its merchant's status) and the
/// record stored under the request's idempotency key in that key's merchant and mode.
#[derive(Debug, Clone)]
pub struct KeyLookup {
    /// The key whose secret hashes to the presented one.
    pub key: ApiKeyRecord,
    /// The record under the idempotency key, if one was made since the retention cutoff.
    pub record: Option<IdempotencyRecord>,
}

/// Orders, payments, sessions and idempotency records.
pub trait CheckoutStore: Send + Sync {
    /// In one read: the key whose secret hashes to `hash` and the record stored under
    /// `idempotency_key` for that key's merchant and mode, ignoring records made at or before
    /// `stale_before`. This is the whole of a replay's storage work.
    fn lookup(
        &self,
        hash: &SecretHash,
        idempotency_key: &IdempotencyKey,
        stale_before: DateTime<Utc>,
    ) -> Result<Option<KeyLookup>, StoreError>;

    /// In one transaction: takes the key (waiting briefly for a concurrent holder; a record made at or
    /// before `checkout.stale_before` is replaced), then creates the order unless its claim already
    /// backs an open, unexpired one; records the outcome either way. A pending order past its expiry
    /// is marked expired on the way, which frees its claim.
    fn redeem(&self, checkout: &NewCheckout) -> Result<Redemption, StoreError>;

    /// Deletes idempotency records made at or before `stale_before`; returns how many.
    fn purge_idempotency(&self, stale_before: DateTime<Utc>) -> Result<usize, StoreError>;
}

/// Merchants and their keys.
pub trait MerchantStore: Send + Sync {
    /// The key whose secret hashes to `hash`, with its merchant's status.
    fn find_api_key(&self, hash: &SecretHash) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Creates an active merchant.
    fn create_merchant(&self, merchant: &Merchant) -> Result<(), StoreError>;

    /// Sets a merchant's status; `None` if there is no such merchant.
    fn set_merchant_status(&self, id: MerchantId, status: MerchantStatus) -> Result<Option<Merchant>, StoreError>;

    /// Stores a new key (its hash only); `false` if the merchant does not exist.
    fn create_api_key(&self, key: &ApiKeySummary, hash: &SecretHash) -> Result<bool, StoreError>;

    /// Revokes a key; `None` if there is no such key. Revoking twice keeps the first time.
    fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<Option<ApiKeySummary>, StoreError>;

    /// How many merchants exist (zero on a new database).
    fn count_merchants(&self) -> Result<i64, StoreError>;

    /// Every merchant, oldest first.
    fn list_merchants(&self) -> Result<Vec<Merchant>, StoreError>;

    /// Keys (never their secrets), oldest first: of one merchant, or of all.
    fn list_api_keys(&self, merchant: Option<MerchantId>) -> Result<Vec<ApiKeySummary>, StoreError>;

    /// In one transaction: stores `new` (its hash only) and makes the key `old` expire at
    /// `old_expires_at`, if `old` is neither revoked nor rolled already (it has no expiry): a key is
    /// rolled once. `None` otherwise (nothing is written then), so that of two rolls of one key
    /// that race, one makes a new key.
    fn roll_api_key(
        &self,
        old: ApiKeyId,
        old_expires_at: DateTime<Utc>,
        new: &ApiKeySummary,
        hash: &SecretHash,
    ) -> Result<Option<ApiKeySummary>, StoreError>;

    /// Records when keys were last used (a later time recorded before is kept); returns how many
    /// keys changed.
    fn record_key_use(&self, uses: &[(ApiKeyId, DateTime<Utc>)]) -> Result<usize, StoreError>;
}

/// Connections of one pool, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Which pool.
    pub name: &'static str,
    /// Checked out now.
    pub in_use: u32,
    /// Open and waiting.
    pub idle: u32,
}

/// What operators ask of storage.
pub trait Diagnostics: Send + Sync {
    /// Whether the database answers and every migration is applied.
    fn ready(&self) -> Result<(), StoreError>;

    /// The connection pools' occupancy.
    fn pools(&self) -> Vec<PoolStats>;
}
