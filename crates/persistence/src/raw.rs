//! A create's own statements without the service around them: what `scripts/bench` measures the
//! service against (the "raw limit"). Not used by the service.

use diesel::pg::Pg;
use domain::ports::{Envelopes, NewOrderRecords, Redemption};

use crate::checkout::{encode_outcome, redeem, CheckoutRows};
use crate::connection::AnyConnection;
use crate::error::{RepoError, TxEnd};
use crate::postgres::CreateCheckout;

/// Creates the checkout `c` on `conn` exactly as the service does (on PostgreSQL its one
/// statement, on SQLite the step-by-step transaction), with nothing else: no pool, no writer
/// thread, no HTTP.
pub fn create(conn: &mut AnyConnection, envelopes: &dyn Envelopes, c: &NewOrderRecords) -> Result<(), RepoError> {
    let outcome = encode_outcome(&c.outcome)?;
    match redeem(conn, envelopes, c, &outcome) {
        Ok(Redemption::Created) => Ok(()),
        Ok(other) => Err(RepoError::Unexpected(format!("not created: {other:?}").into())),
        Err(TxEnd::Repo(error)) => Err(error),
        Err(TxEnd::Stop(_)) => Err(RepoError::LockTimeout),
    }
}

/// PostgreSQL's one-statement create of `c`, as diesel shows a query: its SQL (`$1`, `$2`, …),
/// then ` -- binds: [` and each bound value's debug form.
pub fn postgres_create_statement(c: &NewOrderRecords) -> Result<String, RepoError> {
    let outcome = encode_outcome(&c.outcome)?;
    let rows = CheckoutRows::of(c, &outcome);
    let statement = CreateCheckout::of(&rows)?;
    Ok(diesel::debug_query::<Pg, _>(&statement).to_string())
}
