//! PostgreSQL's fast path for a checkout: the order, its lines, payment, session, idempotency
//! record and (when an endpoint listens) its `order.created` webhook event in one statement (data-modifying CTEs), prepared once per connection and committed as its
//! own transaction. Round trips, not rows, are what a create costs on PostgreSQL; this makes the
//! common case one instead of eight.
//!
//! The statement is all or nothing: if the claim backs an open order nothing is inserted (it
//! answers `false`), and if the idempotency key is taken its plain insert fails with a unique
//! violation, which undoes the rest. Either way the caller goes on step by step in a transaction.

use chrono::NaiveDateTime;
use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Timestamp};
use diesel::{QueryResult, RunQueryDsl};
use domain::order::{OrderStatus, PaymentStatus, SessionStatus};
use domain::ports::NewCheckout;
use domain::webhook::{subscription_pattern, EndpointStatus};

/// Inserts a whole checkout; answers whether the order was created.
pub(crate) struct CreateCheckout<'a> {
    c: &'a NewCheckout,
    outcome: &'a str,
    merchant_id: String,
    order_id: String,
    payment_id: String,
    livemode: bool,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
    positions: Vec<i32>,
    skus: Vec<&'a str>,
    names: Vec<&'a str>,
    quantities: Vec<i64>,
    unit_amounts: Vec<i64>,
    amounts: Vec<i64>,
    event_id: String,
    event_pattern: String,
}

impl<'a> CreateCheckout<'a> {
    pub(crate) fn new(c: &'a NewCheckout, outcome: &'a str) -> Self {
        let items = &c.claim.items;
        Self {
            c,
            outcome,
            merchant_id: c.scope.merchant_id.to_string(),
            order_id: c.order_id.to_string(),
            payment_id: c.payment_id.to_string(),
            livemode: c.scope.livemode.is_live(),
            now: c.created_at.naive_utc(),
            expires_at: c.expires_at.naive_utc(),
            positions: (0..items.len()).map(|p| i32::try_from(p).unwrap_or(i32::MAX)).collect(),
            skus: items.iter().map(|i| i.sku.as_str()).collect(),
            names: items.iter().map(|i| i.name.as_str()).collect(),
            quantities: items.iter().map(|i| i.quantity).collect(),
            unit_amounts: items.iter().map(|i| i.unit_amount).collect(),
            amounts: items.iter().map(|i| i.amount).collect(),
            event_id: c.event.id.to_string(),
            event_pattern: subscription_pattern(c.event.event_type),
        }
    }
}

/// The statement's identity for diesel's prepared-statement cache: its text never changes.
pub(crate) struct CreateCheckoutStatement;

impl QueryId for CreateCheckout<'_> {
    type QueryId = CreateCheckoutStatement;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for CreateCheckout<'_> {
    type SqlType = Bool;
}

impl RunQueryDsl<PgConnection> for CreateCheckout<'_> {}

impl QueryFragment<Pg> for CreateCheckout<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let c = self.c;
        let claim = &c.claim;
        out.push_sql("WITH p AS (SELECT ");
        macro_rules! param {
            ($sql_type:ty, $value:expr, $name:literal) => {
                out.push_bind_param::<$sql_type, _>($value)?;
                out.push_sql(concat!(" AS ", $name, ", "));
            };
        }
        param!(Text, &self.merchant_id, "merchant_id");
        param!(Bool, &self.livemode, "livemode");
        param!(Text, c.scope.key.as_str(), "idempotency_key");
        param!(Text, c.fingerprint.as_str(), "fingerprint");
        param!(Text, self.outcome, "outcome");
        param!(Timestamp, &self.now, "now");
        param!(Text, &self.order_id, "order_id");
        param!(Text, &claim.claim_id, "claim_id");
        param!(Text, &claim.issuer, "claim_issuer");
        param!(Text, &claim.consumer_id, "consumer_id");
        param!(Nullable<Text>, &claim.experience_id, "experience_id");
        param!(Nullable<Text>, &claim.distribution_id, "distribution_id");
        param!(Text, claim.currency.as_str(), "currency");
        param!(BigInt, &claim.amount_total, "amount_total");
        param!(Timestamp, &self.expires_at, "expires_at");
        param!(Text, OrderStatus::Pending.as_str(), "order_status");
        param!(Text, &self.payment_id, "payment_id");
        param!(Text, PaymentStatus::Pending.as_str(), "payment_status");
        param!(Text, c.token_hash.as_str(), "token_hash");
        param!(Text, c.mode.as_str(), "mode");
        param!(Text, &c.success_url, "success_url");
        param!(Text, &c.cancel_url, "cancel_url");
        param!(Text, &self.event_id, "event_id");
        param!(Text, c.event.event_type.as_str(), "event_type");
        param!(Text, &c.event.payload, "event_payload");
        param!(Text, &self.event_pattern, "event_pattern");
        param!(Text, EndpointStatus::Enabled.as_str(), "endpoint_enabled");
        param!(Text, crate::webhook::PENDING, "delivery_status");
        out.push_bind_param::<Text, _>(SessionStatus::Open.as_str())?;
        out.push_sql(
            " AS session_status), \
             ord AS (INSERT INTO orders (id, merchant_id, livemode, claim_id, claim_issuer, consumer_id, \
             experience_id, distribution_id, currency, amount_total, status, expires_at, created_at, updated_at) \
             SELECT order_id, merchant_id, livemode, claim_id, claim_issuer, consumer_id, experience_id, \
             distribution_id, currency, amount_total, order_status, expires_at, now, now FROM p \
             ON CONFLICT DO NOTHING RETURNING id), \
             idem AS (INSERT INTO idempotency_keys (merchant_id, livemode, idempotency_key, fingerprint, outcome, \
             created_at) SELECT merchant_id, livemode, idempotency_key, fingerprint, outcome, now FROM p, ord), \
             lines AS (INSERT INTO order_items (order_id, position, sku, name, quantity, unit_amount, amount) \
             SELECT ord.id, l.position, l.sku, l.name, l.quantity, l.unit_amount, l.amount FROM ord, unnest(",
        );
        out.push_bind_param::<Array<Integer>, _>(&self.positions)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.skus)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.names)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.quantities)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.unit_amounts)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.amounts)?;
        out.push_sql(
            ") AS l (position, sku, name, quantity, unit_amount, amount)), \
             pay AS (INSERT INTO payments (id, order_id, amount, currency, status, created_at, updated_at) \
             SELECT p.payment_id, ord.id, p.amount_total, p.currency, p.payment_status, p.now, p.now FROM p, ord), \
             ses AS (INSERT INTO checkout_sessions (order_id, token_hash, mode, success_url, cancel_url, status, \
             expires_at, created_at, updated_at) SELECT ord.id, p.token_hash, p.mode, p.success_url, p.cancel_url, \
             p.session_status, p.expires_at, p.now, p.now FROM p, ord), \
             evt AS (INSERT INTO webhook_events (id, merchant_id, livemode, event_type, payload, created_at) \
             SELECT p.event_id, p.merchant_id, p.livemode, p.event_type, p.event_payload, p.now FROM p, ord \
             WHERE EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.merchant_id = p.merchant_id \
             AND e.livemode = p.livemode AND e.status = p.endpoint_enabled \
             AND (e.event_types = '*' OR e.event_types LIKE p.event_pattern)) RETURNING id), \
             dlv AS (INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, \
             created_at) SELECT evt.id, e.id, p.delivery_status, 0, p.now, p.now FROM evt, p, webhook_endpoints e \
             WHERE e.merchant_id = p.merchant_id AND e.livemode = p.livemode AND e.status = p.endpoint_enabled \
             AND (e.event_types = '*' OR e.event_types LIKE p.event_pattern)) \
             SELECT EXISTS (SELECT 1 FROM ord)",
        );
        Ok(())
    }
}
