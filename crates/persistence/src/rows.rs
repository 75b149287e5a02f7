//! The one definition of each new row, per table: every insert writes one of these (through
//! [`insert`] or [`insert_unless_taken`]), and PostgreSQL's one-statement create
//! ([`crate::postgres`]) is made of the very same inserts. (The
//! webhook outbox's two tables are written only by the outbox's own two statements, in
//! [`crate::outbox`].)
//!
//! `treat_none_as_default_value = false` writes `None` as `NULL` instead of `DEFAULT`: the SQL
//! then never depends on the values, so diesel prepares each insert once per connection.
//! Columns a new row leaves to the database's default (an order's `version`) are not here.

use chrono::NaiveDateTime;
use diesel::pg::PgConnection;
use diesel::query_builder::InsertStatement;
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::sqlite::SqliteConnection;
use diesel::{Insertable, QueryResult, Table};
use domain::merchant::{ApiKeySummary, Merchant};
use domain::order::Attempt;
use domain::order::{OrderStatus, PaymentStatus, SessionStatus};
use domain::payment::DeclineCode;
use domain::ports::NewOrderRecords;
use domain::secret::SecretHash;
use domain::webhook::Endpoint;

use crate::connection::{execute, AnyConnection, OrIgnore};
use crate::schema::{
    api_keys, checkout_sessions, idempotency_keys, merchants, order_items, orders, payment_attempts, payments,
    webhook_endpoints,
};

/// Inserts `row` into `table` (on the backend's own connection: [`execute`]).
pub(crate) fn insert<T, R>(conn: &mut AnyConnection, table: T, row: R) -> QueryResult<usize>
where
    T: Table,
    R: Insertable<T>,
    InsertStatement<T, R::Values>: ExecuteDsl<PgConnection> + ExecuteDsl<SqliteConnection>,
{
    execute(conn, diesel::insert_into(table).values(row))
}

/// Inserts `row` into `table` unless that breaks a uniqueness rule; answers how many rows it
/// inserted (0 or 1).
pub(crate) fn insert_unless_taken<T, R>(conn: &mut AnyConnection, table: T, row: R) -> QueryResult<usize>
where
    T: Table,
    R: Insertable<T>,
    OrIgnore<InsertStatement<T, R::Values>>: ExecuteDsl<PgConnection> + ExecuteDsl<SqliteConnection>,
{
    execute(conn, OrIgnore(diesel::insert_into(table).values(row)))
}

/// A new merchant.
#[derive(Insertable)]
#[diesel(table_name = merchants, treat_none_as_default_value = false)]
pub(crate) struct NewMerchant<'a> {
    id: String,
    name: &'a str,
    status: &'static str,
    created_at: NaiveDateTime,
}

impl<'a> NewMerchant<'a> {
    pub(crate) fn of(merchant: &'a Merchant) -> Self {
        Self {
            id: merchant.id.to_string(),
            name: &merchant.name,
            status: merchant.status.as_str(),
            created_at: merchant.created_at.naive_utc(),
        }
    }
}

/// A new secret key (its hash only).
#[derive(Insertable)]
#[diesel(table_name = api_keys, treat_none_as_default_value = false)]
pub(crate) struct NewApiKey<'a> {
    id: String,
    merchant_id: String,
    livemode: bool,
    secret_hash: &'a str,
    hint: &'a str,
    created_at: NaiveDateTime,
}

impl<'a> NewApiKey<'a> {
    pub(crate) fn of(key: &'a ApiKeySummary, hash: &'a SecretHash) -> Self {
        Self {
            id: key.id.to_string(),
            merchant_id: key.merchant_id.to_string(),
            livemode: key.livemode.is_live(),
            secret_hash: hash.as_str(),
            hint: &key.hint,
            created_at: key.created_at.naive_utc(),
        }
    }
}

/// The idempotency record a new checkout takes its key with.
#[derive(Insertable)]
#[diesel(table_name = idempotency_keys, treat_none_as_default_value = false)]
pub(crate) struct NewIdempotencyKey<'a> {
    pub(crate) merchant_id: String,
    pub(crate) livemode: bool,
    pub(crate) idempotency_key: &'a str,
    fingerprint: &'a str,
    outcome: &'a str,
    created_at: NaiveDateTime,
}

impl<'a> NewIdempotencyKey<'a> {
    /// The record of `c`, holding `outcome` (the stored outcome, encoded).
    pub(crate) fn of(c: &'a NewOrderRecords, outcome: &'a str) -> Self {
        Self {
            merchant_id: c.scope.merchant_id.to_string(),
            livemode: c.scope.livemode.is_live(),
            idempotency_key: c.scope.key.as_str(),
            fingerprint: c.fingerprint.as_str(),
            outcome,
            created_at: c.created_at.naive_utc(),
        }
    }
}

/// A new pending order.
#[derive(Insertable)]
#[diesel(table_name = orders, treat_none_as_default_value = false)]
pub(crate) struct NewOrder<'a> {
    pub(crate) id: String,
    pub(crate) merchant_id: String,
    livemode: bool,
    pub(crate) claim_id: &'a str,
    claim_issuer: &'a str,
    consumer_id: &'a str,
    experience_id: Option<&'a str>,
    distribution_id: Option<&'a str>,
    currency: &'a str,
    amount_total: i64,
    status: &'static str,
    expires_at: NaiveDateTime,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl<'a> NewOrder<'a> {
    pub(crate) fn of(c: &'a NewOrderRecords) -> Self {
        let claim = &c.claim;
        Self {
            id: c.order_id.to_string(),
            merchant_id: c.scope.merchant_id.to_string(),
            livemode: c.scope.livemode.is_live(),
            claim_id: &claim.claim_id,
            claim_issuer: &claim.issuer,
            consumer_id: &claim.consumer_id,
            experience_id: claim.experience_id.as_deref(),
            distribution_id: claim.distribution_id.as_deref(),
            currency: claim.currency.as_str(),
            amount_total: claim.amount_total,
            status: OrderStatus::Pending.as_str(),
            expires_at: c.expires_at.naive_utc(),
            created_at: c.created_at.naive_utc(),
            updated_at: c.created_at.naive_utc(),
        }
    }
}

/// One line of a new order. (PostgreSQL's one-statement create sends the lines as JSON, each field
/// under its column's name: see [`crate::postgres`].)
#[derive(Insertable, serde::Serialize)]
#[diesel(table_name = order_items, treat_none_as_default_value = false)]
pub(crate) struct NewOrderItem<'a> {
    order_id: String,
    position: i32,
    sku: &'a str,
    name: &'a str,
    quantity: i64,
    unit_amount: i64,
    amount: i64,
}

impl<'a> NewOrderItem<'a> {
    /// The lines of `c`'s order, in the claim's order.
    pub(crate) fn all(c: &'a NewOrderRecords) -> Vec<Self> {
        c.claim
            .items
            .iter()
            .enumerate()
            .map(|(position, item)| Self {
                order_id: c.order_id.to_string(),
                position: i32::try_from(position).unwrap_or(i32::MAX),
                sku: &item.sku,
                name: &item.name,
                quantity: item.quantity,
                unit_amount: item.unit_amount,
                amount: item.amount,
            })
            .collect()
    }
}

/// A new order's pending payment.
#[derive(Insertable)]
#[diesel(table_name = payments, treat_none_as_default_value = false)]
pub(crate) struct NewPayment<'a> {
    id: String,
    order_id: String,
    amount: i64,
    currency: &'a str,
    status: &'static str,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl<'a> NewPayment<'a> {
    pub(crate) fn of(c: &'a NewOrderRecords) -> Self {
        Self {
            id: c.payment_id.to_string(),
            order_id: c.order_id.to_string(),
            amount: c.claim.amount_total,
            currency: c.claim.currency.as_str(),
            status: PaymentStatus::Pending.as_str(),
            created_at: c.created_at.naive_utc(),
            updated_at: c.created_at.naive_utc(),
        }
    }
}

/// A new order's open checkout session.
#[derive(Insertable)]
#[diesel(table_name = checkout_sessions, treat_none_as_default_value = false)]
pub(crate) struct NewCheckoutSession<'a> {
    order_id: String,
    token_hash: &'a str,
    mode: &'static str,
    success_url: &'a str,
    cancel_url: &'a str,
    status: &'static str,
    expires_at: NaiveDateTime,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl<'a> NewCheckoutSession<'a> {
    pub(crate) fn of(c: &'a NewOrderRecords) -> Self {
        Self {
            order_id: c.order_id.to_string(),
            token_hash: c.token_hash.as_str(),
            mode: c.mode.as_str(),
            success_url: &c.success_url,
            cancel_url: &c.cancel_url,
            status: SessionStatus::Open.as_str(),
            expires_at: c.expires_at.naive_utc(),
            created_at: c.created_at.naive_utc(),
            updated_at: c.created_at.naive_utc(),
        }
    }
}

/// A charge attempt, recorded before the provider is called.
#[derive(Insertable)]
#[diesel(table_name = payment_attempts, treat_none_as_default_value = false)]
pub(crate) struct NewPaymentAttempt<'a> {
    id: &'a str,
    payment_id: &'a str,
    provider: &'a str,
    outcome: &'static str,
    decline_code: Option<&'static str>,
    card_brand: &'a str,
    card_last4: &'a str,
    created_at: NaiveDateTime,
}

impl<'a> NewPaymentAttempt<'a> {
    pub(crate) fn of(attempt: &'a Attempt, payment_id: &'a str) -> Self {
        Self {
            id: &attempt.id,
            payment_id,
            provider: &attempt.provider,
            outcome: attempt.outcome.as_str(),
            decline_code: attempt.decline_code.map(DeclineCode::as_str),
            card_brand: &attempt.card_brand,
            card_last4: &attempt.card_last4,
            created_at: attempt.created_at.naive_utc(),
        }
    }
}

/// A new webhook endpoint.
#[derive(Insertable)]
#[diesel(table_name = webhook_endpoints, treat_none_as_default_value = false)]
pub(crate) struct NewWebhookEndpoint<'a> {
    id: String,
    pub(crate) merchant_id: String,
    pub(crate) livemode: bool,
    url: &'a str,
    event_types: &'a str,
    status: &'static str,
    secret_version: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl<'a> NewWebhookEndpoint<'a> {
    pub(crate) fn of(endpoint: &'a Endpoint) -> Self {
        Self {
            id: endpoint.id.to_string(),
            merchant_id: endpoint.merchant_id.to_string(),
            livemode: endpoint.livemode.is_live(),
            url: &endpoint.url,
            event_types: &endpoint.event_types,
            status: endpoint.status.as_str(),
            secret_version: endpoint.secret_version,
            created_at: endpoint.created_at.naive_utc(),
            updated_at: endpoint.created_at.naive_utc(),
        }
    }
}
