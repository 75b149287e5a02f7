//! The checkout aggregate: orders with their items, payments, sessions and idempotency records.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;
use domain::idempotency::IdempotencyKey;
use domain::idempotency::{Fingerprint, IdempotencyRecord, StoredOutcome};
use domain::order::{OrderStatus, PaymentStatus, SessionStatus};
use domain::ports::{CheckoutStore, Envelopes, KeyLookup, NewOrderRecords, Redemption, StoreError};
use domain::secret::SecretHash;
use domain::webhook::EventType;

use crate::connection::AnyConnection;
use crate::db::Database;
use crate::error::{RepoError, TxEnd};
use crate::merchant::KeyRecordRow;
use crate::orders::find_order;
use crate::outbox::{write_event, Outbox};
use crate::postgres::CreateCheckout;
use crate::rows::{
    insert, insert_unless_taken, NewCheckoutSession, NewIdempotencyKey, NewOrder, NewOrderItem, NewPayment,
};
use crate::schema::{api_keys, checkout_sessions, idempotency_keys, merchants, order_items, orders, payments};

/// Implements [`CheckoutStore`] on either backend.
#[derive(Clone)]
pub struct CheckoutRepository {
    db: Database,
    /// Writes the envelope of the `order.expired` event of an order that runs out on the way.
    envelopes: Arc<dyn Envelopes>,
}

impl std::fmt::Debug for CheckoutRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckoutRepository").field("db", &self.db).finish_non_exhaustive()
    }
}

impl CheckoutRepository {
    /// A repository over `db`; `envelopes` writes the events it causes.
    pub fn new(db: Database, envelopes: Arc<dyn Envelopes>) -> Self {
        Self { db, envelopes }
    }
}

pub(crate) fn encode_outcome(outcome: &StoredOutcome) -> Result<String, RepoError> {
    serde_json::to_string(outcome).map_err(|e| RepoError::Unexpected(Box::new(e)))
}

fn decode_record((fingerprint, outcome): (String, String)) -> Result<IdempotencyRecord, RepoError> {
    let outcome =
        serde_json::from_str(&outcome).map_err(|e| RepoError::Corrupt(format!("idempotency outcome: {e}")))?;
    Ok(IdempotencyRecord { fingerprint: Fingerprint::from_stored(fingerprint), outcome })
}

/// The idempotency key is held by a request that did not finish within the wait.
pub(crate) struct KeyBusy;

/// How the redemption transaction ends when it must roll back.
type Abort = TxEnd<KeyBusy>;

/// Maps a lock wait that ran out while taking the idempotency key to "in progress".
fn key_busy(error: diesel::result::Error) -> Abort {
    match RepoError::from(error) {
        RepoError::LockTimeout => TxEnd::Stop(KeyBusy),
        other => TxEnd::Repo(other),
    }
}

/// The rows a new checkout writes, made once: the step-by-step way and PostgreSQL's one statement
/// write exactly these.
pub(crate) struct CheckoutRows<'a> {
    pub(crate) key: NewIdempotencyKey<'a>,
    pub(crate) order: NewOrder<'a>,
    pub(crate) items: Vec<NewOrderItem<'a>>,
    pub(crate) payment: NewPayment<'a>,
    pub(crate) session: NewCheckoutSession<'a>,
    /// `order.created`.
    pub(crate) event: Outbox<'a>,
}

impl<'a> CheckoutRows<'a> {
    /// The rows of `c`, its key holding `outcome` (the stored outcome, encoded).
    pub(crate) fn of(c: &'a NewOrderRecords, outcome: &'a str) -> Self {
        Self {
            key: NewIdempotencyKey::of(c, outcome),
            order: NewOrder::of(c),
            items: NewOrderItem::all(c),
            payment: NewPayment::of(c),
            session: NewCheckoutSession::of(c),
            event: Outbox::of(&c.event),
        }
    }
}

/// Takes the idempotency key of `key`: `None` when it is ours now, or the live record of the
/// request that holds it. A record made at or before `stale_before` is past retention and replaced.
fn take_key(
    conn: &mut AnyConnection,
    key: &NewIdempotencyKey<'_>,
    stale_before: NaiveDateTime,
) -> Result<Option<IdempotencyRecord>, Abort> {
    let key_row = idempotency_keys::table.find((&key.merchant_id, key.livemode, key.idempotency_key));
    for _ in 0..2 {
        let taken = insert_unless_taken(conn, idempotency_keys::table, key).map_err(key_busy)?;
        if taken == 1 {
            return Ok(None);
        }
        let (fingerprint, stored, created_at) = key_row
            .select((idempotency_keys::fingerprint, idempotency_keys::outcome, idempotency_keys::created_at))
            .get_result::<(String, String, NaiveDateTime)>(conn)?;
        if created_at > stale_before {
            return Ok(Some(decode_record((fingerprint, stored))?));
        }
        // Past retention: the key is free again.
        diesel::delete(key_row.filter(idempotency_keys::created_at.le(stale_before))).execute(conn)?;
    }
    Err(TxEnd::Repo(RepoError::Unavailable("the idempotency key kept changing; retry".into())))
}

/// The order that holds the claim of `order` (its id, when it stops holding it, and version), in
/// either mode: a paid order holds its claim for good, and one with a charge running until the
/// provider answers; a pending one until it runs out.
fn claim_holder(
    conn: &mut AnyConnection,
    order: &NewOrder<'_>,
) -> Result<Option<(String, NaiveDateTime, i64)>, RepoError> {
    let holder = orders::table
        .inner_join(payments::table)
        .filter(orders::merchant_id.eq(&order.merchant_id))
        .filter(orders::claim_id.eq(order.claim_id))
        .filter(orders::status.eq_any([OrderStatus::Pending.as_str(), OrderStatus::Paid.as_str()]))
        .select((orders::id, orders::status, orders::expires_at, orders::version, payments::status))
        .get_result::<(String, String, NaiveDateTime, i64, String)>(conn)
        .optional()?;
    Ok(holder.map(|(id, status, expires_at, version, payment)| {
        let held = status == OrderStatus::Paid.as_str() || payment == PaymentStatus::Processing.as_str();
        (id, if held { NaiveDateTime::MAX } else { expires_at }, version)
    }))
}

/// Expires the pending order `order_id`, run out, as the sweeper would: only at the version read,
/// so the sweeper (or a charge starting) and this can never both change it.
fn expire_stale(
    conn: &mut AnyConnection,
    envelopes: &dyn Envelopes,
    order_id: &str,
    version: i64,
    at: DateTime<Utc>,
) -> Result<(), RepoError> {
    let now = at.naive_utc();
    let expired = diesel::update(orders::table.find(order_id).filter(orders::version.eq(version)))
        .set((
            orders::status.eq(OrderStatus::Expired.as_str()),
            orders::version.eq(version + 1),
            orders::updated_at.eq(now),
        ))
        .execute(conn)?;
    if expired == 1 {
        diesel::update(checkout_sessions::table.find(order_id))
            .set((checkout_sessions::status.eq(SessionStatus::Expired.as_str()), checkout_sessions::updated_at.eq(now)))
            .execute(conn)?;
        if let Some(found) = find_order(conn, order_id)? {
            write_event(conn, &domain::orders::event(envelopes, EventType::OrderExpired, &found, at))?;
        }
    }
    Ok(())
}

/// With the key taken: creates the order, its lines, payment and session, unless the claim backs a
/// paid order or an open one that has not run out (then records that outcome under the key
/// instead). A pending order past its expiry is marked expired, which frees the claim.
fn create_order(
    conn: &mut AnyConnection,
    envelopes: &dyn Envelopes,
    rows: &CheckoutRows<'_>,
    c: &NewOrderRecords,
) -> Result<Redemption, Abort> {
    let now = c.created_at.naive_utc();
    for _ in 0..MAX_EXPIRY_ROUNDS {
        // A pending order of the same claim makes this a no-op (the partial unique index).
        if insert_unless_taken(conn, orders::table, &rows.order)? == 1 {
            // One prepared insert per line: a multi-row insert is never a cached statement in
            // diesel, and claims carry few lines.
            for item in &rows.items {
                insert(conn, order_items::table, item)?;
            }
            insert(conn, payments::table, &rows.payment)?;
            insert(conn, checkout_sessions::table, &rows.session)?;
            rows.event.write(conn)?;
            return Ok(Redemption::Created);
        }
        match claim_holder(conn, &rows.order)? {
            Some((_, expires_at, _)) if expires_at > now => {
                let key = &rows.key;
                diesel::update(idempotency_keys::table.find((&key.merchant_id, key.livemode, key.idempotency_key)))
                    .set(idempotency_keys::outcome.eq(encode_outcome(&StoredOutcome::ClaimAlreadyRedeemed)?))
                    .execute(conn)?;
                return Ok(Redemption::ClaimAlreadyRedeemed);
            }
            Some((stale_id, _, version)) => expire_stale(conn, envelopes, &stale_id, version, c.created_at)?,
            // The open order changed state meanwhile: try the insert again.
            None => {}
        }
    }
    Err(TxEnd::Repo(RepoError::Unavailable("the claim's open order kept changing; retry".into())))
}

const MAX_EXPIRY_ROUNDS: usize = 3;

/// The whole redemption, step by step, inside the caller's transaction: take the key, then
/// create the order.
fn redeem_in(
    conn: &mut AnyConnection,
    envelopes: &dyn Envelopes,
    c: &NewOrderRecords,
    outcome: &str,
) -> Result<Redemption, Abort> {
    let rows = CheckoutRows::of(c, outcome);
    match take_key(conn, &rows.key, c.stale_before.naive_utc())? {
        Some(record) => Ok(Redemption::KeyTaken(record)),
        None => create_order(conn, envelopes, &rows, c),
    }
}

/// Most idempotency records one statement of the purge deletes.
const PURGE_BATCH: i64 = 1_000;

/// The redemption on either backend. On PostgreSQL the common case is one statement, its own
/// transaction; anything else (a taken key, a claim with an open order: a unique violation undoes
/// the statement) goes step by step in a transaction, as it always does on SQLite.
pub(crate) fn redeem(
    conn: &mut AnyConnection,
    envelopes: &dyn Envelopes,
    c: &NewOrderRecords,
    outcome: &str,
) -> Result<Redemption, Abort> {
    if let AnyConnection::Postgres(pg) = &mut *conn {
        let rows = CheckoutRows::of(c, outcome);
        let created = CreateCheckout::of(&rows)?.execute(pg);
        match created {
            Ok(_) => return Ok(Redemption::Created),
            Err(diesel::result::Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
            Err(error) => return Err(key_busy(error)),
        }
    }
    conn.write_transaction(|conn| redeem_in(conn, envelopes, c, outcome))
}

/// The caller's key (by the hash of its secret) with its merchant, and the live idempotency
/// record of `idempotency_key`, in one read.
fn lookup(
    conn: &mut AnyConnection,
    hash: &str,
    idempotency_key: &str,
    stale_before: NaiveDateTime,
) -> Result<Option<KeyLookup>, RepoError> {
    let row = api_keys::table
        .inner_join(merchants::table)
        .left_join(
            idempotency_keys::table.on(idempotency_keys::merchant_id
                .eq(api_keys::merchant_id)
                .and(idempotency_keys::livemode.eq(api_keys::livemode))
                .and(idempotency_keys::idempotency_key.eq(idempotency_key))
                .and(idempotency_keys::created_at.gt(stale_before))),
        )
        .filter(api_keys::secret_hash.eq(hash))
        .select((
            KeyRecordRow::as_select(),
            idempotency_keys::fingerprint.nullable(),
            idempotency_keys::outcome.nullable(),
        ))
        .get_result::<(KeyRecordRow, Option<String>, Option<String>)>(conn)
        .optional()?;
    let Some((key, fingerprint, outcome)) = row else {
        return Ok(None);
    };
    let record = fingerprint.zip(outcome).map(decode_record).transpose()?;
    Ok(Some(KeyLookup { key: key.into_record()?, record }))
}

impl CheckoutStore for CheckoutRepository {
    fn lookup(
        &self,
        hash: &SecretHash,
        idempotency_key: &IdempotencyKey,
        stale_before: DateTime<Utc>,
    ) -> Result<Option<KeyLookup>, StoreError> {
        let conn = &mut *self.db.conn()?;
        Ok(lookup(conn, hash.as_str(), idempotency_key.as_str(), stale_before.naive_utc())?)
    }

    fn purge_idempotency(&self, stale_before: DateTime<Utc>) -> Result<usize, StoreError> {
        let stale_before = stale_before.naive_utc();
        let mut purged = 0;
        // In batches, each its own short write, so that a backlog of records never holds the
        // write lock (SQLite's writer, PostgreSQL's WAL) long enough to stall creates.
        loop {
            let deleted = self.db.run(move |conn| -> Result<usize, RepoError> {
                // Up to the batch's newest record (a few more where several share its instant).
                let upto = idempotency_keys::table
                    .filter(idempotency_keys::created_at.le(stale_before))
                    .order(idempotency_keys::created_at)
                    .select(idempotency_keys::created_at)
                    .offset(PURGE_BATCH - 1)
                    .first::<NaiveDateTime>(conn)
                    .optional()?
                    .unwrap_or(stale_before);
                let stale = idempotency_keys::table.filter(idempotency_keys::created_at.le(upto));
                Ok(diesel::delete(stale).execute(conn)?)
            })?;
            purged += deleted;
            if deleted < PURGE_BATCH as usize {
                return Ok(purged);
            }
        }
    }

    fn redeem(&self, checkout: &NewOrderRecords) -> Result<Redemption, StoreError> {
        let outcome = encode_outcome(&checkout.outcome)?;
        let (checkout, envelopes) = (checkout.clone(), self.envelopes.clone());
        match self.db.run(move |conn| redeem(conn, &*envelopes, &checkout, &outcome)) {
            Ok(redemption) => Ok(redemption),
            Err(TxEnd::Stop(KeyBusy)) => Ok(Redemption::KeyInProgress),
            Err(TxEnd::Repo(error)) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use chrono::{Duration, DurationRound};
    use diesel::connection::SimpleConnection;
    use diesel::sql_types::Text;
    use domain::claim::LineItem;
    use domain::claim::VerifiedClaim;
    use domain::idempotency::IdempotencyScope;
    use domain::ids::{EndpointId, EventId, MerchantId, OrderId, PaymentId};
    use domain::livemode::Livemode;
    use domain::merchant::{Merchant, MerchantStatus};
    use domain::money::Currency;
    use domain::order::Mode;
    use domain::ports::MerchantStore;
    use domain::ports::WebhookStore;
    use domain::webhook::{subscription, Added, Endpoint, EndpointStatus, NewEvent};

    use super::*;
    use crate::db::DbOptions;
    use crate::{MerchantRepository, WebhookRepository};

    /// No order runs out here, so no envelope is ever written.
    struct Unused;

    impl Envelopes for Unused {
        fn envelope(&self, _: EventId, _: EventType, _: &domain::order::Order, _: DateTime<Utc>) -> String {
            unreachable!("no event is written about an order that runs out")
        }
    }

    /// A fresh PostgreSQL schema of the database named by `TEST_DATABASE_URL`, dropped afterwards.
    struct Schema {
        admin: String,
        name: String,
        db: Database,
    }

    impl Schema {
        fn new() -> Self {
            let admin = std::env::var("TEST_DATABASE_URL")
                .expect("TEST_DATABASE_URL must name a PostgreSQL database (scripts/test sets it up)");
            let name = format!("rows_{}", OrderId::new().to_string().to_ascii_lowercase());
            connect_admin(&admin).batch_execute(&format!("CREATE SCHEMA {name}")).unwrap();
            let sep = if admin.contains('?') { '&' } else { '?' };
            let url = format!("{admin}{sep}options=-csearch_path%3D{name}");
            let db = Database::connect(&DbOptions {
                url,
                pool_size: 1,
                lock_wait: std::time::Duration::from_secs(5),
                queue_timeout: std::time::Duration::from_secs(5),
            })
            .unwrap();
            db.migrate().unwrap();
            Self { admin, name, db }
        }

        /// Every row of `table`, as JSON, in a fixed order.
        fn rows(&self, table: &str) -> String {
            #[derive(QueryableByName)]
            struct Rows {
                #[diesel(sql_type = Text)]
                rows: String,
            }
            let sql = format!("SELECT coalesce(json_agg(t ORDER BY t::text), '[]')::text AS rows FROM {table} t");
            diesel::sql_query(sql).get_result::<Rows>(&mut *self.db.conn().unwrap()).unwrap().rows
        }
    }

    fn connect_admin(url: &str) -> diesel::pg::PgConnection {
        <diesel::pg::PgConnection as diesel::Connection>::establish(url).unwrap()
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let _ = connect_admin(&self.admin).batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name));
        }
    }

    /// A checkout of `merchant` with two lines, whose `order.created` one of three endpoints hears.
    fn checkout(merchant: MerchantId) -> NewOrderRecords {
        let now = Utc::now().duration_trunc(Duration::milliseconds(1)).unwrap();
        let (order_id, payment_id) = (OrderId::new(), PaymentId::new());
        let line = |sku: &str, quantity, unit_amount| LineItem {
            sku: sku.into(),
            name: format!("{sku} ticket"),
            quantity,
            unit_amount,
            amount: quantity * unit_amount,
        };
        let items = vec![line("GA", 2, 4_500), line("VIP", 1, 12_000)];
        let outcome = StoredOutcome::Created {
            order_id: order_id.to_string(),
            payment_id: payment_id.to_string(),
            mode: Mode::Embedded,
            expires_at: "2026-11-25T10:15:00.000Z".into(),
        };
        NewOrderRecords {
            scope: IdempotencyScope {
                merchant_id: merchant,
                livemode: Livemode::Test,
                key: IdempotencyKey::parse("rows-key-1").unwrap(),
            },
            fingerprint: Fingerprint::from_stored("ab".repeat(32)),
            outcome,
            order_id,
            payment_id,
            claim: VerifiedClaim {
                claim_id: "claim-1".into(),
                issuer: "issuer".into(),
                consumer_id: "consumer-1".into(),
                merchant_id: merchant,
                currency: Currency::parse("eur").unwrap(),
                amount_total: items.iter().map(|i| i.amount).sum(),
                items,
                expires_at: now + Duration::hours(1),
                experience_id: Some("exp-1".into()),
                distribution_id: None,
            },
            mode: Mode::Embedded,
            success_url: "https://shop.example/ok".into(),
            cancel_url: "https://shop.example/back".into(),
            token_hash: SecretHash::of("page-token"),
            expires_at: now + Duration::minutes(15),
            created_at: now,
            stale_before: now - Duration::hours(24),
            event: NewEvent {
                id: EventId::new(),
                event_type: EventType::OrderCreated,
                merchant_id: merchant,
                livemode: Livemode::Test,
                payload: r#"{"type":"order.created"}"#.into(),
                created_at: now,
            },
        }
    }

    /// The same merchant and endpoints in `schema`: one hears `order.created` in test mode, one
    /// hears other types only, one is live.
    fn seed(schema: &Schema, merchant: &Merchant, endpoints: &[Endpoint]) {
        MerchantRepository::new(schema.db.clone()).create_merchant(merchant).unwrap();
        for endpoint in endpoints {
            assert_eq!(WebhookRepository::new(schema.db.clone()).add_endpoint(endpoint, 10).unwrap(), Added::Added);
        }
    }

    #[test]
    fn the_one_statement_create_writes_the_rows_the_step_by_step_create_writes() {
        let (fast, steps) = (Schema::new(), Schema::new());
        let now = Utc::now().duration_trunc(Duration::milliseconds(1)).unwrap();
        let merchant =
            Merchant { id: MerchantId::new(), name: "Rows".into(), status: MerchantStatus::Active, created_at: now };
        let endpoint = |livemode, types: &[EventType]| Endpoint {
            id: EndpointId::new(),
            merchant_id: merchant.id,
            livemode,
            url: "https://hooks.example/in".into(),
            event_types: subscription(types),
            status: EndpointStatus::Enabled,
            disabled_reason: None,
            secret_version: 1,
            previous_until: None,
            created_at: now,
        };
        let endpoints = [
            endpoint(Livemode::Test, &[EventType::OrderCreated, EventType::OrderCompleted]),
            endpoint(Livemode::Test, &[EventType::OrderCompleted]),
            endpoint(Livemode::Live, &[]),
        ];
        seed(&fast, &merchant, &endpoints);
        seed(&steps, &merchant, &endpoints);
        let c = checkout(merchant.id);
        let outcome = encode_outcome(&c.outcome).unwrap();

        let rows = CheckoutRows::of(&c, &outcome);
        match &mut *fast.db.conn().unwrap() {
            AnyConnection::Postgres(pg) => CreateCheckout::of(&rows).unwrap().execute(pg).unwrap(),
            AnyConnection::Sqlite(_) => panic!("TEST_DATABASE_URL is not PostgreSQL"),
        };
        let created = steps.db.conn().unwrap().write_transaction(|conn| redeem_in(conn, &Unused, &c, &outcome));
        assert!(matches!(created, Ok(Redemption::Created)));

        let tables = [
            ("idempotency_keys", 1),
            ("orders", 1),
            ("order_items", 2),
            ("payments", 1),
            ("checkout_sessions", 1),
            ("webhook_events", 1),
            ("webhook_deliveries", 1),
        ];
        for (table, count) in tables {
            let written = fast.rows(table);
            assert_eq!(written, steps.rows(table), "{table} differs");
            let parsed: serde_json::Value = serde_json::from_str(&written).unwrap();
            assert_eq!(parsed.as_array().map(Vec::len), Some(count), "{table}: {written}");
        }
    }
}
