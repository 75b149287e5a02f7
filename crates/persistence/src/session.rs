//! Checkouts as the page, the merchant API and the sweeper see them; transitions as
//! compare-and-set updates, so two replicas (or two browser tabs) can never both win.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use domain::ids::{MerchantId, OrderId};
use domain::lifecycle::Checkout;
use domain::merchant::Livemode;
use domain::money::Currency;
use domain::order::{LineItem, Mode, OrderStatus, PaymentStatus, SessionStatus};
use domain::payment::DeclineCode;
use domain::ports::StoreError;
use domain::secret::SecretHash;
use domain::session::{Attempt, CheckoutRecord, SessionStore, Transition};

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
    #[diesel(select_expression = merchants::name)]
    merchant_name: String,
    #[diesel(select_expression = payments::id)]
    pub(crate) payment_id: String,
    #[diesel(select_expression = payments::status)]
    payment_status: String,
    #[diesel(select_expression = checkout_sessions::mode)]
    mode: String,
    #[diesel(select_expression = checkout_sessions::success_url)]
    success_url: String,
    #[diesel(select_expression = checkout_sessions::cancel_url)]
    cancel_url: String,
    #[diesel(select_expression = checkout_sessions::status)]
    session_status: String,
    #[diesel(select_expression = checkout_sessions::expires_at)]
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

fn state(order: &str, payment: &str, session: &str, expires_at: NaiveDateTime) -> Result<Checkout, RepoError> {
    Ok(Checkout {
        order: OrderStatus::from_stored(order).ok_or_else(|| corrupt("order status", order))?,
        payment: PaymentStatus::from_stored(payment).ok_or_else(|| corrupt("payment status", payment))?,
        session: SessionStatus::from_stored(session).ok_or_else(|| corrupt("session status", session))?,
        expires_at: expires_at.and_utc(),
    })
}

fn decline_code(text: &str) -> Option<DeclineCode> {
    [DeclineCode::CardDeclined, DeclineCode::InsufficientFunds].into_iter().find(|c| c.as_str() == text)
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
                    .filter(payment_attempts::payment_id.eq(&row.payment_id))
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
    Ok(CheckoutRecord {
        order_id: row.id.parse().map_err(|_| id(&row.id))?,
        payment_id: row.payment_id.parse().map_err(|_| id(&row.payment_id))?,
        merchant_id: row.merchant_id.parse().map_err(|_| id(&row.merchant_id))?,
        merchant_name: row.merchant_name,
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
        mode: Mode::from_stored(&row.mode).ok_or_else(|| corrupt("mode", &row.mode))?,
        success_url: row.success_url,
        cancel_url: row.cancel_url,
        state: state(&row.status, &row.payment_status, &row.session_status, row.expires_at)?,
        last_attempt: attempt.map(|a| Attempt {
            succeeded: a.outcome == PaymentStatus::Succeeded.as_str(),
            decline_code: a.decline_code.as_deref().and_then(decline_code),
            id: a.id,
            provider: a.provider,
            card_brand: a.card_brand,
            card_last4: a.card_last4,
            created_at: a.created_at.and_utc(),
        }),
        created_at: row.created_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
    })
}

/// A status was no longer the one the transition started from.
struct Moved;

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
        let Transition { from, to, .. } = change;
        let (order_id, attempt, event, at) =
            (order_id.to_string(), change.attempt.cloned(), change.event.cloned(), change.at.naive_utc());
        let result: Result<(), Cas> = write_tx!(&self.db, |conn| {
            if from.order != to.order {
                moved(
                    diesel::update(orders::table.find(&order_id).filter(orders::status.eq(from.order.as_str())))
                        .set((orders::status.eq(to.order.as_str()), orders::updated_at.eq(at)))
                        .execute(conn)?,
                )?;
            }
            if from.payment != to.payment {
                moved(
                    diesel::update(
                        payments::table
                            .filter(payments::order_id.eq(&order_id))
                            .filter(payments::status.eq(from.payment.as_str())),
                    )
                    .set((payments::status.eq(to.payment.as_str()), payments::updated_at.eq(at)))
                    .execute(conn)?,
                )?;
            }
            if from.session != to.session {
                moved(
                    diesel::update(
                        checkout_sessions::table
                            .find(&order_id)
                            .filter(checkout_sessions::status.eq(from.session.as_str())),
                    )
                    .set((checkout_sessions::status.eq(to.session.as_str()), checkout_sessions::updated_at.eq(at)))
                    .execute(conn)?,
                )?;
            }
            if let Some(attempt) = &attempt {
                let payment_id: String =
                    payments::table.filter(payments::order_id.eq(&order_id)).select(payments::id).first(conn)?;
                let outcome = if attempt.succeeded { PaymentStatus::Succeeded } else { PaymentStatus::Failed };
                diesel::insert_into(payment_attempts::table)
                    .values((
                        payment_attempts::id.eq(&attempt.id),
                        payment_attempts::payment_id.eq(payment_id),
                        payment_attempts::provider.eq(&attempt.provider),
                        payment_attempts::outcome.eq(outcome.as_str()),
                        payment_attempts::decline_code.eq(attempt.decline_code.map(DeclineCode::as_str)),
                        payment_attempts::card_brand.eq(&attempt.card_brand),
                        payment_attempts::card_last4.eq(&attempt.card_last4),
                        payment_attempts::created_at.eq(attempt.created_at.naive_utc()),
                    ))
                    .execute(conn)?;
            }
            if let Some(event) = &event {
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
