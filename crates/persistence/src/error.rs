//! One error type for the repositories, and the one place where database errors are sorted.

use domain::ports::StoreError;

/// What went wrong in a repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// Cannot reach the database, no pooled connection in time, or a lock wait ran out.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A lock wait ran out (PostgreSQL `lock_timeout`, SQLite busy).
    #[error("timed out waiting for a lock")]
    LockTimeout,
    /// A stored value that the domain does not accept: the data was edited or is corrupt.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// Anything else.
    #[error(transparent)]
    Unexpected(Box<dyn std::error::Error + Send + Sync>),
}

impl From<diesel::result::Error> for RepoError {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &error {
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => RepoError::Unavailable(info.message().to_owned()),
            Error::DatabaseError(_, info) if is_lock_timeout(info.message()) => RepoError::LockTimeout,
            Error::DatabaseError(_, info) if is_connection_lost(info.message()) => {
                RepoError::Unavailable(info.message().to_owned())
            }
            _ => RepoError::Unexpected(Box::new(error)),
        }
    }
}

fn is_lock_timeout(message: &str) -> bool {
    // PostgreSQL: "canceling statement due to lock timeout"; SQLite: "database is locked".
    message.contains("lock timeout") || message.contains("database is locked")
}

/// The database went away or is restarting (PostgreSQL's admin shutdown, crash recovery, a
/// dropped socket): the request may succeed when retried.
fn is_connection_lost(message: &str) -> bool {
    const SIGNS: [&str; 7] = [
        "terminating connection",
        "server closed the connection",
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is in recovery mode",
        "connection to server",
        "no connection to the server",
    ];
    SIGNS.iter().any(|sign| message.contains(sign))
}

impl From<r2d2::Error> for RepoError {
    fn from(error: r2d2::Error) -> Self {
        RepoError::Unavailable(error.to_string())
    }
}

impl From<RepoError> for StoreError {
    fn from(error: RepoError) -> Self {
        match error {
            RepoError::Unavailable(why) => StoreError::Unavailable(why),
            RepoError::LockTimeout => StoreError::Unavailable("timed out waiting for a database lock".into()),
            RepoError::Corrupt(why) => StoreError::Unexpected(why.into()),
            RepoError::Unexpected(e) => StoreError::Unexpected(e),
        }
    }
}

/// Why a transaction ends early: a reason of the caller's own (`Stop`, rolled back on purpose) or
/// a repository error.
pub(crate) enum TxEnd<S> {
    Stop(S),
    Repo(RepoError),
}

impl<S> From<diesel::result::Error> for TxEnd<S> {
    fn from(error: diesel::result::Error) -> Self {
        TxEnd::Repo(error.into())
    }
}

impl<S> From<RepoError> for TxEnd<S> {
    fn from(error: RepoError) -> Self {
        TxEnd::Repo(error)
    }
}
