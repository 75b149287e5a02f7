//! PostgreSQL's fast path for a checkout: the idempotency record, the order, its lines, payment,
//! session and (when an endpoint listens) its `order.created` webhook event, in one statement of
//! data-modifying CTEs, committed as its own transaction. Round trips, not rows, are what a create
//! costs on PostgreSQL; this makes the common case one instead of about ten.
//!
//! The statement is made of the very inserts the step-by-step way runs, from the same rows
//! ([`CheckoutRows`]): nothing here names a column. It is all or nothing: if the key is taken or
//! the claim backs an open order, a plain insert fails with a unique violation, which undoes the
//! rest, and the caller goes on step by step in a transaction.

use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};

use crate::checkout::CheckoutRows;
use crate::schema::{checkout_sessions, idempotency_keys, order_items, orders, payments};

/// The most lines a claim may carry to be created in one statement. The statement's text depends
/// on the number of lines, and PostgreSQL prepares each text once per connection: this bounds them.
/// Claims with more lines (rare) go step by step.
const MOST_LINES: usize = 10;

/// Inserts a whole checkout.
pub(crate) struct CreateCheckout<'a> {
    inserts: Vec<Box<dyn QueryFragment<Pg> + 'a>>,
}

impl<'a> CreateCheckout<'a> {
    /// The statement that writes `rows`, unless they have too many lines for one.
    pub(crate) fn of(rows: &'a CheckoutRows<'a>) -> Option<Self> {
        if rows.items.len() > MOST_LINES {
            return None;
        }
        let mut inserts: Vec<Box<dyn QueryFragment<Pg> + 'a>> = Vec::with_capacity(rows.items.len() + 6);
        inserts.push(Box::new(diesel::insert_into(idempotency_keys::table).values(&rows.key)));
        inserts.push(Box::new(diesel::insert_into(orders::table).values(&rows.order)));
        for item in &rows.items {
            inserts.push(Box::new(diesel::insert_into(order_items::table).values(item)));
        }
        inserts.push(Box::new(diesel::insert_into(payments::table).values(&rows.payment)));
        inserts.push(Box::new(diesel::insert_into(checkout_sessions::table).values(&rows.session)));
        inserts.push(Box::new(rows.event.insert_event()));
        inserts.push(Box::new(rows.event.insert_deliveries()));
        Some(Self { inserts })
    }
}

/// Its text varies with the number of lines, so diesel caches it by text.
impl QueryId for CreateCheckout<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl RunQueryDsl<PgConnection> for CreateCheckout<'_> {}

impl QueryFragment<Pg> for CreateCheckout<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH ");
        for (n, insert) in self.inserts.iter().enumerate() {
            if n > 0 {
                out.push_sql(", ");
            }
            out.push_sql(&format!("w{n} AS ("));
            insert.walk_ast(out.reborrow())?;
            out.push_sql(")");
        }
        // Data-modifying CTEs run to completion whether or not the query reads them.
        out.push_sql(" SELECT 1");
        Ok(())
    }
}
