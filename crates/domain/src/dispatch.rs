//! Webhook endpoints and the dispatcher's use case: lease what is due, sign it, send it, record how
//! it ended. Several dispatchers (replicas) may run at once: a lease is a compare-and-set, so one
//! delivery is never in flight twice.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::checkout::ReturnUrl;
use crate::ids::{EndpointId, EventId, MerchantId};
use crate::merchant::Livemode;
use crate::ports::{Clock, StoreError};
use crate::secret::{random_bytes, Secret};
use crate::webhook::{
    next_attempt, rotation_overlap, signature, subscription, AttemptEnd, DeliveryRecord, Due, Endpoint, EndpointStatus,
    EventType, WebhookSecrets, WebhookSender, WebhookStore,
};

/// How long a leased delivery is a dispatcher's own: longer than the send's 30 s timeout.
const LEASE_SECONDS: i64 = 90;

/// Why an endpoint was not added.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Not an absolute http(s) URL (https in production).
    #[error("the endpoint URL must be an absolute {0} URL")]
    Url(&'static str),
    /// An event type nobody sends.
    #[error("unknown event type {0:?}; known: order.created, order.completed, order.cancelled, order.expired, payment.failed")]
    EventType(String),
    /// No such merchant or endpoint.
    #[error("not found")]
    NotFound,
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
    require_https: bool,
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
        require_https: bool,
    ) -> Self {
        Self { store, sender, clock, secrets, require_https }
    }

    /// Adds an endpoint for `types` (all when empty); returns it and its secret, shown once.
    pub fn add_endpoint(
        &self,
        merchant_id: MerchantId,
        livemode: Livemode,
        url: &str,
        types: &[String],
    ) -> Result<(Endpoint, Secret), EndpointError> {
        let wanted = if self.require_https { "https" } else { "http(s)" };
        let url = ReturnUrl::parse(url, self.require_https).map_err(|_| EndpointError::Url(wanted))?;
        let types = types
            .iter()
            .map(|t| EventType::parse(t).ok_or_else(|| EndpointError::EventType(t.clone())))
            .collect::<Result<Vec<_>, _>>()?;
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
        if !self.store.add_endpoint(&endpoint)? {
            return Err(EndpointError::NotFound);
        }
        let secret = self.secrets.secret(endpoint.id, endpoint.secret_version);
        Ok((endpoint, secret))
    }

    /// Endpoints of one merchant and mode, or of all.
    pub fn endpoints(&self, owner: Option<(MerchantId, Livemode)>) -> Result<Vec<Endpoint>, StoreError> {
        self.store.endpoints(owner)
    }

    /// Removes an endpoint; its pending deliveries are not sent.
    pub fn remove_endpoint(&self, id: EndpointId, owner: Option<(MerchantId, Livemode)>) -> Result<(), EndpointError> {
        if self.store.remove_endpoint(id, owner, self.clock.now())? {
            Ok(())
        } else {
            Err(EndpointError::NotFound)
        }
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

    /// Leases what is due, sends it (in parallel, one thread per delivery) and records the ends.
    /// Returns how many attempts were made.
    pub fn dispatch_once(&self, limit: i64) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let due = self.store.lease_due(now, now + Duration::seconds(LEASE_SECONDS), limit)?;
        let ends: Vec<(Due, AttemptEnd)> = std::thread::scope(|scope| {
            let handles: Vec<_> = due
                .into_iter()
                .map(|due| {
                    scope.spawn(move || {
                        let headers = self.headers(&due, self.clock.now());
                        let answer = self.sender.send(&due.endpoint.url, &headers, &due.payload);
                        let end = self.end_of(&due, answer);
                        (due, end)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        for (due, end) in &ends {
            self.store.record_attempt(due, end, self.clock.now())?;
        }
        Ok(ends.len())
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
        use crate::order::{OrderStatus, PaymentStatus, SessionStatus};
        use crate::session::{AttemptView, CardView, OrderView, PaymentView, SessionView};
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
        };
        let attempt = |outcome, decline_code, last4: &str| AttemptView {
            outcome,
            decline_code,
            card: CardView { brand: "visa".into(), last4: last4.into() },
            created_at: crate::checkout::format_time(now),
        };
        let sample = OrderView {
            id: crate::ids::OrderId::new().to_string(),
            status: order.as_str(),
            livemode: endpoint.livemode.is_live(),
            currency: "usd".into(),
            amount_total: 5000,
            items: vec![crate::order::LineItem {
                sku: "TEE-BLACK-M".into(),
                name: "Drop tee (black, M) (test event)".into(),
                quantity: 2,
                unit_amount: 2500,
                amount: 5000,
            }],
            payment: PaymentView {
                id: crate::ids::PaymentId::new().to_string(),
                status: payment.as_str(),
                amount: 5000,
                currency: "usd".into(),
                last_attempt: match payment {
                    PaymentStatus::Succeeded => Some(attempt("succeeded", None, "4242")),
                    PaymentStatus::Failed => Some(attempt("failed", Some("card_declined"), "0002")),
                    _ => None,
                },
            },
            session: SessionView {
                status: session.as_str(),
                mode: crate::order::Mode::Hosted.as_str(),
                expires_at: crate::checkout::format_time(now + Duration::minutes(30)),
            },
            created_at: crate::checkout::format_time(now),
            updated_at: crate::checkout::format_time(now),
        };
        let event = crate::webhook::NewEvent::about(event_type, &sample, endpoint.merchant_id, endpoint.livemode, now);
        let due = Due { event_id: event.id, endpoint, payload: event.payload, event_created_at: now, failures: 0 };
        let started = std::time::Instant::now();
        let answer = self.sender.send(&due.endpoint.url, &self.headers(&due, self.clock.now()), &due.payload);
        Ok((due, answer, started.elapsed()))
    }
}
