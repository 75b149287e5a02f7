//! The checkout use case: a verified claim becomes an order, a pending payment and a checkout
//! session, exactly once per idempotency key.

use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::claim::VerifiedClaim;
use crate::claim::{ClaimError, ClaimKeys};
use crate::idempotency::{decide, Decision, Fingerprint, IdempotencyKey, IdempotencyScope, StoredOutcome};
use crate::ids::{MerchantId, OrderId, PaymentId};
use crate::livemode::Livemode;
use crate::merchant::{authorize_at, AuthError, Caller};
use crate::order::Mode;
use crate::order::{Order, OrderState};
use crate::orders::event;
use crate::ports::{CheckoutStore, Clock, Envelopes, NewOrderRecords, Redemption, StoreError};
use crate::ports::{MerchantLimit, MerchantStore};
use crate::secret::{base62, ApiKeySecret, Secret, SecretHash};
use crate::time::format_time;
use crate::web_url::WebUrl;
use crate::webhook::EventType;

/// A `POST /checkout` body, parsed into domain values.
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    /// The compact JWS, verified later (after the idempotency fast path).
    pub checkout_claim: String,
    /// Hosted or embedded.
    pub mode: Mode,
    /// Where the consumer goes after paying.
    pub success_url: WebUrl,
    /// Where the consumer goes after cancelling.
    pub cancel_url: WebUrl,
    /// The merchant's idempotency key.
    pub idempotency_key: IdempotencyKey,
}

impl CheckoutRequest {
    /// What a replay must match: every field but the key itself. The destructuring names every
    /// field, so a new one does not compile until it is either fingerprinted or said not to be.
    fn fingerprint(&self) -> Fingerprint {
        let Self { checkout_claim, mode, success_url, cancel_url, idempotency_key: _ } = self;
        Fingerprint::of("POST /checkout", &[checkout_claim, mode.as_str(), success_url.as_str(), cancel_url.as_str()])
    }
}

/// What a successful `POST /checkout` made: the order, its payment and the page to pay on, as
/// first answered (a replay answers the very same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedCheckout {
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
    /// The merchant it was given to.
    pub merchant_id: MerchantId,
}

/// The outcomes worth recording under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An order was created.
    Created(CreatedCheckout),
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
    /// The merchant is over its request rate (429); nothing was read or written for it. Carries
    /// how long to wait.
    #[error("too many requests for this merchant")]
    RateLimited(std::time::Duration),
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

    /// HMAC-SHA-256 of `purpose` and `data` under the secret, as 43 base62 characters.
    fn mac(&self, purpose: &[u8], data: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(purpose);
        mac.update(data.as_bytes());
        base62(&mac.finalize().into_bytes(), 43)
    }

    /// The page token of an order.
    pub fn token(&self, order_id: &str) -> Secret {
        Secret::new(self.mac(b"checkout-session:", order_id))
    }

    /// The token a page's forms carry back, so that only forms this service rendered for this
    /// page are accepted.
    pub fn form_token(&self, page_token: &str) -> String {
        self.mac(b"checkout-form:", page_token)
    }

    /// Whether `presented` is the form token of `page_token` (compared in constant time).
    pub fn verify_form_token(&self, page_token: &str, presented: &str) -> bool {
        let expected = self.form_token(page_token);
        expected.len() == presented.len()
            && expected.bytes().zip(presented.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// The public base URL, without a trailing slash.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The page URL of an order.
    pub fn url(&self, mode: Mode, order_id: &str) -> String {
        format!("{}{}/{}", self.public_url, mode.page_path(), self.token(order_id).expose())
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
    envelopes: Arc<dyn Envelopes>,
    limit: Option<Arc<dyn MerchantLimit>>,
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
        envelopes: Arc<dyn Envelopes>,
    ) -> Self {
        Self { store, clock, claim_keys: Arc::new(claim_keys), urls, settings, envelopes, limit: None }
    }

    /// Asks `limit` before each request of an authenticated merchant.
    pub fn with_limit(mut self, limit: Arc<dyn MerchantLimit>) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Creates a checkout for the merchant of `key`, or answers as the first request with the same
    /// idempotency key did. Authentication and the replay lookup are one read.
    pub fn create(&self, key: &ApiKeySecret, request: CheckoutRequest) -> Result<Answer, CheckoutError> {
        let now = self.clock.now();
        let stale_before = now - self.settings.idempotency_ttl;
        let found = self.store.lookup(&key.hash(), &request.idempotency_key, stale_before)?;
        let caller = authorize_at(key, found.as_ref().map(|f| f.key.clone()), now)?;
        if let Some(limit) = &self.limit {
            limit.admit(&caller).map_err(CheckoutError::RateLimited)?;
        }
        let fingerprint = request.fingerprint();
        if let Some(record) = found.and_then(|f| f.record) {
            return self.replay(caller.merchant_id, decide(record, &fingerprint));
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
        let opened = opened_order(
            order_id,
            payment_id,
            caller.merchant_id,
            caller.livemode,
            &claim,
            request.mode,
            (request.success_url.as_str(), request.cancel_url.as_str()),
            expires_at,
            now,
        );
        let event = event(&*self.envelopes, EventType::OrderCreated, &opened, now);
        let checkout = NewOrderRecords {
            event,
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
            Redemption::Created => Ok(self.answer(caller.merchant_id, outcome, false)),
            Redemption::ClaimAlreadyRedeemed => {
                Ok(self.answer(caller.merchant_id, StoredOutcome::ClaimAlreadyRedeemed, false))
            }
            Redemption::KeyTaken(record) => self.replay(caller.merchant_id, decide(record, &fingerprint)),
            Redemption::KeyInProgress => Err(CheckoutError::KeyInProgress),
        }
    }

    /// Deletes idempotency records past the retention window; returns how many. Safe to run on
    /// several replicas at once.
    pub fn purge_idempotency(&self) -> Result<usize, StoreError> {
        self.store.purge_idempotency(self.clock.now() - self.settings.idempotency_ttl)
    }

    fn replay(&self, merchant_id: MerchantId, decision: Decision) -> Result<Answer, CheckoutError> {
        match decision {
            Decision::Replay(outcome) => Ok(self.answer(merchant_id, outcome, true)),
            Decision::KeyReused => Err(CheckoutError::KeyReused),
        }
    }

    fn answer(&self, merchant_id: MerchantId, outcome: StoredOutcome, replayed: bool) -> Answer {
        let outcome = match outcome {
            StoredOutcome::Created { order_id, payment_id, mode, expires_at } => Outcome::Created(CreatedCheckout {
                checkout_url: self.urls.url(mode, &order_id),
                order_id,
                payment_id,
                expires_at,
            }),
            StoredOutcome::ClaimAlreadyRedeemed => Outcome::ClaimAlreadyRedeemed,
        };
        Answer { outcome, replayed, merchant_id }
    }
}

/// Checks a presented key on its own, as a use case: for endpoints whose use case does not look
/// the key up itself, and for requests refused before [`CheckoutService::create`] runs, which
/// must still answer 401 or 403 ahead of any complaint about their body.
#[derive(Clone)]
pub struct Authenticator {
    merchants: Arc<dyn MerchantStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Wires the use case.
    pub fn new(merchants: Arc<dyn MerchantStore>, clock: Arc<dyn Clock>) -> Self {
        Self { merchants, clock }
    }

    /// The caller behind `key`: a key that exists, is neither revoked nor past its expiry (judged
    /// at the clock's now, as [`CheckoutService::create`] judges it), of an active merchant.
    pub fn authenticate(&self, key: &ApiKeySecret) -> Result<Caller, CheckoutError> {
        Ok(authorize_at(key, self.merchants.find_api_key(&key.hash())?, self.clock.now())?)
    }
}

/// The order a checkout makes, as it stands when made: pending, its payment pending and its
/// session open until `expires_at`. (The merchant's name is not part of it: a page reads it.)
#[allow(clippy::too_many_arguments)]
fn opened_order(
    order_id: OrderId,
    payment_id: PaymentId,
    merchant_id: MerchantId,
    livemode: Livemode,
    claim: &VerifiedClaim,
    mode: Mode,
    (success_url, cancel_url): (&str, &str),
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Order {
    Order {
        order_id,
        payment_id,
        merchant_id,
        merchant_name: String::new(),
        merchant_active: true,
        livemode,
        currency: claim.currency.clone(),
        amount_total: claim.amount_total,
        items: claim.items.clone(),
        mode,
        success_url: success_url.to_owned(),
        cancel_url: cancel_url.to_owned(),
        state: OrderState::opened(expires_at),
        version: 0,
        last_attempt: None,
        created_at: now,
        updated_at: now,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use chrono::{DateTime, TimeZone, Utc};

    use super::*;
    use crate::claim::{ClaimItem, ClaimPayload, ClaimSigner};
    use crate::idempotency::IdempotencyRecord;
    use crate::ids::{ApiKeyId, MerchantId};
    use crate::livemode::Livemode;
    use crate::merchant::{ApiKeyRecord, MerchantStatus};
    use crate::ports::KeyLookup;

    /// An in-memory store that keeps records by idempotency key.
    struct FakeStore {
        key: ApiKeyRecord,
        hash: SecretHash,
        records: Mutex<HashMap<String, IdempotencyRecord>>,
        created: Mutex<Vec<NewOrderRecords>>,
    }

    impl CheckoutStore for FakeStore {
        fn lookup(
            &self,
            hash: &SecretHash,
            key: &IdempotencyKey,
            _: DateTime<Utc>,
        ) -> Result<Option<KeyLookup>, StoreError> {
            let record = self.records.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))?;
            Ok((hash == &self.hash)
                .then(|| KeyLookup { key: self.key.clone(), record: record.get(key.as_str()).cloned() }))
        }

        fn redeem(&self, checkout: &NewOrderRecords) -> Result<Redemption, StoreError> {
            let mut records = self.records.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))?;
            if let Some(record) = records.get(checkout.scope.key.as_str()) {
                return Ok(Redemption::KeyTaken(record.clone()));
            }
            let record =
                IdempotencyRecord { fingerprint: checkout.fingerprint.clone(), outcome: checkout.outcome.clone() };
            records.insert(checkout.scope.key.as_str().to_owned(), record);
            self.created.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))?.push(checkout.clone());
            Ok(Redemption::Created)
        }

        fn purge_idempotency(&self, _: DateTime<Utc>) -> Result<usize, StoreError> {
            Ok(0)
        }
    }

    struct FixedClock(Mutex<DateTime<Utc>>);

    impl Clock for FixedClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    struct Setup {
        service: CheckoutService,
        store: Arc<FakeStore>,
        clock: Arc<FixedClock>,
        signer: ClaimSigner,
        key: ApiKeySecret,
        merchant: MerchantId,
    }

    fn setup() -> Setup {
        let key = ApiKeySecret::generate(Livemode::Test);
        let merchant = MerchantId::new();
        let store = Arc::new(FakeStore {
            key: ApiKeyRecord {
                id: ApiKeyId::new(),
                merchant_id: merchant,
                livemode: Livemode::Test,
                revoked_at: None,
                expires_at: None,
                merchant_status: MerchantStatus::Active,
            },
            hash: key.hash(),
            records: Mutex::default(),
            created: Mutex::default(),
        });
        let clock = Arc::new(FixedClock(Mutex::new(Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap())));
        let signer = ClaimSigner::generate();
        let mut keys = ClaimKeys::default();
        keys.insert(signer.kid(), signer.verifying_key());
        let service = CheckoutService::new(
            store.clone(),
            clock.clone(),
            keys,
            CheckoutUrls::new("https://pay.example/", Secret::new("token-secret")),
            CheckoutSettings { session_ttl: Duration::minutes(30), idempotency_ttl: Duration::hours(24) },
            Arc::new(Envelope),
        );
        Setup { service, store, clock, signer, key, merchant }
    }

    /// The event's type and order, for the outbox.
    struct Envelope;

    impl Envelopes for Envelope {
        fn envelope(&self, id: crate::ids::EventId, event_type: EventType, order: &Order, _: DateTime<Utc>) -> String {
            format!("{id} {} {}", event_type.as_str(), order.order_id)
        }
    }

    impl Setup {
        fn request(&self, exp_in: i64, idempotency_key: &str) -> CheckoutRequest {
            let items = vec![ClaimItem { sku: "S".into(), name: "Shoe".into(), quantity: 1, unit_amount: 12_000 }];
            let claim = self.signer.sign(&ClaimPayload {
                currency: "eur".into(),
                ..ClaimPayload::new(self.merchant, items, self.clock.now(), exp_in)
            });
            CheckoutRequest {
                checkout_claim: claim,
                mode: Mode::Embedded,
                success_url: WebUrl::parse("https://shop.example/ok", true).unwrap(),
                cancel_url: WebUrl::parse("https://shop.example/cancel", true).unwrap(),
                idempotency_key: IdempotencyKey::parse(idempotency_key).unwrap(),
            }
        }

        fn advance(&self, by: Duration) {
            let mut now = self.clock.0.lock().unwrap();
            *now += by;
        }
    }

    fn created(answer: &Answer) -> &CreatedCheckout {
        match &answer.outcome {
            Outcome::Created(session) => session,
            Outcome::ClaimAlreadyRedeemed => panic!("expected a created checkout"),
        }
    }

    #[test]
    fn a_checkout_is_priced_by_the_claim_and_lives_thirty_minutes() {
        let s = setup();
        let answer = s.service.create(&s.key, s.request(3600, "k1")).unwrap();
        assert!(!answer.replayed);
        let session = created(&answer);
        assert_eq!(session.expires_at, "2026-11-25T10:30:00.000Z");
        assert!(session.checkout_url.starts_with("https://pay.example/embed/"));
        let made = s.store.created.lock().unwrap();
        assert_eq!((made[0].claim.amount_total, made[0].claim.currency.as_str()), (12_000, "eur"));
        assert_eq!(made[0].token_hash, SecretHash::of(session.checkout_url.rsplit('/').next().unwrap()));
    }

    #[test]
    fn the_session_ends_with_the_claim() {
        let s = setup();
        let answer = s.service.create(&s.key, s.request(600, "k1")).unwrap();
        assert_eq!(created(&answer).expires_at, "2026-11-25T10:10:00.000Z");
    }

    #[test]
    fn a_replay_answers_the_same_even_after_the_claim_expired() {
        let s = setup();
        let request = s.request(600, "k1");
        let first = s.service.create(&s.key, request.clone()).unwrap();
        s.advance(Duration::hours(2));
        let again = s.service.create(&s.key, request).unwrap();
        assert!(again.replayed);
        assert_eq!(created(&again), created(&first));
        assert_eq!(s.store.created.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_new_request_under_a_used_key_is_refused() {
        let s = setup();
        s.service.create(&s.key, s.request(600, "k1")).unwrap();
        let mut other = s.request(600, "k1");
        other.mode = Mode::Hosted;
        assert!(matches!(s.service.create(&s.key, other), Err(CheckoutError::KeyReused)));
    }

    #[test]
    fn an_unknown_key_is_refused_before_anything_else() {
        let s = setup();
        let stranger = ApiKeySecret::generate(Livemode::Test);
        let result = s.service.create(&stranger, s.request(600, "k1"));
        assert!(matches!(result, Err(CheckoutError::Auth(AuthError::Unauthenticated(_)))));
        assert!(s.store.created.lock().unwrap().is_empty());
    }

    /// Admits `budget` requests, then asks for a second's wait; remembers whom it was asked about.
    struct Budget(Mutex<(u32, Vec<MerchantId>)>);

    impl MerchantLimit for Budget {
        fn admit(&self, caller: &Caller) -> Result<(), std::time::Duration> {
            let mut state = self.0.lock().unwrap();
            state.1.push(caller.merchant_id);
            if state.0 == 0 {
                return Err(std::time::Duration::from_secs(1));
            }
            state.0 -= 1;
            Ok(())
        }
    }

    #[test]
    fn a_merchant_over_its_limit_is_refused_before_anything_is_written() {
        let s = setup();
        let budget = Arc::new(Budget(Mutex::new((1, Vec::new()))));
        let service = s.service.clone().with_limit(budget.clone());
        service.create(&s.key, s.request(600, "k1")).unwrap();
        let refused = service.create(&s.key, s.request(600, "k2"));
        assert!(matches!(refused, Err(CheckoutError::RateLimited(_))), "{refused:?}");
        assert_eq!(s.store.created.lock().unwrap().len(), 1, "the refused request wrote nothing");
        let stranger = ApiKeySecret::generate(Livemode::Test);
        assert!(matches!(service.create(&stranger, s.request(600, "k3")), Err(CheckoutError::Auth(_))));
        assert_eq!(budget.0.lock().unwrap().1, [s.merchant, s.merchant], "an unknown key is never counted");
    }

    #[test]
    fn a_claim_that_ends_within_the_leeway_makes_no_session() {
        let s = setup();
        let request = s.request(10, "k1");
        s.advance(Duration::seconds(20));
        let result = s.service.create(&s.key, request);
        assert!(matches!(result, Err(CheckoutError::InvalidClaim(ClaimError::Expired(_)))), "{result:?}");
    }

    #[test]
    fn checkout_urls_are_stable_per_order_and_unguessable_across_orders() {
        let urls = CheckoutUrls::new("https://pay.example", Secret::new("s"));
        assert_eq!(urls.url(Mode::Hosted, "ord_1"), urls.url(Mode::Hosted, "ord_1"));
        assert_ne!(urls.token("ord_1"), urls.token("ord_2"));
        let other_secret = CheckoutUrls::new("https://pay.example", Secret::new("t"));
        assert_ne!(urls.token("ord_1"), other_secret.token("ord_1"));
        assert!(!urls.url(Mode::Hosted, "ord_1").contains("ord_1"));
    }
}
