//! The checkout aggregate: orders with their items, payments, sessions and idempotency records.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;
use domain::idempotency::IdempotencyKey;
use domain::idempotency::{Fingerprint, IdempotencyRecord, StoredOutcome};
use domain::order::{OrderStatus, PaymentStatus, SessionStatus};
use domain::ports::{CheckoutStore, KeyLookup, NewCheckout, Redemption, StoreError};
use domain::secret::SecretHash;
use domain::webhook::EventType;

use crate::db::{with_conn, Database};
use crate::error::{RepoError, TxEnd};
use crate::merchant::KeyRecordRow;
use crate::outbox::write_event;
use crate::postgres::CreateCheckout;
use crate::schema::{api_keys, checkout_sessions, idempotency_keys, merchants, order_items, orders, payments};
use crate::session::{load, record};

/// Implements [`CheckoutStore`] on either backend.
#[derive(Debug, Clone)]
pub struct CheckoutRepository {
    db: Database,
}

impl CheckoutRepository {
    /// A repository over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn encode_outcome(outcome: &StoredOutcome) -> Result<String, RepoError> {
    serde_json::to_string(outcome).map_err(|e| RepoError::Unexpected(Box::new(e)))
}

fn decode_record((fingerprint, outcome): (String, String)) -> Result<IdempotencyRecord, RepoError> {
    let outcome =
        serde_json::from_str(&outcome).map_err(|e| RepoError::Corrupt(format!("idempotency outcome: {e}")))?;
    Ok(IdempotencyRecord { fingerprint: Fingerprint::from_stored(fingerprint), outcome })
}

/// The idempotency key is held by a request that did not finish within the wait.
struct KeyBusy;

/// How the redemption transaction ends when it must roll back.
type Abort = TxEnd<KeyBusy>;

/// The columns of a checkout's rows, bound once per request.
struct Row<'a> {
    c: &'a NewCheckout,
    merchant_id: String,
    order_id: String,
    livemode: bool,
    now: NaiveDateTime,
}

impl<'a> Row<'a> {
    fn of(c: &'a NewCheckout) -> Self {
        Self {
            c,
            merchant_id: c.scope.merchant_id.to_string(),
            order_id: c.order_id.to_string(),
            livemode: c.scope.livemode.is_live(),
            now: c.created_at.naive_utc(),
        }
    }
}

/// Maps a lock wait that ran out while taking the idempotency key to "in progress".
fn key_busy(error: diesel::result::Error) -> Abort {
    match RepoError::from(error) {
        RepoError::LockTimeout => TxEnd::Stop(KeyBusy),
        other => TxEnd::Repo(other),
    }
}

/// Takes the idempotency key for this request: `None` when it is ours now, or the live record of
/// the request that holds it. A record past retention is replaced.
macro_rules! take_key {
    ($conn:ident, $row:expr, $outcome:expr) => {{
        let r: &Row = $row;
        let key_row = idempotency_keys::table.find((&r.merchant_id, r.livemode, r.c.scope.key.as_str()));
        let stale_before = r.c.stale_before.naive_utc();
        let mut found = Err(TxEnd::Repo(RepoError::Unavailable("the idempotency key kept changing; retry".into())));
        for _ in 0..2 {
            let taken = diesel::insert_into(idempotency_keys::table)
                .values((
                    idempotency_keys::merchant_id.eq(&r.merchant_id),
                    idempotency_keys::livemode.eq(r.livemode),
                    idempotency_keys::idempotency_key.eq(r.c.scope.key.as_str()),
                    idempotency_keys::fingerprint.eq(r.c.fingerprint.as_str()),
                    idempotency_keys::outcome.eq($outcome),
                    idempotency_keys::created_at.eq(r.now),
                ))
                .on_conflict_do_nothing()
                .execute($conn)
                .map_err(key_busy)?;
            if taken == 1 {
                found = Ok(None);
                break;
            }
            let (fingerprint, stored, created_at) = key_row
                .select((idempotency_keys::fingerprint, idempotency_keys::outcome, idempotency_keys::created_at))
                .first::<(String, String, NaiveDateTime)>($conn)?;
            if created_at > stale_before {
                found = Ok(Some(decode_record((fingerprint, stored))?));
                break;
            }
            // Past retention: the key is free again.
            diesel::delete(key_row.filter(idempotency_keys::created_at.le(stale_before))).execute($conn)?;
        }
        found
    }};
}

/// With the key taken: creates the order, its lines, payment and session, unless the claim backs a
/// paid order or an open one that has not run out (then records that outcome under the key
/// instead). A pending order past its expiry is marked expired, which frees the claim.
macro_rules! create_order {
    ($conn:ident, $row:expr) => {{
        let r: &Row = $row;
        let (c, claim) = (r.c, &r.c.claim);
        let order = (
            orders::id.eq(&r.order_id),
            orders::merchant_id.eq(&r.merchant_id),
            orders::livemode.eq(r.livemode),
            orders::claim_id.eq(&claim.claim_id),
            orders::claim_issuer.eq(&claim.issuer),
            orders::consumer_id.eq(&claim.consumer_id),
            orders::experience_id.eq(claim.experience_id.as_deref()),
            orders::distribution_id.eq(claim.distribution_id.as_deref()),
            orders::currency.eq(claim.currency.as_str()),
            orders::amount_total.eq(claim.amount_total),
            orders::status.eq(OrderStatus::Pending.as_str()),
            orders::expires_at.eq(c.expires_at.naive_utc()),
            orders::created_at.eq(r.now),
            orders::updated_at.eq(r.now),
        );
        let mut outcome =
            Err(TxEnd::Repo(RepoError::Unavailable("the claim's open order kept changing; retry".into())));
        for _ in 0..MAX_EXPIRY_ROUNDS {
            // A pending order of the same claim makes this a no-op (the partial unique index).
            if diesel::insert_into(orders::table).values(&order).on_conflict_do_nothing().execute($conn)? == 1 {
                insert_lines!($conn, r);
                write_event!($conn, &c.event);
                outcome = Ok(Redemption::Created);
                break;
            }
            // The order that holds the claim, in either mode: paid, or pending (and maybe run out).
            let holder = orders::table
                .inner_join(payments::table)
                .filter(orders::merchant_id.eq(&r.merchant_id))
                .filter(orders::claim_id.eq(&claim.claim_id))
                .filter(orders::status.eq_any([OrderStatus::Pending.as_str(), OrderStatus::Paid.as_str()]))
                .select((orders::id, orders::status, orders::expires_at, orders::version, payments::status))
                .first::<(String, String, NaiveDateTime, i64, String)>($conn)
                .optional()?;
            let open = holder.map(|(id, status, expires_at, version, payment)| {
                // A paid order holds its claim for good, and one with a charge running holds it
                // until the provider answers.
                let held = status == OrderStatus::Paid.as_str() || payment == PaymentStatus::Processing.as_str();
                (id, if held { NaiveDateTime::MAX } else { expires_at }, version)
            });
            match open {
                Some((_, expires_at, _)) if expires_at > r.now => {
                    diesel::update(idempotency_keys::table.find((&r.merchant_id, r.livemode, c.scope.key.as_str())))
                        .set(idempotency_keys::outcome.eq(encode_outcome(&StoredOutcome::ClaimAlreadyRedeemed)?))
                        .execute($conn)?;
                    outcome = Ok(Redemption::ClaimAlreadyRedeemed);
                    break;
                }
                Some((stale_id, _, version)) => {
                    // Expired as the sweeper would: only at the version read, so the sweeper (or a
                    // charge starting) and this can never both change it.
                    let expired = diesel::update(orders::table.find(&stale_id).filter(orders::version.eq(version)))
                        .set((
                            orders::status.eq(OrderStatus::Expired.as_str()),
                            orders::version.eq(version + 1),
                            orders::updated_at.eq(r.now),
                        ))
                        .execute($conn)?;
                    if expired == 1 {
                        diesel::update(checkout_sessions::table.find(&stale_id))
                            .set((
                                checkout_sessions::status.eq(SessionStatus::Expired.as_str()),
                                checkout_sessions::updated_at.eq(r.now),
                            ))
                            .execute($conn)?;
                        if let Some(found) = load!($conn, orders::id.eq(&stale_id)) {
                            let expired = record(found)?.event(EventType::OrderExpired, c.created_at);
                            write_event!($conn, &expired);
                        }
                    }
                }
                // The open order changed state meanwhile: try the insert again.
                None => {}
            }
        }
        outcome
    }};
}

/// The order's lines, its pending payment and its open session.
macro_rules! insert_lines {
    ($conn:ident, $row:expr) => {{
        let r: &Row = $row;
        let (c, claim) = (r.c, &r.c.claim);
        // One prepared insert per line: a multi-row insert is never a cached statement in diesel,
        // and claims carry few lines.
        for (position, item) in claim.items.iter().enumerate() {
            diesel::insert_into(order_items::table)
                .values((
                    order_items::order_id.eq(&r.order_id),
                    order_items::position.eq(i32::try_from(position).unwrap_or(i32::MAX)),
                    order_items::sku.eq(&item.sku),
                    order_items::name.eq(&item.name),
                    order_items::quantity.eq(item.quantity),
                    order_items::unit_amount.eq(item.unit_amount),
                    order_items::amount.eq(item.amount),
                ))
                .execute($conn)?;
        }
        diesel::insert_into(payments::table)
            .values((
                payments::id.eq(c.payment_id.to_string()),
                payments::order_id.eq(&r.order_id),
                payments::amount.eq(claim.amount_total),
                payments::currency.eq(claim.currency.as_str()),
                payments::status.eq(PaymentStatus::Pending.as_str()),
                payments::created_at.eq(r.now),
                payments::updated_at.eq(r.now),
            ))
            .execute($conn)?;
        diesel::insert_into(checkout_sessions::table)
            .values((
                checkout_sessions::order_id.eq(&r.order_id),
                checkout_sessions::token_hash.eq(c.token_hash.as_str()),
                checkout_sessions::mode.eq(c.mode.as_str()),
                checkout_sessions::success_url.eq(&c.success_url),
                checkout_sessions::cancel_url.eq(&c.cancel_url),
                checkout_sessions::status.eq(SessionStatus::Open.as_str()),
                checkout_sessions::expires_at.eq(c.expires_at.naive_utc()),
                checkout_sessions::created_at.eq(r.now),
                checkout_sessions::updated_at.eq(r.now),
            ))
            .execute($conn)?;
    }};
}

/// The whole redemption, step by step: take the key, then create the order.
macro_rules! redeem_in {
    ($conn:ident, $row:expr, $outcome:expr) => {{
        let r: &Row = $row;
        match take_key!($conn, r, $outcome)? {
            Some(record) => Ok(Redemption::KeyTaken(record)),
            None => create_order!($conn, r),
        }
    }};
}

const MAX_EXPIRY_ROUNDS: usize = 3;

impl CheckoutStore for CheckoutRepository {
    fn lookup(
        &self,
        hash: &SecretHash,
        idempotency_key: &IdempotencyKey,
        stale_before: DateTime<Utc>,
    ) -> Result<Option<KeyLookup>, StoreError> {
        let row = with_conn!(&self.db, |conn| api_keys::table
            .inner_join(merchants::table)
            .left_join(
                idempotency_keys::table.on(idempotency_keys::merchant_id
                    .eq(api_keys::merchant_id)
                    .and(idempotency_keys::livemode.eq(api_keys::livemode))
                    .and(idempotency_keys::idempotency_key.eq(idempotency_key.as_str()))
                    .and(idempotency_keys::created_at.gt(stale_before.naive_utc()))),
            )
            .filter(api_keys::secret_hash.eq(hash.as_str()))
            .select((
                KeyRecordRow::as_select(),
                idempotency_keys::fingerprint.nullable(),
                idempotency_keys::outcome.nullable()
            ))
            .first::<(KeyRecordRow, Option<String>, Option<String>)>(conn)
            .optional()
            .map_err(RepoError::from)?);
        let Some((key, fingerprint, outcome)) = row else {
            return Ok(None);
        };
        let record = fingerprint.zip(outcome).map(decode_record).transpose()?;
        Ok(Some(KeyLookup { key: key.into_record()?, record }))
    }

    fn purge_idempotency(&self, stale_before: DateTime<Utc>) -> Result<usize, StoreError> {
        Ok(with_conn!(&self.db, |conn| diesel::delete(
            idempotency_keys::table.filter(idempotency_keys::created_at.le(stale_before.naive_utc()))
        )
        .execute(conn)
        .map_err(RepoError::from)?))
    }

    fn redeem(&self, checkout: &NewCheckout) -> Result<Redemption, StoreError> {
        let outcome = encode_outcome(&checkout.outcome)?;
        let result: Result<Redemption, Abort> = match &self.db {
            Database::Postgres(pool) => {
                let mut conn = pool.get().map_err(RepoError::from)?;
                // The common case is one statement, its own transaction; anything else (a taken
                // key, a claim with an open order) goes step by step in a transaction.
                match CreateCheckout::new(checkout, &outcome).get_result::<bool>(&mut **conn) {
                    Ok(true) => Ok(Redemption::Created),
                    Ok(false) | Err(diesel::result::Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                        conn.transaction(|conn| redeem_in!(conn, &Row::of(checkout), &outcome))
                    }
                    Err(error) => Err(key_busy(error)),
                }
            }
            // `BEGIN IMMEDIATE`: the write lock is taken up front, never half-way through.
            Database::Sqlite { writer, .. } => {
                let checkout = checkout.clone();
                writer.run(move |conn| {
                    Ok(conn.immediate_transaction(|conn| redeem_in!(conn, &Row::of(&checkout), &outcome)))
                })?
            }
        };
        match result {
            Ok(redemption) => Ok(redemption),
            Err(TxEnd::Stop(KeyBusy)) => Ok(Redemption::KeyInProgress),
            Err(TxEnd::Repo(error)) => Err(error.into()),
        }
    }
}
