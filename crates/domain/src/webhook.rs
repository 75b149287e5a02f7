//! Webhooks: the events a checkout's changes cause, their envelope, the endpoints that receive
//! them, how deliveries are signed and when a failed one is tried again.
//!
//! Events are written to an outbox in the same transaction as the change that causes them; a
//! dispatcher delivers them later. The rules here are pure; the dispatcher's use case is in
//! [`crate::dispatch`].

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::checkout::format_time;
use crate::ids::{EndpointId, EventId, MerchantId};
use crate::merchant::Livemode;
use crate::secret::{base62, Secret};
use crate::session::OrderView;

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
    /// A charge was declined.
    PaymentFailed,
}

impl EventType {
    /// Every type, for validation and listings.
    pub const ALL: [EventType; 5] = [
        EventType::OrderCreated,
        EventType::OrderCompleted,
        EventType::OrderCancelled,
        EventType::OrderExpired,
        EventType::PaymentFailed,
    ];

    /// The wire name: `order.created`, …
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderCreated => "order.created",
            EventType::OrderCompleted => "order.completed",
            EventType::OrderCancelled => "order.cancelled",
            EventType::OrderExpired => "order.expired",
            EventType::PaymentFailed => "payment.failed",
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

/// The envelope merchants receive.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    id: String,
    #[serde(rename = "type")]
    event_type: &'static str,
    timestamp: String,
    merchant_id: String,
    livemode: bool,
    data: &'a OrderView,
}

/// An event to write to the outbox with the change that causes it.
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

impl NewEvent {
    /// An event about an order as `GET /orders/{id}` shows it after the change.
    pub fn about(
        event_type: EventType,
        order: &OrderView,
        merchant_id: MerchantId,
        livemode: Livemode,
        at: DateTime<Utc>,
    ) -> Self {
        let id = EventId::new();
        let envelope = Envelope {
            id: id.to_string(),
            event_type: event_type.as_str(),
            timestamp: format_time(at),
            merchant_id: merchant_id.to_string(),
            livemode: livemode.is_live(),
            data: order,
        };
        // Plain structs of strings and numbers always serialise.
        let payload = serde_json::to_string(&envelope).unwrap_or_default();
        Self { id, event_type, merchant_id, livemode, payload, created_at: at }
    }
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

/// When attempt number `attempts + 1` may run after `attempts` failed ones, or `None` when the
/// schedule is spent. `jitter` in [-1, 1] moves it by up to a tenth of the wait.
pub fn next_attempt(now: DateTime<Utc>, attempts: i32, jitter: f64) -> Option<DateTime<Utc>> {
    let wait = *RETRY_SCHEDULE_SECONDS.get(usize::try_from(attempts).ok()?)?;
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
        assert_eq!(next_attempt(now, 0, 0.0), Some(now));
        assert_eq!(next_attempt(now, 1, 0.0), Some(now + Duration::minutes(1)));
        assert_eq!(next_attempt(now, 7, 0.0), Some(now + Duration::hours(24)));
        assert_eq!(next_attempt(now, 8, 0.0), None);
        let late = next_attempt(now, 2, 1.0).unwrap();
        assert_eq!(late, now + Duration::seconds(330));
    }
}
