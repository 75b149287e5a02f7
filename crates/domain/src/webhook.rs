//! Webhooks: the events an order's changes cause, the endpoints that receive them, how deliveries
//! are signed and when a failed one is tried again.
//!
//! Events are written to an outbox in the same transaction as the change that causes them (their
//! envelope, the wire shape, written by the [`crate::ports::Envelopes`] port); a dispatcher
//! delivers them later. The rules here are pure; the endpoint and dispatcher use cases are in
//! [`crate::webhooks`].

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::ids::{EndpointId, EventId, MerchantId};
use crate::livemode::Livemode;
use crate::secret::{base62, Secret};

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `POST /checkout` made it.
    OrderCreated,
    /// It was paid.
    OrderCompleted,
    /// The merchant or the consumer ended it.
    OrderCancelled,
    /// Its session ran out.
    OrderExpired,
    /// A charge was declined, or the provider could not take it.
    PaymentFailed,
    /// A charge that landed after its order ended (or after another charge paid it) was given
    /// back.
    PaymentRefunded,
}

impl EventType {
    /// Every type, for validation and listings.
    pub const ALL: [EventType; 6] = [
        EventType::OrderCreated,
        EventType::OrderCompleted,
        EventType::OrderCancelled,
        EventType::OrderExpired,
        EventType::PaymentFailed,
        EventType::PaymentRefunded,
    ];

    /// The wire name: `order.created`, …
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderCreated => "order.created",
            EventType::OrderCompleted => "order.completed",
            EventType::OrderCancelled => "order.cancelled",
            EventType::OrderExpired => "order.expired",
            EventType::PaymentFailed => "payment.failed",
            EventType::PaymentRefunded => "payment.refunded",
        }
    }

    /// From the wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// Whether an endpoint receives events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointStatus {
    /// Receives events.
    Enabled,
    /// Answered `410 Gone`, or was disabled by the operator: receives nothing.
    Disabled,
    /// Removed by the merchant; kept for the deliveries that name it.
    Removed,
}

impl EndpointStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointStatus::Enabled => "enabled",
            EndpointStatus::Disabled => "disabled",
            EndpointStatus::Removed => "removed",
        }
    }

    /// From the stored text; anything unknown receives nothing.
    pub fn from_stored(text: &str) -> Self {
        match text {
            "enabled" => EndpointStatus::Enabled,
            "removed" => EndpointStatus::Removed,
            _ => EndpointStatus::Disabled,
        }
    }
}

/// The event types an endpoint receives, as stored: `*` for all, or `,a,b,` (commas around each
/// name, so that a `LIKE '%,name,%'` finds exactly one).
pub fn subscription(types: &[EventType]) -> String {
    if types.is_empty() || EventType::ALL.iter().all(|t| types.contains(t)) {
        "*".to_owned()
    } else {
        let mut names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        format!(",{},", names.join(","))
    }
}

/// The `LIKE` pattern that finds endpoints subscribed to `event_type` (besides `*`).
pub fn subscription_pattern(event_type: EventType) -> String {
    format!("%,{},%", event_type.as_str())
}

/// An event to write to the outbox with the change that causes it (made by
/// [`crate::orders::event`], which has the API write its envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// `evt_…`
    pub id: EventId,
    /// What happened.
    pub event_type: EventType,
    /// Whose order.
    pub merchant_id: MerchantId,
    /// Test events go to test endpoints only.
    pub livemode: Livemode,
    /// The JSON envelope, exactly as delivered.
    pub payload: String,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

/// Derives endpoint signing secrets from the server's secret: nothing secret is stored, and
/// rotating makes a new version while the previous one keeps signing for a day.
#[derive(Debug, Clone)]
pub struct WebhookSecrets {
    server_secret: Secret,
}

/// How long the previous secret keeps signing after a rotation.
pub fn rotation_overlap() -> Duration {
    Duration::hours(24)
}

impl WebhookSecrets {
    /// Over the server's secret (`CHECKOUT_TOKEN_SECRET`).
    pub fn new(server_secret: Secret) -> Self {
        Self { server_secret }
    }

    /// The `whsec_…` secret of an endpoint at a version.
    pub fn secret(&self, endpoint: EndpointId, version: i32) -> Secret {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.server_secret.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"webhook-endpoint:");
        mac.update(endpoint.to_string().as_bytes());
        mac.update(b":");
        mac.update(version.to_string().as_bytes());
        Secret::new(format!("whsec_{}", base62(&mac.finalize().into_bytes(), 43)))
    }
}

/// `sha256=<hex HMAC-SHA-256 of "<timestamp>.<body>">` under one secret.
pub fn signature(secret: &Secret, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The wait before each retry after a failed attempt: immediately the first time, then 1 min,
/// 5 min, 30 min, 2 h, 6 h, 12 h and 24 h. After the last, the delivery has failed.
pub const RETRY_SCHEDULE_SECONDS: [i64; 8] = [0, 60, 300, 1_800, 7_200, 21_600, 43_200, 86_400];

/// When the next attempt may run after `failures` failed ones (at least 1), or `None` when the
/// schedule is spent and the delivery has failed. `jitter` in [-1, 1] moves it by up to a tenth of
/// the wait.
pub fn next_attempt(now: DateTime<Utc>, failures: i32, jitter: f64) -> Option<DateTime<Utc>> {
    let wait = *RETRY_SCHEDULE_SECONDS.get(usize::try_from(failures).ok()?.checked_sub(1)?)?;
    let spread = (wait as f64 * 0.1 * jitter.clamp(-1.0, 1.0)) as i64;
    Some(now + Duration::seconds(wait + spread))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn subscriptions_store_commas_around_each_name() {
        assert_eq!(subscription(&[]), "*");
        assert_eq!(subscription(&EventType::ALL), "*");
        let some = subscription(&[EventType::OrderCompleted, EventType::PaymentFailed]);
        assert_eq!(some, ",order.completed,payment.failed,");
        assert!(some.contains(&subscription_pattern(EventType::OrderCompleted).replace('%', "")));
        assert_eq!(EventType::parse("order.expired"), Some(EventType::OrderExpired));
        assert_eq!(EventType::parse("order"), None);
    }

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_and_body() {
        let secret = Secret::new("whsec_test");
        let signed = signature(&secret, 1_700_000_000, "{\"a\":1}");
        // openssl: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(signed, "sha256=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789");
        assert_ne!(signature(&secret, 1_700_000_001, "{\"a\":1}"), signed);
    }

    #[test]
    fn secrets_differ_by_endpoint_and_version() {
        let secrets = WebhookSecrets::new(Secret::new("server"));
        let endpoint = EndpointId::new();
        assert_eq!(secrets.secret(endpoint, 1), secrets.secret(endpoint, 1));
        assert_ne!(secrets.secret(endpoint, 1), secrets.secret(endpoint, 2));
        assert_ne!(secrets.secret(endpoint, 1), secrets.secret(EndpointId::new(), 1));
        assert!(secrets.secret(endpoint, 1).expose().starts_with("whsec_"));
    }

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        assert_eq!(next_attempt(now, 1, 0.0), Some(now), "the first retry is immediate");
        assert_eq!(next_attempt(now, 2, 0.0), Some(now + Duration::minutes(1)));
        assert_eq!(next_attempt(now, 8, 0.0), Some(now + Duration::hours(24)));
        assert_eq!(next_attempt(now, 9, 0.0), None, "nine attempts in all");
        assert_eq!(next_attempt(now, 0, 0.0), None);
        let late = next_attempt(now, 3, 1.0).unwrap();
        assert_eq!(late, now + Duration::seconds(330));
    }
}

/// A merchant's endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `we_…`
    pub id: EndpointId,
    /// Whose.
    pub merchant_id: MerchantId,
    /// Receives events of this mode only.
    pub livemode: Livemode,
    /// Where deliveries are posted.
    pub url: String,
    /// `*` or `,type,type,` (see [`subscription`]).
    pub event_types: String,
    /// Whether it receives events.
    pub status: EndpointStatus,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// The signing secret's version.
    pub secret_version: i32,
    /// Until when the previous version also signs.
    pub previous_until: Option<DateTime<Utc>>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

impl Endpoint {
    /// The event types it receives, as names (`["*"]` for all).
    pub fn event_names(&self) -> Vec<String> {
        if self.event_types == "*" {
            vec!["*".to_owned()]
        } else {
            self.event_types.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect()
        }
    }
}

/// A delivery due now, leased to one dispatcher.
#[derive(Debug, Clone)]
pub struct Due {
    /// `evt_…`
    pub event_id: EventId,
    /// Where it goes.
    pub endpoint: Endpoint,
    /// The envelope, exactly as stored.
    pub payload: String,
    /// When the event happened.
    pub event_created_at: DateTime<Utc>,
    /// Failed attempts so far.
    pub failures: i32,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptEnd {
    /// 2xx: delivered.
    Delivered(u16),
    /// Another status, a timeout or a connection failure: try again later, or give up.
    Failed {
        /// The status, if there was an answer.
        status: Option<u16>,
        /// What went wrong, for `webhook deliveries`.
        error: String,
        /// When to try again; `None` when the schedule is spent.
        retry_at: Option<DateTime<Utc>>,
    },
    /// `410 Gone`: the endpoint is disabled and the delivery failed.
    Gone,
}

/// A delivery as the operator lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    /// `evt_…`
    pub event_id: String,
    /// `we_…`
    pub endpoint_id: String,
    /// `order.created`, …
    pub event_type: String,
    /// `pending`, `delivered`, `failed` or `cancelled` (its endpoint was removed or disabled).
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last answer's status.
    pub last_status: Option<i32>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When the next attempt runs (pending only).
    pub next_attempt_at: Option<String>,
    /// When the event happened.
    pub created_at: String,
}

/// What became of adding an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Stored.
    Added,
    /// No such merchant.
    NoMerchant,
    /// The merchant already has the most endpoints allowed in that mode.
    LimitReached,
}
