//! Ports: every thing the rules need from the outside world (storage, the payment provider, the
//! webhook sender, the clock, the wire shape of events), as traits that adapters implement.
//!
//! Calls are synchronous and may block; callers on an async runtime run them on a blocking pool.

use chrono::{DateTime, Utc};

use crate::claim::VerifiedClaim;
use crate::idempotency::{Fingerprint, IdempotencyKey, IdempotencyRecord, IdempotencyScope, StoredOutcome};
use crate::ids::{ApiKeyId, EndpointId, EventId, MerchantId, OrderId, PaymentId};
use crate::livemode::Livemode;
use crate::merchant::{ApiKeyRecord, ApiKeySummary, Caller, Merchant, MerchantStatus};
use crate::order::{Mode, Order, Transition};
use crate::payment::{Charge, ChargeLookup, ChargeResult, ProviderError};
use crate::secret::SecretHash;
use crate::webhook::{Added, AttemptEnd, DeliveryRecord, Due, Endpoint, EventType, NewEvent};

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

/// A per-merchant request limit, asked once a key is known to belong to an active merchant and
/// before anything is done on its behalf. Unknown or refused keys never reach it, so they cannot
/// make a merchant's budget grow or shrink.
pub trait MerchantLimit: Send + Sync {
    /// `Err(wait)` when `caller`'s merchant, in its mode, must wait that long.
    fn admit(&self, caller: &Caller) -> Result<(), std::time::Duration>;
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

/// Everything a new order writes, in one transaction: the order, its lines, payment and session,
/// its idempotency record and its `order.created` event.
#[derive(Debug, Clone)]
pub struct NewOrderRecords {
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
    pub event: NewEvent,
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
    fn redeem(&self, checkout: &NewOrderRecords) -> Result<Redemption, StoreError>;

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

/// Orders as the page, the merchant API and the sweeper need them.
pub trait OrderStore: Send + Sync {
    /// The checkout behind a page token.
    fn find_by_token(&self, token_hash: &SecretHash) -> Result<Option<Order>, StoreError>;

    /// A merchant's order, in the caller's mode only.
    fn find_order(
        &self,
        merchant_id: MerchantId,
        livemode: Livemode,
        order_id: OrderId,
    ) -> Result<Option<Order>, StoreError>;

    /// In one transaction: applies `change` if the order is still at `change.version` (moving it to
    /// the next version), records its attempt change and writes its events to the webhook outbox;
    /// `false`, with nothing written, if the order had moved on.
    fn transition(&self, order_id: OrderId, change: Transition<'_>) -> Result<bool, StoreError>;

    /// [`transition`](Self::transition) for each of `changes`, all in one transaction (one write
    /// for many orders, as the sweeper makes them): each applies only if its order is still at its
    /// version, and one that had moved on leaves the others alone. Whether each applied, in order.
    fn transitions(&self, changes: &[(OrderId, Transition<'_>)]) -> Result<Vec<bool>, StoreError>;

    /// Checkouts whose open session ended at or before `now` and that no charge is running for, at
    /// most `limit` of them.
    fn due_for_expiry(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Order>, StoreError>;

    /// Checkouts whose payment has been `processing` since `before` or longer: a charge whose
    /// answer was never recorded (its process died, or the provider is slow).
    fn stuck_charges(&self, before: DateTime<Utc>, limit: i64) -> Result<Vec<Order>, StoreError>;

    /// Charges that moved money for a checkout that they do not pay (outcome `refund_pending`),
    /// with their attempt ids, at most `limit` of them.
    fn stray_charges(&self, limit: i64) -> Result<Vec<(Order, String)>, StoreError>;
}

/// Moves money. Implemented by an adapter per provider (the sandbox is one). Every call is
/// idempotent per attempt id, which is also the provider's idempotency key. The rules below are
/// what keeps money safe when processes die mid-charge and replicas race; an adapter's own tests
/// must check each of them (the HTTP money tests drive the sandbox).
///
/// One provider serves all attempts: `lookup` and `refund` go to the provider configured now,
/// whatever an attempt's stored `provider` says. Switch providers only while no payment is
/// `processing` and no attempt is `refund_pending`.
pub trait PaymentProvider: Send + Sync {
    /// A short name, stored with each attempt.
    fn name(&self) -> &'static str;

    /// Whether it may charge in this mode (the sandbox refuses live mode). The page refuses to
    /// charge an order of a mode the provider does not support.
    fn supports(&self, livemode: Livemode) -> bool;

    /// Charges the card once per `charge.attempt_id`: a second call with the same id answers what
    /// the first did and moves no money.
    /// - `Ok(Approved)` / `Ok(Declined(code))`: the provider's answer. A decline counts towards
    ///   `CHECKOUT_PAY_ATTEMPTS_MAX`, so an outage must never be reported as a decline.
    /// - `Err`: **nothing was charged**, and the attempt is never looked up again. A timeout after
    ///   the request went out is not that: wait for the answer, or ask [`Self::lookup`], and only
    ///   then answer.
    /// - Answer well within `sweeper::STUCK_AFTER_SECONDS` (120 s): after that the sweeper asks
    ///   `lookup` about the attempt.
    ///
    /// Card numbers and CVCs never reach a log or a [`ProviderError`] (it is logged).
    fn charge(&self, charge: &Charge<'_>) -> Result<ChargeResult, ProviderError>;

    /// What became of the charge made under `attempt_id`: asked when the process that made it died
    /// before recording the answer, from whichever replica sweeps.
    /// - what the provider recorded, `Pending` while the charge still runs;
    /// - `NotFound` only for an attempt the provider never saw: the payment is then freed for a
    ///   new charge, so a wrong `NotFound` can charge twice;
    /// - `Err` when it cannot tell now: the next sweep asks again.
    fn lookup(&self, attempt_id: &str) -> Result<ChargeLookup, ProviderError>;

    /// Gives back the whole of a charge that succeeded (a void before settlement, a refund after:
    /// whichever the provider does). Giving back twice gives back once, and answers `Ok` again (the
    /// sweeper repeats a refund whose recording was lost); `Err` means nothing went back yet, and
    /// it is retried.
    fn refund(&self, attempt_id: &str) -> Result<(), ProviderError>;
}

/// Endpoints, and the deliveries the dispatcher works through.
pub trait WebhookStore: Send + Sync {
    /// Adds an endpoint, unless its merchant already has `max` endpoints (not removed) in its mode.
    fn add_endpoint(&self, endpoint: &Endpoint, max: i64) -> Result<Added, StoreError>;

    /// Endpoints not removed, of one merchant and mode or of all.
    fn endpoints(&self, owner: Option<(MerchantId, Livemode)>) -> Result<Vec<Endpoint>, StoreError>;

    /// Removes an endpoint (of `owner`, when given) and cancels its pending deliveries; `false` if
    /// there was none.
    fn remove_endpoint(
        &self,
        id: EndpointId,
        owner: Option<(MerchantId, Livemode)>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Enables an endpoint that is not removed (of `owner`, when given), or disables it, in one
    /// transaction:
    /// - enabling sets its status `enabled` and clears its `disabled_reason`; no delivery changes
    ///   (those cancelled while it was disabled stay cancelled until resent);
    /// - disabling an enabled endpoint sets its status `disabled` with `disabled_reason` and
    ///   cancels its pending deliveries, as a `410 Gone` does; one disabled already keeps its
    ///   first reason.
    ///
    /// Returns the endpoint as it is then; `None` if there is no such endpoint (nothing changes).
    fn set_endpoint_enabled(
        &self,
        id: EndpointId,
        owner: Option<(MerchantId, Livemode)>,
        enabled: bool,
        disabled_reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Endpoint>, StoreError>;

    /// Moves an endpoint to the next secret version; the previous one signs until `previous_until`.
    fn rotate_secret(
        &self,
        id: EndpointId,
        previous_until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Option<Endpoint>, StoreError>;

    /// Enabled endpoints whose oldest pending delivery is due at `now` and held by no dispatcher,
    /// at most `limit` of them, longest waiting first.
    fn due_endpoints(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<EndpointId>, StoreError>;

    /// Leases until `lease_until` up to `most` of `endpoint`'s oldest pending deliveries, in order:
    /// from its oldest on, those that are due at `now` and held by nobody, if the endpoint is
    /// enabled. A compare-and-set, so one delivery is never in flight twice, and an endpoint
    /// receives its events in the order they happened. Empty when its oldest is not due, or
    /// another dispatcher holds it.
    fn lease_next(
        &self,
        endpoint: EndpointId,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        most: i64,
    ) -> Result<Vec<Due>, StoreError>;

    /// Records, in one transaction, how the attempts of one endpoint ended (on `Gone` disabling
    /// the endpoint and cancelling its other pending deliveries), and lets go of the leased
    /// deliveries in `unsent`. A delivery cancelled meanwhile stays cancelled unless it arrived.
    fn record_attempts(&self, ends: &[(Due, AttemptEnd)], unsent: &[Due], at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Deliveries, newest first, optionally of one status.
    fn deliveries(&self, status: Option<&str>, limit: i64) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Makes an event's deliveries to enabled endpoints pending again, due now; returns how many.
    fn resend(&self, event: EventId, now: DateTime<Utc>) -> Result<usize, StoreError>;
}

/// Posts a delivery. Implemented by an HTTP adapter with timeouts and no redirects.
pub trait WebhookSender: Send + Sync {
    /// Posts `body` to `url` with `headers`; the status, or why there was none.
    fn send(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> Result<u16, String>;
}

/// Writes the JSON envelope of a webhook event, exactly as it is delivered (the wire shape is the
/// API's, not the domain's).
pub trait Envelopes: Send + Sync {
    /// The envelope of event `id` of `event_type`, about `order` as it stands, at `at`.
    fn envelope(&self, id: EventId, event_type: EventType, order: &Order, at: DateTime<Utc>) -> String;
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
    /// Callers waiting for a connection.
    pub queued: u32,
    /// Callers refused since start because their wait would have exceeded the queue timeout.
    pub refused: u64,
}

/// What operators ask of storage.
pub trait Diagnostics: Send + Sync {
    /// Whether the database answers and every migration is applied.
    fn ready(&self) -> Result<(), StoreError>;

    /// The connection pools' occupancy.
    fn pools(&self) -> Vec<PoolStats>;
}
