//! One connection type for both backends, so that a repository function is written once:
//! `fn x(conn: &mut AnyConnection, …) -> Result<_, RepoError>`, inside a transaction or not. The
//! few statements only one backend understands (PostgreSQL's one-statement create, SQLite's
//! `BEGIN IMMEDIATE`) match on the variant, and so do [`execute`] and [`get_result`], which hand a
//! statement written once to the backend's own connection for speed. Nothing else may know which
//! backend it runs on.

use diesel::backend::Backend;
use diesel::connection::{AnsiTransactionManager, Connection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::query_dsl::LoadQuery;
use diesel::sqlite::SqliteConnection;
use diesel::{QueryResult, RunQueryDsl};

/// A connection to either database. diesel compiles each query for the backend it meets at run
/// time, and caches prepared statements as the backend's own connection does.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    /// PostgreSQL: production, shared by replicas.
    Postgres(PgConnection),
    /// SQLite: the embedded default.
    Sqlite(SqliteConnection),
}

impl std::fmt::Debug for AnyConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AnyConnection::Postgres(_) => "AnyConnection::Postgres",
            AnyConnection::Sqlite(_) => "AnyConnection::Sqlite",
        })
    }
}

impl AnyConnection {
    /// Runs `work` in a transaction that writes: on SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so it never fails half-way for want of it; on PostgreSQL it is an
    /// ordinary transaction. Rolled back when `work` fails.
    pub fn write_transaction<T, E>(&mut self, work: impl FnOnce(&mut Self) -> Result<T, E>) -> Result<T, E>
    where
        E: From<diesel::result::Error>,
    {
        match self {
            AnyConnection::Sqlite(conn) => AnsiTransactionManager::begin_transaction_sql(conn, "BEGIN IMMEDIATE")?,
            AnyConnection::Postgres(conn) => AnsiTransactionManager::begin_transaction(conn)?,
        }
        match work(self) {
            Ok(value) => {
                <Self as TransactionManager<Self>>::commit_transaction(self)?;
                Ok(value)
            }
            Err(error) => {
                <Self as TransactionManager<Self>>::rollback_transaction(self)?;
                Err(error)
            }
        }
    }
}

/// Runs `statement` on the backend's own connection. diesel's `MultiConnection` renders a
/// statement's SQL twice on every execution to hand it on, while the backend's own connection
/// finds its prepared statement without rendering anything: on SQLite's single writer that was a
/// tenth of a create. So the statements of a create's transaction (every insert of a row, see
/// [`crate::rows`], and the outbox) go through this and [`get_result`]; the rest run on the
/// `AnyConnection` as usual.
pub(crate) fn execute<S>(conn: &mut AnyConnection, statement: S) -> QueryResult<usize>
where
    S: ExecuteDsl<PgConnection> + ExecuteDsl<SqliteConnection>,
{
    match conn {
        AnyConnection::Postgres(pg) => ExecuteDsl::execute(statement, pg),
        AnyConnection::Sqlite(sqlite) => ExecuteDsl::execute(statement, sqlite),
    }
}

/// The one row of `query`, loaded on the backend's own connection (see [`execute`]).
pub(crate) fn get_result<'q, Q, U>(conn: &mut AnyConnection, query: Q) -> QueryResult<U>
where
    Q: RunQueryDsl<PgConnection>
        + RunQueryDsl<SqliteConnection>
        + LoadQuery<'q, PgConnection, U>
        + LoadQuery<'q, SqliteConnection, U>,
{
    match conn {
        AnyConnection::Postgres(pg) => query.get_result(pg),
        AnyConnection::Sqlite(sqlite) => query.get_result(sqlite),
    }
}

/// `INSERT … ON CONFLICT DO NOTHING`, which both backends spell alike: appended to a plain insert,
/// so that the statement is the same generic one on both.
#[derive(Debug, Clone, Copy, QueryId)]
pub(crate) struct OrIgnore<I>(pub(crate) I);

impl<I: QueryFragment<DB>, DB: Backend> QueryFragment<DB> for OrIgnore<I> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(out.reborrow())?;
        out.push_sql(" ON CONFLICT DO NOTHING");
        Ok(())
    }
}
