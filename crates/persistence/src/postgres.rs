//! PostgreSQL's fast path for a checkout: the idempotency record, the order, its lines, payment,
//! session and (when an endpoint listens) its `order.created` webhook event, in one statement of
//! data-modifying CTEs, prepared once per connection and committed as its own transaction. Round
//! trips, not rows, are what a create costs on PostgreSQL; this makes the common case one instead
//! of about ten.
//!
//! The statement is made of the inserts the step-by-step way runs, from the same rows
//! ([`CheckoutRows`]), so nothing here names a column. The one difference is the lines: they go
//! in as one JSON array of the same [`NewOrderItem`](crate::rows::NewOrderItem) rows, each field
//! under its column's name, which `json_populate_recordset` turns back into rows of the table.
//! One insert for any number of lines keeps the statement's text fixed.
//!
//! It is all or nothing: if the key is taken or the claim backs an open order, a plain insert fails
//! with a unique violation, which undoes the rest, and the caller goes on step by step in a
//! transaction.

use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::Text;
use diesel::{QueryResult, RunQueryDsl};

use crate::checkout::CheckoutRows;
use crate::error::RepoError;
use crate::schema::{checkout_sessions, idempotency_keys, orders, payments};

/// Inserts a whole checkout.
pub(crate) struct CreateCheckout<'a> {
    /// The inserts, each a CTE named as in [`Self::NAMES`].
    inserts: [Box<dyn QueryFragment<Pg> + 'a>; 7],
}

impl<'a> CreateCheckout<'a> {
    const NAMES: [&'static str; 7] = ["idem", "ord", "lines", "pay", "ses", "evt", "dlv"];

    /// The statement that writes `rows`.
    pub(crate) fn of(rows: &'a CheckoutRows<'a>) -> Result<Self, RepoError> {
        let lines = serde_json::to_string(&rows.items).map_err(|e| RepoError::Unexpected(Box::new(e)))?;
        Ok(Self {
            inserts: [
                Box::new(diesel::insert_into(idempotency_keys::table).values(&rows.key)),
                Box::new(diesel::insert_into(orders::table).values(&rows.order)),
                Box::new(InsertLines { json: lines }),
                Box::new(diesel::insert_into(payments::table).values(&rows.payment)),
                Box::new(diesel::insert_into(checkout_sessions::table).values(&rows.session)),
                Box::new(rows.event.insert_event()),
                Box::new(rows.event.insert_deliveries()),
            ],
        })
    }
}

/// The statement's identity for diesel's prepared-statement cache: its text never changes.
pub(crate) struct CreateCheckoutStatement;

impl QueryId for CreateCheckout<'_> {
    type QueryId = CreateCheckoutStatement;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl RunQueryDsl<PgConnection> for CreateCheckout<'_> {}

impl QueryFragment<Pg> for CreateCheckout<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH ");
        for (n, (name, insert)) in Self::NAMES.iter().zip(&self.inserts).enumerate() {
            if n > 0 {
                out.push_sql(", ");
            }
            out.push_sql(name);
            out.push_sql(" AS (");
            insert.walk_ast(out.reborrow())?;
            out.push_sql(")");
        }
        // Data-modifying CTEs run to completion whether or not the query reads them.
        out.push_sql(" SELECT 1");
        Ok(())
    }
}

/// The order's lines, from a JSON array of [`NewOrderItem`](crate::rows::NewOrderItem)s: every
/// column of `order_items` takes the value of the key of its name.
struct InsertLines {
    json: String,
}

impl QueryFragment<Pg> for InsertLines {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("INSERT INTO order_items SELECT * FROM json_populate_recordset(NULL::order_items, ");
        out.push_bind_param::<Text, _>(&self.json)?;
        out.push_sql("::json)");
        Ok(())
    }
}
