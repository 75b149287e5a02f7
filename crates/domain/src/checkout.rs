//! The checkout use case: a verified claim becomes an order, a pending payment and a checkout
//! session, exactly once per idempotency key.

use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::claim::{ClaimError, ClaimKeys};
use crate::idempotency::{decide, Decision, Fingerprint, IdempotencyKey, StoredOutcome};
use crate::ids::{OrderId, PaymentId};
use crate::merchant::{authorize, AuthError};
use crate::order::Mode;
use crate::ports::MerchantStore;
use crate::ports::{CheckoutStore, Clock, IdempotencyScope, NewCheckout, Redemption, StoreError};
use crate::secret::{base62, ApiKeySecret, Secret, SecretHash};

/// An absolute `http(s)` URL the consumer is sent back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnUrl(String);

/// Why a return URL is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReturnUrlError {
    /// Not an absolute `http` or `https` URL with a host.
    #[error("must be an absolute http or https URL")]
    NotHttp,
    /// `http` where production requires `https`.
    #[error("must use https")]
    HttpsRequired,
}

impl ReturnUrl {
    /// Accepts absolute `http(s)` URLs with a host; `https` only when `require_https`.
    pub fn parse(url: &str, require_https: bool) -> Result<Self, ReturnUrlError> {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        let rest = if lower.starts_with("https://") {
            &url[8..]
        } else if lower.starts_with("http://") {
            if require_https {
                return Err(ReturnUrlError::HttpsRequired);
            }
            &url[7..]
        } else {
            return Err(ReturnUrlError::NotHttp);
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ReturnUrlError::NotHttp);
        }
        Ok(Self(url.to_owned()))
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A `POST /checkout` body, parsed into domain values.
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    /// The compact JWS, verified later (after the idempotency fast path).
    pub checkout_claim: String,
    /// Hosted or embedded.
    pub mode: Mode,
    /// Where the consumer goes after paying.
    pub success_url: ReturnUrl,
    /// Where the consumer goes after cancelling.
    pub cancel_url: ReturnUrl,
    /// The merchant's idempotency key.
    pub idempotency_key: IdempotencyKey,
}

/// The body of a successful `POST /checkout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutSession {
    /// `ord_…`
    pub order_id: String,
    /// `pay_…`
    pub payment_id: String,
    /// The page where the consumer pays.
    pub checkout_url: String,
    /// RFC 3339 UTC with milliseconds.
    pub expires_at: String,
}

/// A recorded outcome of `POST /checkout`, fresh or replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// What happened.
    pub outcome: Outcome,
    /// Whether this is the stored answer to an earlier request with the same key.
    pub replayed: bool,
}

/// The outcomes worth recording under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An order was created.
    Created(CheckoutSession),
    /// The claim backs another open order (409).
    ClaimAlreadyRedeemed,
}

/// Failures that are not recorded: retrying may give another answer.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// The secret key may not act (401 or 403).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The claim did not verify (400).
    #[error(transparent)]
    InvalidClaim(#[from] ClaimError),
    /// The key was used for another request (422).
    #[error("this idempotency key was already used with a different request")]
    KeyReused,
    /// A request with this key is still running (409).
    #[error("a request with this idempotency key is still in progress")]
    KeyInProgress,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes checkout page URLs. The token is an HMAC of the order id under a server secret: it cannot
/// be guessed, only its hash is stored, and a replayed response can carry the same URL again.
#[derive(Debug, Clone)]
pub struct CheckoutUrls {
    public_url: String,
    secret: Secret,
}

impl CheckoutUrls {
    /// `public_url` without a trailing slash is the base of every page URL.
    pub fn new(public_url: &str, secret: Secret) -> Self {
        Self { public_url: public_url.trim_end_matches('/').to_owned(), secret }
    }

    /// The page token of an order.
    pub fn token(&self, order_id: &str) -> Secret {
        // HMAC accepts keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"checkout-session:");
        mac.update(order_id.as_bytes());
        Secret::new(base62(&mac.finalize().into_bytes(), 43))
    }

    /// The page URL of an order.
    pub fn url(&self, mode: Mode, order_id: &str) -> String {
        let path = match mode {
            Mode::Hosted => "c",
            Mode::Embedded => "embed",
        };
        format!("{}/{path}/{}", self.public_url, self.token(order_id).expose())
    }
}

/// Settings of the use case.
#[derive(Debug, Clone)]
pub struct CheckoutSettings {
    /// How long a session lives at most (it never outlives its claim).
    pub session_ttl: Duration,
    /// How long an idempotency key's outcome is replayed.
    pub idempotency_ttl: Duration,
}

/// `POST /checkout`, as a use case over the ports.
#[derive(Clone)]
pub struct CheckoutService {
    store: Arc<dyn CheckoutStore>,
    clock: Arc<dyn Clock>,
    claim_keys: Arc<ClaimKeys>,
    urls: CheckoutUrls,
    settings: CheckoutSettings,
}

impl std::fmt::Debug for CheckoutService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckoutService")
            .field("claim_keys", &self.claim_keys)
            .field("urls", &self.urls)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl CheckoutService {
    /// Wires the use case.
    pub fn new(
        store: Arc<dyn CheckoutStore>,
        clock: Arc<dyn Clock>,
        claim_keys: ClaimKeys,
        urls: CheckoutUrls,
        settings: CheckoutSettings,
    ) -> Self {
        Self { store, clock, claim_keys: Arc::new(claim_keys), urls, settings }
    }

    /// Creates a checkout for the merchant of `key`, or answers as the first request with the same
    /// idempotency key did. Authentication and the replay lookup are one read.
    pub fn create(&self, key: &ApiKeySecret, request: CheckoutRequest) -> Result<Answer, CheckoutError> {
        let now = self.clock.now();
        let stale_before = now - self.settings.idempotency_ttl;
        let found = self.store.lookup(&key.hash(), &request.idempotency_key, stale_before)?;
        let caller = authorize(key, found.as_ref().map(|f| f.key.clone()))?;
        let fingerprint = Fingerprint::of(&request);
        if let Some(record) = found.and_then(|f| f.record) {
            return self.replay(decide(record, &fingerprint));
        }
        let scope = IdempotencyScope {
            merchant_id: caller.merchant_id,
            livemode: caller.livemode,
            key: request.idempotency_key.clone(),
        };
        let claim = self.claim_keys.verify(&request.checkout_claim, caller.merchant_id, now)?;
        let expires_at = (now + self.settings.session_ttl)
            .min(claim.expires_at)
            .duration_trunc(Duration::milliseconds(1))
            .unwrap_or(claim.expires_at);
        if expires_at <= now {
            return Err(ClaimError::Expired(claim.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)).into());
        }
        let order_id = OrderId::new();
        let payment_id = PaymentId::new();
        let outcome = StoredOutcome::Created {
            order_id: order_id.to_string(),
            payment_id: payment_id.to_string(),
            mode: request.mode,
            expires_at: format_time(expires_at),
        };
        let checkout = NewCheckout {
            token_hash: SecretHash::of(self.urls.token(&order_id.to_string()).expose()),
            scope,
            fingerprint: fingerprint.clone(),
            outcome: outcome.clone(),
            order_id,
            payment_id,
            claim,
            mode: request.mode,
            success_url: request.success_url.as_str().to_owned(),
            cancel_url: request.cancel_url.as_str().to_owned(),
            expires_at,
            created_at: now,
            stale_before,
        };
        match self.store.redeem(&checkout)? {
            Redemption::Created => Ok(self.answer(outcome, false)),
            Redemption::ClaimAlreadyRedeemed => Ok(self.answer(StoredOutcome::ClaimAlreadyRedeemed, false)),
            Redemption::KeyTaken(record) => self.replay(decide(record, &fingerprint)),
            Redemption::KeyInProgress => Err(CheckoutError::KeyInProgress),
        }
    }

    fn replay(&self, decision: Decision) -> Result<Answer, CheckoutError> {
        match decision {
            Decision::Replay(outcome) => Ok(self.answer(outcome, true)),
            Decision::KeyReused => Err(CheckoutError::KeyReused),
        }
    }

    fn answer(&self, outcome: StoredOutcome, replayed: bool) -> Answer {
        let outcome = match outcome {
            StoredOutcome::Created { order_id, payment_id, mode, expires_at } => Outcome::Created(CheckoutSession {
                checkout_url: self.urls.url(mode, &order_id),
                order_id,
                payment_id,
                expires_at,
            }),
            StoredOutcome::ClaimAlreadyRedeemed => Outcome::ClaimAlreadyRedeemed,
        };
        Answer { outcome, replayed }
    }
}

/// Checks a presented key on its own: for requests refused before the use case runs, which must
/// still answer 401 or 403 ahead of any complaint about their body.
pub fn authenticate(merchants: &dyn MerchantStore, key: &ApiKeySecret) -> Result<(), CheckoutError> {
    authorize(key, merchants.find_api_key(&key.hash())?)?;
    Ok(())
}

/// RFC 3339 UTC with milliseconds: `2026-11-25T10:30:00.000Z`.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}
