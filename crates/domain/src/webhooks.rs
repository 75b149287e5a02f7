//! Webhook endpoints and the dispatcher's use case: lease what is due, sign it, send it, record how
//! it ended. Several dispatchers (replicas) may run at once: a lease is a compare-and-set, so one
//! delivery is never in flight twice.
//!
//! Delivery model: each endpoint is served on its own, one delivery at a time, oldest first (so it
//! receives its events in the order they happened); the next goes as soon as the last is answered.
//! Endpoints proceed in parallel, so a slow or dead endpoint delays only its own deliveries.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::ids::{EndpointId, EventId, MerchantId};
use crate::livemode::Livemode;
use crate::ports::{Clock, Envelopes, StoreError, WebhookSender, WebhookStore};
use crate::secret::{random_bytes, Secret};
use crate::web_url::WebUrl;
use crate::webhook::{
    next_attempt, rotation_overlap, signature, subscription, Added, AttemptEnd, DeliveryRecord, Due, Endpoint,
    EndpointStatus, EventType, WebhookSecrets,
};

/// How long a leased delivery is a dispatcher's own: longer than any send may take.
const LEASE_SECONDS: i64 = 90;

/// How many deliveries of one endpoint a dispatcher leases at a time.
const BATCH: usize = 50;

/// The most endpoints a merchant may have in one mode: each is work the dispatcher does per event.
pub const MAX_ENDPOINTS: i64 = 16;

/// What serving an endpoint came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Delivery attempts made.
    pub attempts: usize,
    /// How long the slowest of them took.
    pub slowest: Duration,
}

/// The two kinds of worker a dispatcher has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// For endpoints that answer promptly (and any not yet known to be slow).
    Fast,
    /// For endpoints that took a second or more to answer lately: they share a few workers of
    /// their own, so however many there are, they never hold up an endpoint that answers.
    Slow,
}

/// Which endpoints one dispatcher serves now, and on which lane. An endpoint whose delivery took
/// [`SLOW_ATTEMPT_SECONDS`] or more (a timeout included) is served on the slow lane for
/// [`SLOW_FOR_MINUTES`]; each lane has a fixed number of workers.
#[derive(Debug)]
pub struct Lanes {
    workers: HashMap<Lane, usize>,
    serving: HashMap<EndpointId, Lane>,
    slow_until: HashMap<EndpointId, DateTime<Utc>>,
}

/// A delivery that takes this long marks its endpoint slow.
pub const SLOW_ATTEMPT_SECONDS: i64 = 1;
/// How long an endpoint stays on the slow lane after a slow delivery.
pub const SLOW_FOR_MINUTES: i64 = 10;

impl Lanes {
    /// Lanes with `fast` and `slow` workers.
    pub fn new(fast: usize, slow: usize) -> Self {
        Self {
            workers: HashMap::from([(Lane::Fast, fast), (Lane::Slow, slow)]),
            serving: HashMap::new(),
            slow_until: HashMap::new(),
        }
    }

    /// How many endpoints are being served now.
    pub fn busy(&self) -> usize {
        self.serving.len()
    }

    /// How many more endpoints could be served now, on either lane.
    pub fn room(&self) -> usize {
        self.workers.values().sum::<usize>().saturating_sub(self.serving.len())
    }

    /// Takes `endpoint` on its lane, if it is not served already and its lane has a free worker.
    pub fn admit(&mut self, endpoint: EndpointId, now: DateTime<Utc>) -> Option<Lane> {
        if self.serving.contains_key(&endpoint) {
            return None;
        }
        let lane = match self.slow_until.get(&endpoint) {
            Some(until) if *until > now => Lane::Slow,
            _ => Lane::Fast,
        };
        let busy = self.serving.values().filter(|l| **l == lane).count();
        (busy < self.workers[&lane]).then(|| {
            self.serving.insert(endpoint, lane);
            lane
        })
    }

    /// `endpoint`'s worker finished; `drained` says how it went (nothing when it failed).
    pub fn finished(&mut self, endpoint: EndpointId, drained: Option<Drained>, now: DateTime<Utc>) {
        self.serving.remove(&endpoint);
        if drained.is_some_and(|d| d.slowest >= Duration::seconds(SLOW_ATTEMPT_SECONDS)) {
            self.slow_until.insert(endpoint, now + Duration::minutes(SLOW_FOR_MINUTES));
        }
        if self.slow_until.len() > 1024 {
            self.slow_until.retain(|_, until| *until > now);
        }
    }
}

/// Why an endpoint was not added.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Not an absolute http(s) URL with a real host, of at most 2,048 characters (https in
    /// production); says which rule it breaks.
    #[error("the endpoint URL {0}")]
    Url(crate::web_url::WebUrlError),
    /// An event type nobody sends.
    #[error("unknown event type {0:?}; known: order.created, order.completed, order.cancelled, order.expired, payment.failed, payment.refunded")]
    EventType(String),
    /// The URL names an internal host (a loopback, private or link-local address, or
    /// `localhost`) where internal addresses are not allowed: no delivery could ever be sent.
    #[error(
        "the endpoint URL's host {0} is a loopback, private, link-local or other internal address: \
         webhooks are sent to public addresses only"
    )]
    InternalHost(String),
    /// No such merchant or endpoint.
    #[error("not found")]
    NotFound,
    /// The merchant has [`MAX_ENDPOINTS`] endpoints in this mode already.
    #[error("at most {MAX_ENDPOINTS} webhook endpoints per merchant and mode; remove one first")]
    TooMany,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Endpoints and delivery.
#[derive(Clone)]
pub struct WebhookService {
    store: Arc<dyn WebhookStore>,
    sender: Arc<dyn WebhookSender>,
    clock: Arc<dyn Clock>,
    secrets: WebhookSecrets,
    envelopes: Arc<dyn Envelopes>,
    require_https: bool,
    allow_internal: bool,
}

impl std::fmt::Debug for WebhookService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookService").field("require_https", &self.require_https).finish_non_exhaustive()
    }
}

fn jitter() -> f64 {
    let [a, b] = random_bytes::<2>();
    f64::from(u16::from_be_bytes([a, b])) / f64::from(u16::MAX) * 2.0 - 1.0
}

impl WebhookService {
    /// Wires the use cases.
    pub fn new(
        store: Arc<dyn WebhookStore>,
        sender: Arc<dyn WebhookSender>,
        clock: Arc<dyn Clock>,
        secrets: WebhookSecrets,
        envelopes: Arc<dyn Envelopes>,
        require_https: bool,
    ) -> Self {
        Self { store, sender, clock, secrets, envelopes, require_https, allow_internal: false }
    }

    /// Whether endpoints may name internal hosts (development); refused unless this says so.
    pub fn allowing_internal_hosts(mut self, allowed: bool) -> Self {
        self.allow_internal = allowed;
        self
    }

    /// Adds an endpoint for `types` (all when empty); returns it and its secret, shown once.
    pub fn add_endpoint(
        &self,
        merchant_id: MerchantId,
        livemode: Livemode,
        url: &str,
        types: &[String],
    ) -> Result<(Endpoint, Secret), EndpointError> {
        let url = WebUrl::parse(url, self.require_https).map_err(EndpointError::Url)?;
        if !self.allow_internal {
            if let Some(host) = crate::network::internal_host(url.as_str()) {
                return Err(EndpointError::InternalHost(host));
            }
        }
        // `*` (as endpoints are listed when they receive everything) means every event type.
        let everything = types.iter().any(|t| t == "*");
        let types = types
            .iter()
            .filter(|t| t.as_str() != "*")
            .map(|t| EventType::parse(t).ok_or_else(|| EndpointError::EventType(t.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let types = if everything { Vec::new() } else { types };
        let now = self.clock.now();
        let endpoint = Endpoint {
            id: EndpointId::new(),
            merchant_id,
            livemode,
            url: url.as_str().to_owned(),
            event_types: subscription(&types),
            status: EndpointStatus::Enabled,
            disabled_reason: None,
            secret_version: 1,
            previous_until: None,
            created_at: now,
        };
        match self.store.add_endpoint(&endpoint, MAX_ENDPOINTS)? {
            Added::Added => {}
            Added::NoMerchant => return Err(EndpointError::NotFound),
            Added::LimitReached => return Err(EndpointError::TooMany),
        }
        let secret = self.secrets.secret(endpoint.id, endpoint.secret_version);
        Ok((endpoint, secret))
    }

    /// Endpoints of one merchant and mode, or of all.
    pub fn endpoints(&self, owner: Option<(MerchantId, Livemode)>) -> Result<Vec<Endpoint>, StoreError> {
        self.store.endpoints(owner)
    }

    /// Removes an endpoint; its pending deliveries end as cancelled.
    pub fn remove_endpoint(&self, id: EndpointId, owner: Option<(MerchantId, Livemode)>) -> Result<(), EndpointError> {
        if self.store.remove_endpoint(id, owner, self.clock.now())? {
            Ok(())
        } else {
            Err(EndpointError::NotFound)
        }
    }

    /// Enables an endpoint (of `owner`, when given), such as one a `410 Gone` disabled: it receives
    /// the events that happen from now on. Deliveries cancelled while it was disabled stay
    /// cancelled; [`Self::resend`] sends one again. Enabling an enabled endpoint changes nothing.
    pub fn enable_endpoint(
        &self,
        id: EndpointId,
        owner: Option<(MerchantId, Livemode)>,
    ) -> Result<Endpoint, EndpointError> {
        self.store.set_endpoint_enabled(id, owner, true, "", self.clock.now())?.ok_or(EndpointError::NotFound)
    }

    /// Disables an endpoint (of `owner`, when given; the operator's otherwise): it receives nothing
    /// until enabled again, and its pending deliveries end as cancelled. Disabling a disabled
    /// endpoint keeps the reason it has.
    pub fn disable_endpoint(
        &self,
        id: EndpointId,
        owner: Option<(MerchantId, Livemode)>,
    ) -> Result<Endpoint, EndpointError> {
        let reason = if owner.is_some() { "disabled by the merchant" } else { "disabled by the operator" };
        self.store.set_endpoint_enabled(id, owner, false, reason, self.clock.now())?.ok_or(EndpointError::NotFound)
    }

    /// A new secret for an endpoint; the previous one keeps signing for 24 hours.
    pub fn rotate_secret(&self, id: EndpointId) -> Result<(Endpoint, Secret), EndpointError> {
        let now = self.clock.now();
        let endpoint = self.store.rotate_secret(id, now + rotation_overlap(), now)?.ok_or(EndpointError::NotFound)?;
        let secret = self.secrets.secret(endpoint.id, endpoint.secret_version);
        Ok((endpoint, secret))
    }

    /// Deliveries for the operator.
    pub fn deliveries(&self, status: Option<&str>, limit: i64) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.store.deliveries(status, limit)
    }

    /// Sends an event again to every endpoint it was for.
    pub fn resend(&self, event: EventId) -> Result<usize, StoreError> {
        self.store.resend(event, self.clock.now())
    }

    /// The headers of one attempt at `now`: signed with the current secret, and with the previous
    /// one while a rotation's overlap lasts.
    pub fn headers(&self, due: &Due, now: DateTime<Utc>) -> Vec<(&'static str, String)> {
        let timestamp = now.timestamp();
        let endpoint = &due.endpoint;
        let mut signatures =
            vec![signature(&self.secrets.secret(endpoint.id, endpoint.secret_version), timestamp, &due.payload)];
        if endpoint.previous_until.is_some_and(|until| until > now) {
            let previous = self.secrets.secret(endpoint.id, endpoint.secret_version - 1);
            signatures.push(signature(&previous, timestamp, &due.payload));
        }
        vec![
            ("Content-Type", "application/json".to_owned()),
            ("X-Fanfare-Timestamp", timestamp.to_string()),
            ("X-Fanfare-Signature", signatures.join(", ")),
            ("X-Fanfare-Delivery-Id", format!("{}.{}", due.event_id, endpoint.id)),
            ("X-Fanfare-Webhook-Id", endpoint.id.to_string()),
            ("X-Fanfare-Retry-Count", due.failures.to_string()),
            ("X-Fanfare-Original-Time", due.event_created_at.timestamp().to_string()),
        ]
    }

    /// The dispatcher's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Endpoints with a delivery due now that no dispatcher holds, at most `limit`, longest
    /// waiting first: what [`Self::drain`] should serve.
    pub fn due_endpoints(&self, limit: i64) -> Result<Vec<EndpointId>, StoreError> {
        self.store.due_endpoints(self.clock.now(), limit)
    }

    /// Sends up to `most` of `endpoint`'s due deliveries, oldest first, each as soon as the one
    /// before was answered, and records how they ended. Stops at the first that fails (the rest
    /// wait for its retry, keeping the order), or when half the lease has gone. Says how many
    /// attempts were made (0 when nothing was due) and how long the slowest took.
    pub fn deliver_next(&self, endpoint: EndpointId, most: usize) -> Result<Drained, StoreError> {
        let leased_at = self.clock.now();
        let lease = Duration::seconds(LEASE_SECONDS);
        let most = i64::try_from(most).unwrap_or(i64::MAX);
        let mut due = self.store.lease_next(endpoint, leased_at, leased_at + lease, most)?.into_iter();
        let mut ends = Vec::new();
        let mut slowest = Duration::zero();
        for next in due.by_ref() {
            let started = self.clock.now();
            let headers = self.headers(&next, started);
            let answer = self.sender.send(&next.endpoint.url, &headers, &next.payload);
            slowest = slowest.max(self.clock.now() - started);
            let end = self.end_of(&next, answer);
            let failed = !matches!(end, AttemptEnd::Delivered(_));
            ends.push((next, end));
            if failed || self.clock.now() - leased_at > lease / 2 {
                break;
            }
        }
        let unsent: Vec<Due> = due.collect();
        self.store.record_attempts(&ends, &unsent, self.clock.now())?;
        Ok(Drained { attempts: ends.len(), slowest })
    }

    /// Serves one endpoint until nothing of it is due, `most` attempts were made, or `slice` has
    /// passed (then the endpoint waits its turn again, so that endpoints share the workers): its
    /// deliveries in order, each as soon as the one before was answered, leased a batch at a time.
    pub fn drain(&self, endpoint: EndpointId, most: usize, slice: Duration) -> Result<Drained, StoreError> {
        let started = self.clock.now();
        let mut drained = Drained { attempts: 0, slowest: Duration::zero() };
        while drained.attempts < most && self.clock.now() - started < slice {
            let batch = self.deliver_next(endpoint, BATCH.min(most - drained.attempts))?;
            if batch.attempts == 0 {
                break;
            }
            drained =
                Drained { attempts: drained.attempts + batch.attempts, slowest: drained.slowest.max(batch.slowest) };
        }
        Ok(drained)
    }

    /// One round: each due endpoint's oldest delivery once, endpoints in parallel. For tools and
    /// tests that step the dispatcher; the server's dispatcher drains endpoints instead. Returns
    /// how many attempts were made.
    pub fn dispatch_once(&self, limit: i64) -> Result<usize, StoreError> {
        let endpoints = self.due_endpoints(limit)?;
        std::thread::scope(|scope| {
            let sends: Vec<_> =
                endpoints.into_iter().map(|endpoint| scope.spawn(move || self.deliver_next(endpoint, 1))).collect();
            let mut attempts = 0;
            for send in sends {
                let sent =
                    send.join().unwrap_or_else(|_| Err(StoreError::Unavailable("a delivery thread panicked".into())));
                attempts += sent?.attempts;
            }
            Ok(attempts)
        })
    }

    fn end_of(&self, due: &Due, answer: Result<u16, String>) -> AttemptEnd {
        let failures = due.failures + 1;
        let retry_at = || next_attempt(self.clock.now(), failures, jitter());
        match answer {
            Ok(status) if (200..300).contains(&status) => AttemptEnd::Delivered(status),
            Ok(410) => AttemptEnd::Gone,
            Ok(status) => {
                AttemptEnd::Failed { status: Some(status), error: format!("answered {status}"), retry_at: retry_at() }
            }
            Err(error) => AttemptEnd::Failed { status: None, error, retry_at: retry_at() },
        }
    }

    /// Sends a signed sample event of `event_type` to one endpoint now, as a delivery would be
    /// sent (same envelope, headers and signatures, through the same sender), for a developer
    /// trying a receiver. The order in it is made up; nothing is stored and nothing is retried.
    /// Returns what was sent, the answer (status, or why there was none) and how long it took.
    pub fn send_test_event(
        &self,
        id: EndpointId,
        event_type: EventType,
    ) -> Result<(Due, Result<u16, String>, std::time::Duration), EndpointError> {
        use crate::order::{
            Attempt, AttemptOutcome, CancellationReason, Order, OrderState, OrderStatus, PaymentStatus, SessionStatus,
        };
        use crate::payment::DeclineCode;
        let endpoint = self
            .store
            .endpoints(None)?
            .into_iter()
            .find(|e| e.id == id && e.status != EndpointStatus::Removed)
            .ok_or(EndpointError::NotFound)?;
        let now = self.clock.now();
        let (order, payment, session) = match event_type {
            EventType::OrderCreated => (OrderStatus::Pending, PaymentStatus::Pending, SessionStatus::Open),
            EventType::OrderCompleted => (OrderStatus::Paid, PaymentStatus::Succeeded, SessionStatus::Complete),
            EventType::OrderCancelled => (OrderStatus::Cancelled, PaymentStatus::Pending, SessionStatus::Cancelled),
            EventType::OrderExpired => (OrderStatus::Expired, PaymentStatus::Pending, SessionStatus::Expired),
            EventType::PaymentFailed => (OrderStatus::Pending, PaymentStatus::Failed, SessionStatus::Open),
            EventType::PaymentRefunded => (OrderStatus::Cancelled, PaymentStatus::Refunded, SessionStatus::Cancelled),
        };
        let attempt = |outcome, decline_code, last4: &str| Attempt {
            id: "pa_test_event".into(),
            provider: "sandbox".into(),
            outcome,
            decline_code,
            card_brand: "visa".into(),
            card_last4: last4.into(),
            created_at: now,
        };
        let amount = 5000;
        let sample = Order {
            order_id: crate::ids::OrderId::new(),
            payment_id: crate::ids::PaymentId::new(),
            merchant_id: endpoint.merchant_id,
            merchant_name: String::new(),
            merchant_active: true,
            livemode: endpoint.livemode,
            currency: crate::money::Currency::iso4217("usd").ok_or(EndpointError::NotFound)?,
            amount_total: amount,
            items: vec![crate::claim::LineItem {
                sku: "TEE-BLACK-M".into(),
                name: "Drop tee (black, M) (test event)".into(),
                quantity: 2,
                unit_amount: amount / 2,
                amount,
            }],
            mode: crate::order::Mode::Hosted,
            success_url: String::new(),
            cancel_url: String::new(),
            state: OrderState {
                order,
                payment,
                session,
                expires_at: now + Duration::minutes(30),
                failed_attempts: i32::from(payment == PaymentStatus::Failed),
                cancellation: (order == OrderStatus::Cancelled).then_some(CancellationReason::RequestedByMerchant),
            },
            version: 0,
            last_attempt: match payment {
                PaymentStatus::Succeeded => Some(attempt(AttemptOutcome::Succeeded, None, "4242")),
                PaymentStatus::Failed => Some(attempt(AttemptOutcome::Failed, Some(DeclineCode::CardDeclined), "0002")),
                PaymentStatus::Refunded => Some(attempt(AttemptOutcome::Refunded, None, "4242")),
                _ => None,
            },
            created_at: now,
            updated_at: now,
        };
        let event = crate::orders::event(&*self.envelopes, event_type, &sample, now);
        let due = Due { event_id: event.id, endpoint, payload: event.payload, event_created_at: now, failures: 0 };
        let started = std::time::Instant::now();
        let answer = self.sender.send(&due.endpoint.url, &self.headers(&due, self.clock.now()), &due.payload);
        Ok((due, answer, started.elapsed()))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_slow_endpoint_moves_to_the_slow_lane_for_a_while_and_never_takes_a_fast_worker() {
        let mut lanes = Lanes::new(1, 1);
        let (slow, other, third) = (EndpointId::new(), EndpointId::new(), EndpointId::new());
        assert_eq!(lanes.admit(slow, now()), Some(Lane::Fast), "nobody is slow until proven");
        assert_eq!(lanes.admit(slow, now()), None, "one worker per endpoint");
        lanes.finished(slow, Some(Drained { attempts: 1, slowest: Duration::seconds(13) }), now());
        assert_eq!(lanes.admit(slow, now()), Some(Lane::Slow));
        assert_eq!(lanes.admit(other, now()), Some(Lane::Fast), "the fast lane is still free");
        assert_eq!(lanes.room(), 0);
        lanes.finished(other, Some(Drained { attempts: 50, slowest: Duration::milliseconds(20) }), now());
        assert_eq!(lanes.admit(third, now()), Some(Lane::Fast));
        lanes.finished(slow, Some(Drained { attempts: 1, slowest: Duration::milliseconds(5) }), now());
        let later = now() + Duration::minutes(SLOW_FOR_MINUTES) + Duration::seconds(1);
        lanes.finished(third, None, later);
        assert_eq!(lanes.admit(slow, later), Some(Lane::Fast), "after a while it is given another chance");
    }
}
