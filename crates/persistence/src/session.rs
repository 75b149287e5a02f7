//! Checkouts as the page, the merchant API and the sweeper see them; transitions as
//! compare-and-set updates, so two replicas (or two browser tabs) can never both win.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use domain::ids::{MerchantId, OrderId};
use domain::lifecycle::Checkout;
use domain::merchant::{Livemode, MerchantStatus};
use domain::money::Currency;
use domain::order::{AttemptOutcome, CancellationReason, LineItem, Mode, OrderStatus, PaymentStatus, SessionStatus};
use domain::payment::DeclineCode;
use domain::ports::StoreError;
use domain::secret::SecretHash;
use domain::session::{Attempt, AttemptChange, CheckoutRecord, SessionStore, Transition};
use domain::webhook::NewEvent;

use crate::db::{with_conn, write_tx, Database};
use crate::error::{RepoError, TxEnd};
use crate::outbox::write_event;
use crate::schema::{checkout_sessions, merchants, order_items, orders, payment_attempts, payments};

/// Implements [`SessionStore`] on either backend.
#[derive(Debug, Clone)]
pub struct SessionRepository {
    db: Database,
}

impl SessionRepository {
    /// A repository over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = orders)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct CheckoutRow {
    pub(crate) id: String,
    merchant_id: String,
    livemode: bool,
    currency: String,
    amount_total: i64,
    status: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    version: i64,
    cancellation_reason: Option<String>,
    #[diesel(embed)]
    merchant: MerchantPart,
    #[diesel(embed)]
    pub(crate) payment: PaymentPart,
    #[diesel(embed)]
    session: SessionPart,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = merchants)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct MerchantPart {
    name: String,
    status: String,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = payments)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct PaymentPart {
    pub(crate) id: String,
    status: String,
    failed_attempts: i32,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = checkout_sessions)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct SessionPart {
    mode: String,
    success_url: String,
    cancel_url: String,
    status: String,
    expires_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = order_items)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct ItemRow {
    sku: String,
    name: String,
    quantity: i64,
    unit_amount: i64,
    amount: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = payment_attempts)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct AttemptRow {
    id: String,
    provider: String,
    outcome: String,
    decline_code: Option<String>,
    card_brand: String,
    card_last4: String,
    created_at: NaiveDateTime,
}

fn corrupt(what: &str, value: &str) -> RepoError {
    RepoError::Corrupt(format!("{what} {value:?}"))
}

fn state(row: &CheckoutRow) -> Result<Checkout, RepoError> {
    let (order, payment, session) = (&row.status, &row.payment.status, &row.session.status);
    Ok(Checkout {
        order: OrderStatus::from_stored(order).ok_or_else(|| corrupt("order status", order))?,
        payment: PaymentStatus::from_stored(payment).ok_or_else(|| corrupt("payment status", payment))?,
        session: SessionStatus::from_stored(session).ok_or_else(|| corrupt("session status", session))?,
        expires_at: row.session.expires_at.and_utc(),
        failed_attempts: row.payment.failed_attempts,
        cancellation: match &row.cancellation_reason {
            Some(reason) => {
                Some(CancellationReason::from_stored(reason).ok_or_else(|| corrupt("cancellation reason", reason))?)
            }
            None => None,
        },
    })
}

/// Reads a whole checkout: its row, lines and latest attempt (three indexed reads).
macro_rules! load_checkout {
    ($conn:ident, $filter:expr) => {{
        use $crate::schema::{checkout_sessions, merchants, order_items, orders, payment_attempts, payments};
        use $crate::session::{AttemptRow, CheckoutRow, ItemRow};
        let row: Option<CheckoutRow> = orders::table
            .inner_join(merchants::table)
            .inner_join(checkout_sessions::table)
            .inner_join(payments::table)
            .filter($filter)
            .select(CheckoutRow::as_select())
            .first($conn)
            .optional()?;
        match row {
            None => None,
            Some(row) => {
                let items: Vec<ItemRow> = order_items::table
                    .filter(order_items::order_id.eq(&row.id))
                    .order(order_items::position)
                    .select(ItemRow::as_select())
                    .load($conn)?;
                let attempt: Option<AttemptRow> = payment_attempts::table
                    .filter(payment_attempts::payment_id.eq(&row.payment.id))
                    .order((payment_attempts::created_at.desc(), payment_attempts::id.desc()))
                    .select(AttemptRow::as_select())
                    .first($conn)
                    .optional()?;
                Some((row, items, attempt))
            }
        }
    }};
}

pub(crate) use load_checkout as load;

/// Reads the whole checkout of each order id in `$ids` (skipping any that vanished meanwhile).
macro_rules! load_each {
    ($conn:ident, $ids:expr) => {{
        let ids: Vec<String> = $ids;
        let mut records = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(found) = load!($conn, orders::id.eq(id)) {
                records.push(record(found)?);
            }
        }
        records
    }};
}

/// What [`load`] read, as the domain's record.
pub(crate) fn record(
    (row, items, attempt): (CheckoutRow, Vec<ItemRow>, Option<AttemptRow>),
) -> Result<CheckoutRecord, RepoError> {
    let id = |text: &str| corrupt("id", text);
    let state = state(&row)?;
    Ok(CheckoutRecord {
        order_id: row.id.parse().map_err(|_| id(&row.id))?,
        payment_id: row.payment.id.parse().map_err(|_| id(&row.payment.id))?,
        merchant_id: row.merchant_id.parse().map_err(|_| id(&row.merchant_id))?,
        merchant_active: row.merchant.status == MerchantStatus::Active.as_str(),
        merchant_name: row.merchant.name,
        livemode: Livemode::from_live(row.livemode),
        currency: Currency::parse(&row.currency).ok_or_else(|| corrupt("currency", &row.currency))?,
        amount_total: row.amount_total,
        items: items
            .into_iter()
            .map(|i| LineItem {
                sku: i.sku,
                name: i.name,
                quantity: i.quantity,
                unit_amount: i.unit_amount,
                amount: i.amount,
            })
            .collect(),
        mode: Mode::from_stored(&row.session.mode).ok_or_else(|| corrupt("mode", &row.session.mode))?,
        success_url: row.session.success_url,
        cancel_url: row.session.cancel_url,
        state,
        version: row.version,
        last_attempt: attempt
            .map(|a| -> Result<Attempt, RepoError> {
                Ok(Attempt {
                    outcome: AttemptOutcome::from_stored(&a.outcome)
                        .ok_or_else(|| corrupt("attempt outcome", &a.outcome))?,
                    decline_code: a.decline_code.as_deref().and_then(DeclineCode::from_stored),
                    id: a.id,
                    provider: a.provider,
                    card_brand: a.card_brand,
                    card_last4: a.card_last4,
                    created_at: a.created_at.and_utc(),
                })
            })
            .transpose()?,
        created_at: row.created_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
    })
}

/// The order had moved past the version the transition started from.
struct Moved;

/// An [`AttemptChange`] with owned values: the SQLite writer runs it on its own thread.
enum AttemptWrite {
    Begin(Attempt),
    End { id: String, outcome: AttemptOutcome, decline_code: Option<DeclineCode> },
}

impl From<AttemptChange<'_>> for AttemptWrite {
    fn from(change: AttemptChange<'_>) -> Self {
        match change {
            AttemptChange::Begin(attempt) => AttemptWrite::Begin(attempt.clone()),
            AttemptChange::End { id, outcome, decline_code } => {
                AttemptWrite::End { id: id.to_owned(), outcome, decline_code }
            }
        }
    }
}

/// How a transition transaction ends when it must roll back.
type Cas = TxEnd<Moved>;

/// Fails the transaction unless exactly one row moved.
fn moved(rows: usize) -> Result<(), Cas> {
    if rows == 1 {
        Ok(())
    } else {
        Err(TxEnd::Stop(Moved))
    }
}

impl SessionStore for SessionRepository {
    fn find_by_token(&self, token_hash: &SecretHash) -> Result<Option<CheckoutRecord>, StoreError> {
        let found = with_conn!(&self.db, |conn| (|| -> Result<_, RepoError> {
            Ok(load!(conn, checkout_sessions::token_hash.eq(token_hash.as_str())))
        })()?);
        Ok(found.map(record).transpose()?)
    }

    fn find_order(
        &self,
        merchant_id: MerchantId,
        livemode: Livemode,
        order_id: OrderId,
    ) -> Result<Option<CheckoutRecord>, StoreError> {
        let (merchant_id, order_id) = (merchant_id.to_string(), order_id.to_string());
        let found = with_conn!(&self.db, |conn| (|| -> Result<_, RepoError> {
            Ok(load!(
                conn,
                orders::id
                    .eq(&order_id)
                    .and(orders::merchant_id.eq(&merchant_id))
                    .and(orders::livemode.eq(livemode.is_live()))
            ))
        })()?);
        Ok(found.map(record).transpose()?)
    }

    fn transition(&self, order_id: OrderId, change: Transition<'_>) -> Result<bool, StoreError> {
        let Transition { version, from, to, .. } = change;
        let order_id = order_id.to_string();
        let attempt = change.attempt.map(AttemptWrite::from);
        let events: Vec<NewEvent> = change.events.to_vec();
        let at = change.at.naive_utc();
        let result: Result<(), Cas> = write_tx!(&self.db, |conn| {
            // The order's version is the aggregate's lock: whoever moves it first wins, and every
            // other change computed from the same version finds nothing to update.
            moved(
                diesel::update(orders::table.find(&order_id).filter(orders::version.eq(version)))
                    .set((
                        orders::version.eq(version + 1),
                        orders::status.eq(to.order.as_str()),
                        orders::cancellation_reason.eq(to.cancellation.map(CancellationReason::as_str)),
                        orders::updated_at.eq(at),
                    ))
                    .execute(conn)?,
            )?;
            if (from.payment, from.failed_attempts) != (to.payment, to.failed_attempts) {
                diesel::update(payments::table.filter(payments::order_id.eq(&order_id)))
                    .set((
                        payments::status.eq(to.payment.as_str()),
                        payments::failed_attempts.eq(to.failed_attempts),
                        payments::updated_at.eq(at),
                    ))
                    .execute(conn)?;
            }
            if from.session != to.session {
                diesel::update(checkout_sessions::table.find(&order_id))
                    .set((checkout_sessions::status.eq(to.session.as_str()), checkout_sessions::updated_at.eq(at)))
                    .execute(conn)?;
            }
            match &attempt {
                Some(AttemptWrite::Begin(attempt)) => {
                    let payment_id: String =
                        payments::table.filter(payments::order_id.eq(&order_id)).select(payments::id).first(conn)?;
                    diesel::insert_into(payment_attempts::table)
                        .values((
                            payment_attempts::id.eq(&attempt.id),
                            payment_attempts::payment_id.eq(payment_id),
                            payment_attempts::provider.eq(&attempt.provider),
                            payment_attempts::outcome.eq(attempt.outcome.as_str()),
                            payment_attempts::decline_code.eq(attempt.decline_code.map(DeclineCode::as_str)),
                            payment_attempts::card_brand.eq(&attempt.card_brand),
                            payment_attempts::card_last4.eq(&attempt.card_last4),
                            payment_attempts::created_at.eq(attempt.created_at.naive_utc()),
                        ))
                        .execute(conn)?;
                }
                Some(AttemptWrite::End { id, outcome, decline_code }) => {
                    diesel::update(payment_attempts::table.find(id))
                        .set((
                            payment_attempts::outcome.eq(outcome.as_str()),
                            payment_attempts::decline_code.eq(decline_code.map(DeclineCode::as_str)),
                        ))
                        .execute(conn)?;
                }
                None => {}
            }
            for event in &events {
                write_event!(conn, event);
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(true),
            Err(TxEnd::Stop(Moved)) => Ok(false),
            Err(TxEnd::Repo(error)) => Err(error.into()),
        }
    }

    fn stray_charges(&self, limit: i64) -> Result<Vec<(CheckoutRecord, String)>, StoreError> {
        let stray = with_conn!(&self.db, |conn| (|| -> Result<Vec<(CheckoutRecord, String)>, RepoError> {
            let rows: Vec<(String, String)> = payment_attempts::table
                .inner_join(payments::table)
                .filter(payment_attempts::outcome.eq(AttemptOutcome::RefundPending.as_str()))
                .order(payment_attempts::created_at)
                .select((payments::order_id, payment_attempts::id))
                .limit(limit)
                .load(conn)?;
            let mut stray = Vec::with_capacity(rows.len());
            for (order_id, attempt_id) in rows {
                if let Some(found) = load!(conn, orders::id.eq(&order_id)) {
                    stray.push((record(found)?, attempt_id));
                }
            }
            Ok(stray)
        })()?);
        Ok(stray)
    }

    fn stuck_charges(&self, before: DateTime<Utc>, limit: i64) -> Result<Vec<CheckoutRecord>, StoreError> {
        let stuck = with_conn!(&self.db, |conn| (|| -> Result<Vec<CheckoutRecord>, RepoError> {
            let ids: Vec<String> = payments::table
                .filter(payments::status.eq(PaymentStatus::Processing.as_str()))
                .filter(payments::updated_at.le(before.naive_utc()))
                .select(payments::order_id)
                .limit(limit)
                .load(conn)?;
            Ok(load_each!(conn, ids))
        })()?);
        Ok(stuck)
    }

    fn due_for_expiry(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<CheckoutRecord>, StoreError> {
        let due = with_conn!(&self.db, |conn| (|| -> Result<Vec<CheckoutRecord>, RepoError> {
            let ids: Vec<String> = checkout_sessions::table
                .inner_join(payments::table.on(payments::order_id.eq(checkout_sessions::order_id)))
                .filter(checkout_sessions::status.eq(SessionStatus::Open.as_str()))
                .filter(checkout_sessions::expires_at.le(now.naive_utc()))
                .filter(payments::status.ne(PaymentStatus::Processing.as_str()))
                .select(checkout_sessions::order_id)
                .limit(limit)
                .load(conn)?;
            Ok(load_each!(conn, ids))
        })()?);
        Ok(due)
    }
}
