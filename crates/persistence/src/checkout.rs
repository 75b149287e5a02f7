//! The checkout aggregate: orders with their items, payments, sessions and idempotency records.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use domain::idempotency::IdempotencyKey;
use domain::idempotency::{Fingerprint, IdempotencyRecord, StoredOutcome};
use domain::order::{OrderStatus, PaymentStatus, SessionStatus};
use domain::ports::{CheckoutStore, KeyLookup, NewCheckout, Redemption, StoreError};
use domain::secret::SecretHash;

use crate::db::{with_conn, Database};
use crate::error::RepoError;
use crate::merchant::{key_record, KeyRecordRow, KEY_RECORD_COLUMNS};
use crate::schema::{api_keys, checkout_sessions, idempotency_keys, merchants, order_items, orders, payments};

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

/// How the redemption transaction ends when it must roll back.
enum Abort {
    KeyBusy,
    Repo(RepoError),
}

impl From<diesel::result::Error> for Abort {
    fn from(error: diesel::result::Error) -> Self {
        Abort::Repo(error.into())
    }
}

impl From<RepoError> for Abort {
    fn from(error: RepoError) -> Self {
        Abort::Repo(error)
    }
}

/// Tries to insert the order; a pending order of the same claim makes it a no-op (0 rows).
const MAX_EXPIRY_ROUNDS: usize = 3;

macro_rules! redeem_in {
    ($conn:ident, $c:expr) => {{
        let c: &NewCheckout = $c;
        let scope = &c.scope;
        let merchant_id = scope.merchant_id.to_string();
        let order_id = c.order_id.to_string();
        let now = c.created_at.naive_utc();
        let livemode = scope.livemode.is_live();

        let key_row = idempotency_keys::table.find((&merchant_id, livemode, scope.key.as_str()));
        let outcome = encode_outcome(&c.outcome)?;
        let mut taken = false;
        for _ in 0..2 {
            taken = diesel::insert_into(idempotency_keys::table)
                .values((
                    idempotency_keys::merchant_id.eq(&merchant_id),
                    idempotency_keys::livemode.eq(livemode),
                    idempotency_keys::idempotency_key.eq(scope.key.as_str()),
                    idempotency_keys::fingerprint.eq(c.fingerprint.as_str()),
                    idempotency_keys::outcome.eq(&outcome),
                    idempotency_keys::created_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute($conn)
                .map_err(|e| match RepoError::from(e) {
                    RepoError::LockTimeout => Abort::KeyBusy,
                    other => Abort::Repo(other),
                })?
                == 1;
            if taken {
                break;
            }
            let (fingerprint, stored, created_at) = key_row
                .select((idempotency_keys::fingerprint, idempotency_keys::outcome, idempotency_keys::created_at))
                .first::<(String, String, NaiveDateTime)>($conn)?;
            if created_at > c.stale_before.naive_utc() {
                return Ok(Redemption::KeyTaken(decode_record((fingerprint, stored))?));
            }
            // Past retention: the key is free again.
            diesel::delete(key_row.filter(idempotency_keys::created_at.le(c.stale_before.naive_utc())))
                .execute($conn)?;
        }
        if !taken {
            return Err(Abort::Repo(RepoError::Unavailable("the idempotency key kept changing; retry".into())));
        }

        let claim = &c.claim;
        let order = (
            orders::id.eq(&order_id),
            orders::merchant_id.eq(&merchant_id),
            orders::livemode.eq(livemode),
            orders::claim_id.eq(&claim.claim_id),
            orders::claim_issuer.eq(&claim.issuer),
            orders::consumer_id.eq(&claim.consumer_id),
            orders::experience_id.eq(claim.experience_id.as_deref()),
            orders::distribution_id.eq(claim.distribution_id.as_deref()),
            orders::currency.eq(claim.currency.as_str()),
            orders::amount_total.eq(claim.amount_total),
            orders::status.eq(OrderStatus::Pending.as_str()),
            orders::expires_at.eq(c.expires_at.naive_utc()),
            orders::created_at.eq(now),
            orders::updated_at.eq(now),
        );
        let mut inserted = false;
        for _ in 0..MAX_EXPIRY_ROUNDS {
            if diesel::insert_into(orders::table).values(&order).on_conflict_do_nothing().execute($conn)? == 1 {
                inserted = true;
                break;
            }
            // The claim backs an open order: refuse, unless that order has run out.
            let open = orders::table
                .filter(orders::merchant_id.eq(&merchant_id))
                .filter(orders::livemode.eq(livemode))
                .filter(orders::claim_id.eq(&claim.claim_id))
                .filter(orders::status.eq(OrderStatus::Pending.as_str()))
                .select((orders::id, orders::expires_at))
                .first::<(String, NaiveDateTime)>($conn)
                .optional()?;
            match open {
                Some((_, expires_at)) if expires_at > now => {
                    diesel::update(key_row)
                        .set(idempotency_keys::outcome.eq(encode_outcome(&StoredOutcome::ClaimAlreadyRedeemed)?))
                        .execute($conn)?;
                    return Ok(Redemption::ClaimAlreadyRedeemed);
                }
                Some((stale_id, _)) => {
                    diesel::update(
                        orders::table.find(&stale_id).filter(orders::status.eq(OrderStatus::Pending.as_str())),
                    )
                    .set((orders::status.eq(OrderStatus::Expired.as_str()), orders::updated_at.eq(now)))
                    .execute($conn)?;
                    diesel::update(
                        checkout_sessions::table
                            .find(&stale_id)
                            .filter(checkout_sessions::status.eq(SessionStatus::Open.as_str())),
                    )
                    .set((
                        checkout_sessions::status.eq(SessionStatus::Expired.as_str()),
                        checkout_sessions::updated_at.eq(now),
                    ))
                    .execute($conn)?;
                }
                // The open order changed state meanwhile: try the insert again.
                None => {}
            }
        }
        if !inserted {
            return Err(Abort::Repo(RepoError::Unavailable("the claim's open order kept changing; retry".into())));
        }

        // One prepared insert per line: a multi-row insert is never a cached statement in diesel,
        // and claims carry few lines.
        for (position, item) in claim.items.iter().enumerate() {
            diesel::insert_into(order_items::table)
                .values((
                    order_items::order_id.eq(&order_id),
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
                payments::order_id.eq(&order_id),
                payments::amount.eq(claim.amount_total),
                payments::currency.eq(claim.currency.as_str()),
                payments::status.eq(PaymentStatus::Pending.as_str()),
                payments::created_at.eq(now),
                payments::updated_at.eq(now),
            ))
            .execute($conn)?;
        diesel::insert_into(checkout_sessions::table)
            .values((
                checkout_sessions::order_id.eq(&order_id),
                checkout_sessions::token_hash.eq(c.token_hash.as_str()),
                checkout_sessions::mode.eq(c.mode.as_str()),
                checkout_sessions::success_url.eq(&c.success_url),
                checkout_sessions::cancel_url.eq(&c.cancel_url),
                checkout_sessions::status.eq(SessionStatus::Open.as_str()),
                checkout_sessions::expires_at.eq(c.expires_at.naive_utc()),
                checkout_sessions::created_at.eq(now),
                checkout_sessions::updated_at.eq(now),
            ))
            .execute($conn)?;
        Ok(Redemption::Created)
    }};
}

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
                KEY_RECORD_COLUMNS,
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
        Ok(Some(KeyLookup { key: key_record(key)?, record }))
    }

    fn redeem(&self, checkout: &NewCheckout) -> Result<Redemption, StoreError> {
        let result: Result<Redemption, Abort> = match &self.db {
            Database::Postgres(pool) => {
                pool.get().map_err(RepoError::from)?.transaction(|conn| redeem_in!(conn, checkout))
            }
            // `BEGIN IMMEDIATE`: the write lock is taken up front, never half-way through.
            Database::Sqlite { writer, .. } => {
                let checkout = checkout.clone();
                writer.run(move |conn| Ok(conn.immediate_transaction(|conn| redeem_in!(conn, &checkout))))?
            }
        };
        match result {
            Ok(redemption) => Ok(redemption),
            Err(Abort::KeyBusy) => Ok(Redemption::KeyInProgress),
            Err(Abort::Repo(error)) => Err(error.into()),
        }
    }
}
