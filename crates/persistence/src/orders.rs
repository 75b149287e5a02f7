//! Orders as the page, the merchant API and the sweeper read them; transitions as
//! compare-and-set updates, so two replicas (or two browser tabs) can never both win.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use domain::claim::LineItem;
use domain::ids::{MerchantId, OrderId};
use domain::livemode::Livemode;
use domain::merchant::MerchantStatus;
use domain::money::Currency;
use domain::order::OrderState;
use domain::order::{Attempt, AttemptChange, Order, Transition};
use domain::order::{AttemptOutcome, CancellationReason, Mode, OrderStatus, PaymentStatus, SessionStatus};
use domain::payment::DeclineCode;
use domain::ports::OrderStore;
use domain::ports::StoreError;
use domain::secret::SecretHash;
use domain::webhook::NewEvent;

use crate::connection::AnyConnection;
use crate::db::Database;
use crate::error::{RepoError, TxEnd};
use crate::outbox::write_event;
use crate::rows::{insert, NewPaymentAttempt};
use crate::schema::{checkout_sessions, merchants, order_items, orders, payment_attempts, payments};

/// Implements [`OrderStore`] on either backend.
#[derive(Debug, Clone)]
pub struct OrderRepository {
    db: Database,
}

impl OrderRepository {
    /// A repository over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = orders)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct CheckoutRow {
    id: String,
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
    payment: PaymentPart,
    #[diesel(embed)]
    session: SessionPart,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = merchants)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct MerchantPart {
    name: String,
    status: String,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = payments)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct PaymentPart {
    id: String,
    status: String,
    failed_attempts: i32,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = checkout_sessions)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct SessionPart {
    mode: String,
    success_url: String,
    cancel_url: String,
    status: String,
    expires_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = order_items)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct ItemRow {
    sku: String,
    name: String,
    quantity: i64,
    unit_amount: i64,
    amount: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = payment_attempts)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct AttemptRow {
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

fn state(row: &CheckoutRow) -> Result<OrderState, RepoError> {
    let (order, payment, session) = (&row.status, &row.payment.status, &row.session.status);
    Ok(OrderState {
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

/// Orders with the merchant, session and payment that a checkout reads with them.
#[diesel::dsl::auto_type(no_type_alias)]
fn checkouts() -> _ {
    orders::table.inner_join(merchants::table).inner_join(checkout_sessions::table).inner_join(payments::table)
}

/// The whole checkout of a row found by [`checkouts`]: its lines and latest attempt, read too.
fn complete(conn: &mut AnyConnection, row: CheckoutRow) -> Result<Order, RepoError> {
    let items: Vec<ItemRow> = order_items::table
        .filter(order_items::order_id.eq(&row.id))
        .order(order_items::position)
        .select(ItemRow::as_select())
        .load(conn)?;
    let attempt: Option<AttemptRow> = payment_attempts::table
        .filter(payment_attempts::payment_id.eq(&row.payment.id))
        .order((payment_attempts::created_at.desc(), payment_attempts::id.desc()))
        .select(AttemptRow::as_select())
        // The newest: the first row, without a bound LIMIT (see the crate's header); a payment
        // has at most CHECKOUT_PAY_ATTEMPTS_MAX attempts and one late charge.
        .get_result(conn)
        .optional()?;
    record(row, items, attempt)
}

/// The checkout of the order `order_id` (three indexed reads).
pub(crate) fn find_order(conn: &mut AnyConnection, order_id: &str) -> Result<Option<Order>, RepoError> {
    let row =
        checkouts().filter(orders::id.eq(order_id)).select(CheckoutRow::as_select()).get_result(conn).optional()?;
    row.map(|row| complete(conn, row)).transpose()
}

/// The checkout whose page token hashes to `token_hash`.
fn find_by_token(conn: &mut AnyConnection, token_hash: &str) -> Result<Option<Order>, RepoError> {
    let row = checkouts()
        .filter(checkout_sessions::token_hash.eq(token_hash))
        .select(CheckoutRow::as_select())
        .get_result(conn)
        .optional()?;
    row.map(|row| complete(conn, row)).transpose()
}

/// The checkout of the order `order_id`, if it is the merchant's, in the mode given.
fn find_merchant_order(
    conn: &mut AnyConnection,
    merchant_id: &str,
    livemode: bool,
    order_id: &str,
) -> Result<Option<Order>, RepoError> {
    let row = checkouts()
        .filter(orders::id.eq(order_id))
        .filter(orders::merchant_id.eq(merchant_id))
        .filter(orders::livemode.eq(livemode))
        .select(CheckoutRow::as_select())
        .get_result(conn)
        .optional()?;
    row.map(|row| complete(conn, row)).transpose()
}

/// The checkout of each order in `order_ids` (skipping any that vanished meanwhile).
fn find_each(conn: &mut AnyConnection, order_ids: &[String]) -> Result<Vec<Order>, RepoError> {
    let mut records = Vec::with_capacity(order_ids.len());
    for id in order_ids {
        records.extend(find_order(conn, id)?);
    }
    Ok(records)
}

/// What [`complete`] read, as the domain's record.
fn record(row: CheckoutRow, items: Vec<ItemRow>, attempt: Option<AttemptRow>) -> Result<Order, RepoError> {
    let id = |text: &str| corrupt("id", text);
    let state = state(&row)?;
    Ok(Order {
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

/// How applying a transition stops: the order moved on, or the database failed.
type Cas = TxEnd<Moved>;

/// Applies `change` to the order `order_id` inside the caller's transaction, unless the order has
/// moved past the change's version (then it returns `Moved` having written nothing, so the
/// transaction may go on with other orders).
fn apply(conn: &mut AnyConnection, order_id: &str, change: Transition<'_>) -> Result<(), Cas> {
    let Transition { version, from, to, attempt, events, at } = change;
    let at = at.naive_utc();
    // The order's version is the aggregate's lock: whoever moves it first wins, and every other
    // change computed from the same version finds nothing to update.
    let moved = diesel::update(orders::table.find(order_id).filter(orders::version.eq(version)))
        .set((
            orders::version.eq(version + 1),
            orders::status.eq(to.order.as_str()),
            orders::cancellation_reason.eq(to.cancellation.map(CancellationReason::as_str)),
            orders::updated_at.eq(at),
        ))
        .execute(conn)?;
    if moved != 1 {
        return Err(TxEnd::Stop(Moved));
    }
    if (from.payment, from.failed_attempts) != (to.payment, to.failed_attempts) {
        diesel::update(payments::table.filter(payments::order_id.eq(order_id)))
            .set((
                payments::status.eq(to.payment.as_str()),
                payments::failed_attempts.eq(to.failed_attempts),
                payments::updated_at.eq(at),
            ))
            .execute(conn)?;
    }
    if from.session != to.session {
        diesel::update(checkout_sessions::table.find(order_id))
            .set((checkout_sessions::status.eq(to.session.as_str()), checkout_sessions::updated_at.eq(at)))
            .execute(conn)?;
    }
    match attempt {
        Some(AttemptChange::Begin(attempt)) => {
            let payment_id: String =
                payments::table.filter(payments::order_id.eq(order_id)).select(payments::id).get_result(conn)?;
            insert(conn, payment_attempts::table, NewPaymentAttempt::of(attempt, &payment_id))?;
        }
        Some(AttemptChange::End { id, outcome, decline_code }) => {
            diesel::update(payment_attempts::table.find(id))
                .set((
                    payment_attempts::outcome.eq(outcome.as_str()),
                    payment_attempts::decline_code.eq(decline_code.map(DeclineCode::as_str)),
                ))
                .execute(conn)?;
        }
        None => {}
    }
    for event in events {
        write_event(conn, event)?;
    }
    Ok(())
}

/// A [`Transition`] with owned values: the SQLite writer applies it on its own thread.
struct OwnedTransition {
    version: i64,
    from: OrderState,
    to: OrderState,
    attempt: Option<OwnedAttempt>,
    events: Vec<NewEvent>,
    at: DateTime<Utc>,
}

/// An [`AttemptChange`] with owned values.
enum OwnedAttempt {
    Begin(Attempt),
    End { id: String, outcome: AttemptOutcome, decline_code: Option<DeclineCode> },
}

impl OwnedTransition {
    fn of(change: Transition<'_>) -> Self {
        let Transition { version, from, to, attempt, events, at } = change;
        let attempt = attempt.map(|attempt| match attempt {
            AttemptChange::Begin(attempt) => OwnedAttempt::Begin(attempt.clone()),
            AttemptChange::End { id, outcome, decline_code } => {
                OwnedAttempt::End { id: id.to_owned(), outcome, decline_code }
            }
        });
        Self { version, from, to, attempt, events: events.to_vec(), at }
    }

    fn borrow(&self) -> Transition<'_> {
        Transition {
            version: self.version,
            from: self.from,
            to: self.to,
            attempt: self.attempt.as_ref().map(|attempt| match attempt {
                OwnedAttempt::Begin(attempt) => AttemptChange::Begin(attempt),
                OwnedAttempt::End { id, outcome, decline_code } => {
                    AttemptChange::End { id, outcome: *outcome, decline_code: *decline_code }
                }
            }),
            events: &self.events,
            at: self.at,
        }
    }
}

/// The orders whose charges were refused after the money moved (a refund is pending), oldest
/// first, with the attempt to refund.
fn stray_charges(conn: &mut AnyConnection, limit: i64) -> Result<Vec<(Order, String)>, RepoError> {
    let rows: Vec<(String, String)> = payment_attempts::table
        .inner_join(payments::table)
        .filter(payment_attempts::outcome.eq(AttemptOutcome::RefundPending.as_str()))
        .order(payment_attempts::created_at)
        .select((payments::order_id, payment_attempts::id))
        .limit(limit)
        .load(conn)?;
    let mut stray = Vec::with_capacity(rows.len());
    for (order_id, attempt_id) in rows {
        if let Some(found) = find_order(conn, &order_id)? {
            stray.push((found, attempt_id));
        }
    }
    Ok(stray)
}

/// Orders whose charge has been running since before `before`.
fn stuck_charges(conn: &mut AnyConnection, before: NaiveDateTime, limit: i64) -> Result<Vec<Order>, RepoError> {
    let ids: Vec<String> = payments::table
        .filter(payments::status.eq(PaymentStatus::Processing.as_str()))
        .filter(payments::updated_at.le(before))
        .select(payments::order_id)
        .limit(limit)
        .load(conn)?;
    find_each(conn, &ids)
}

/// Open sessions that have run out at `now`, unless a charge is running.
fn due_for_expiry(conn: &mut AnyConnection, now: NaiveDateTime, limit: i64) -> Result<Vec<Order>, RepoError> {
    let ids: Vec<String> = checkout_sessions::table
        .inner_join(payments::table.on(payments::order_id.eq(checkout_sessions::order_id)))
        .filter(checkout_sessions::status.eq(SessionStatus::Open.as_str()))
        .filter(checkout_sessions::expires_at.le(now))
        .filter(payments::status.ne(PaymentStatus::Processing.as_str()))
        .select(checkout_sessions::order_id)
        .limit(limit)
        .load(conn)?;
    find_each(conn, &ids)
}

impl OrderStore for OrderRepository {
    fn find_by_token(&self, token_hash: &SecretHash) -> Result<Option<Order>, StoreError> {
        Ok(find_by_token(&mut *self.db.conn()?, token_hash.as_str())?)
    }

    fn find_order(
        &self,
        merchant_id: MerchantId,
        livemode: Livemode,
        order_id: OrderId,
    ) -> Result<Option<Order>, StoreError> {
        let conn = &mut *self.db.conn()?;
        Ok(find_merchant_order(conn, &merchant_id.to_string(), livemode.is_live(), &order_id.to_string())?)
    }

    fn transition(&self, order_id: OrderId, change: Transition<'_>) -> Result<bool, StoreError> {
        Ok(self.transitions(&[(order_id, change)])?[0])
    }

    fn transitions(&self, changes: &[(OrderId, Transition<'_>)]) -> Result<Vec<bool>, StoreError> {
        let mut changes: Vec<(usize, String, OwnedTransition)> = changes
            .iter()
            .enumerate()
            .map(|(at, (order_id, change))| (at, order_id.to_string(), OwnedTransition::of(*change)))
            .collect();
        // Orders locked in one order by every writer of several at once: two replicas' sweepers
        // never wait on each other in a circle.
        changes.sort_by(|a, b| a.1.cmp(&b.1));
        let applied = self.db.write(move |conn| {
            let mut applied = vec![false; changes.len()];
            for (at, order_id, change) in &changes {
                applied[*at] = match apply(conn, order_id, change.borrow()) {
                    Ok(()) => true,
                    Err(TxEnd::Stop(Moved)) => false,
                    Err(TxEnd::Repo(error)) => return Err(error),
                };
            }
            Ok::<_, RepoError>(applied)
        })?;
        Ok(applied)
    }

    fn stray_charges(&self, limit: i64) -> Result<Vec<(Order, String)>, StoreError> {
        Ok(stray_charges(&mut *self.db.conn()?, limit)?)
    }

    fn stuck_charges(&self, before: DateTime<Utc>, limit: i64) -> Result<Vec<Order>, StoreError> {
        Ok(stuck_charges(&mut *self.db.conn()?, before.naive_utc(), limit)?)
    }

    fn due_for_expiry(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Order>, StoreError> {
        Ok(due_for_expiry(&mut *self.db.conn()?, now.naive_utc(), limit)?)
    }
}
