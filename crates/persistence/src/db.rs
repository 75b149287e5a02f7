//! Connections: one r2d2 pool for PostgreSQL; for SQLite, a pool for reads and rare writes beside
//! one checkout writer on a thread of its own. SQLite has one writer at a time: handing its lock
//! from thread to thread leaves it idle while the next thread is scheduled, so checkout
//! transactions queue for a thread that runs them back to back instead.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, ManageConnection, Pool, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::RepoError;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
/// Serialises migrations of replicas starting together on one PostgreSQL database.
const MIGRATION_LOCK: i64 = 4_805_001;

/// A PostgreSQL pool.
pub type PgPool = Pool<Checked<PgConnection>>;
/// A SQLite pool.
pub type SqlitePool = Pool<Checked<SqliteConnection>>;

/// A connection and when it last proved alive.
pub struct Live<C> {
    conn: C,
    proved: Instant,
}

impl<C> std::fmt::Debug for Live<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("proved", &self.proved).finish_non_exhaustive()
    }
}

impl<C> std::ops::Deref for Live<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.conn
    }
}

impl<C> std::ops::DerefMut for Live<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.conn
    }
}

/// diesel's connection manager with a cheap liveness check: a connection is pinged on checkout
/// only if it has not proved alive within the last second. A ping on every checkout would cost a
/// round trip per query; none at all would keep connections that a database restart killed in
/// the pool forever (diesel does not notice a closed connection). This way a restart costs at
/// most a second of failed requests per connection, and a busy pool pings each connection about
/// once a second.
pub struct Checked<C: R2D2Connection + 'static> {
    inner: ConnectionManager<C>,
}

impl<C: R2D2Connection + 'static> std::fmt::Debug for Checked<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checked")
    }
}

/// How long a connection that answered is trusted without a ping.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

impl<C: R2D2Connection + Send + 'static> ManageConnection for Checked<C> {
    type Connection = Live<C>;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Live<C>, diesel::r2d2::Error> {
        Ok(Live { conn: self.inner.connect()?, proved: Instant::now() })
    }

    fn is_valid(&self, live: &mut Live<C>) -> Result<(), diesel::r2d2::Error> {
        if live.proved.elapsed() >= TRUSTED_FOR {
            live.conn.ping().map_err(diesel::r2d2::Error::QueryError)?;
            live.proved = Instant::now();
        }
        Ok(())
    }

    fn has_broken(&self, live: &mut Live<C>) -> bool {
        self.inner.has_broken(&mut live.conn)
    }
}

/// Where the pools' own connection errors go: to the debug log only. r2d2 would log every retry
/// of every connection as an error (dozens of multi-line messages while PostgreSQL is down, before
/// the one that matters); whoever needed the connection reports the failure once instead: start-up
/// as one line, a request as its 503 with the cause, `/readyz` as not ready.
#[derive(Debug, Clone, Copy)]
struct PoolErrorsToDebug;

impl<E: std::fmt::Display> r2d2::HandleError<E> for PoolErrorsToDebug {
    fn handle_error(&self, error: E) {
        log::debug!("database pool: {error}");
    }
}

/// A database URL with any password replaced, fit for logs and `Debug`.
pub fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:[redacted]{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// How to connect.
#[derive(Clone)]
pub struct DbOptions {
    /// `sqlite://path`, `sqlite:path` or `postgres://…`
    pub url: String,
    /// Most connections per pool.
    pub pool_size: u32,
    /// How long a request waits for a lock held by another (the idempotency wait) or for a pooled
    /// connection, before giving up.
    pub lock_wait: Duration,
}

impl std::fmt::Debug for DbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbOptions")
            .field("url", &redacted_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("lock_wait", &self.lock_wait)
            .finish()
    }
}

/// The database behind the repositories: cheap to clone.
#[derive(Clone, Debug)]
pub enum Database {
    /// PostgreSQL: production, shared by replicas.
    Postgres(PgPool),
    /// SQLite: the embedded default.
    Sqlite {
        /// Reads, and the rare writes of administration.
        pool: SqlitePool,
        /// Checkout transactions.
        writer: SqliteWriter,
    },
}

type Job = Box<dyn FnOnce(&mut SqliteConnection) + Send>;

/// The SQLite connection that runs checkout transactions, one after another, on its own thread.
#[derive(Clone, Debug)]
pub struct SqliteWriter {
    jobs: mpsc::SyncSender<Job>,
    max_wait: Duration,
}

impl SqliteWriter {
    const QUEUE: usize = 1024;

    fn start(path: &str, settings: SqliteSettings, max_wait: Duration) -> Result<Self, RepoError> {
        let mut conn = SqliteConnection::establish(path).map_err(|e| RepoError::Unavailable(e.to_string()))?;
        settings.apply(&mut conn).map_err(|e| RepoError::Unavailable(e.to_string()))?;
        let (jobs, queue) = mpsc::sync_channel::<Job>(Self::QUEUE);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                for job in queue {
                    if catch_unwind(AssertUnwindSafe(|| job(&mut conn))).is_err() {
                        // The job's caller sees its reply dropped; the connection must not stay
                        // inside a half-run transaction.
                        let _ = conn.batch_execute("ROLLBACK");
                    }
                }
            })
            .map_err(|e| RepoError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { jobs, max_wait })
    }

    /// Runs `work` on the writer's connection and waits for its result. Work that waited in the
    /// queue longer than the configured wait is not started: the caller gets `Unavailable`.
    pub fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut SqliteConnection) -> Result<T, RepoError> + Send + 'static,
    ) -> Result<T, RepoError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let deadline = Instant::now() + self.max_wait;
        let job: Job = Box::new(move |conn| {
            let result = if Instant::now() > deadline {
                Err(RepoError::Unavailable("the SQLite writer is overloaded".into()))
            } else {
                work(conn)
            };
            let _ = reply.send(result);
        });
        self.jobs.send(job).map_err(|_| RepoError::Unavailable("the SQLite writer has stopped".into()))?;
        answer.recv().map_err(|_| RepoError::Unexpected("the SQLite writer abandoned a transaction".into()))?
    }
}

/// Runs `$body` with `$conn` bound to a pooled connection of either backend. The body is compiled
/// once per backend, so the same diesel query serves both.
macro_rules! with_conn {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::db::Database::Postgres(pool) => {
                let mut pooled = pool.get().map_err($crate::error::RepoError::from)?;
                let $conn = &mut **pooled;
                $body
            }
            $crate::db::Database::Sqlite { pool, .. } => {
                let mut pooled = pool.get().map_err($crate::error::RepoError::from)?;
                let $conn = &mut **pooled;
                $body
            }
        }
    };
}

/// Runs `$body` in one write transaction on either backend: on PostgreSQL a pooled connection, on
/// SQLite the writer thread with `BEGIN IMMEDIATE`. The body may capture only owned values (it may
/// run on another thread), and returns `Result<_, E>` where `E: From<diesel::result::Error>`.
macro_rules! write_tx {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::db::Database::Postgres(pool) => {
                pool.get().map_err($crate::error::RepoError::from)?.transaction(|$conn| $body)
            }
            $crate::db::Database::Sqlite { writer, .. } => {
                writer.run(move |conn| Ok(conn.immediate_transaction(|$conn| $body)))?
            }
        }
    };
}

pub(crate) use {with_conn, write_tx};

#[derive(Debug, Clone, Copy)]
struct SqliteSettings {
    busy_timeout_ms: u128,
}

impl SqliteSettings {
    fn apply(&self, conn: &mut SqliteConnection) -> Result<(), diesel::result::Error> {
        // FULL: a commit is on disk before the response leaves, so an acknowledged order survives
        // a power cut, not only a crash.
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            self.busy_timeout_ms
        ))
    }
}

impl CustomizeConnection<Live<SqliteConnection>, diesel::r2d2::Error> for SqliteSettings {
    fn on_acquire(&self, conn: &mut Live<SqliteConnection>) -> Result<(), diesel::r2d2::Error> {
        self.apply(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

#[derive(Debug)]
struct PgSettings {
    lock_timeout_ms: u128,
}

impl CustomizeConnection<Live<PgConnection>, diesel::r2d2::Error> for PgSettings {
    fn on_acquire(&self, conn: &mut Live<PgConnection>) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!("SET lock_timeout = {}; SET TIME ZONE 'UTC';", self.lock_timeout_ms))
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// The file path of a SQLite URL, if it is one.
fn sqlite_path(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))
}

impl Database {
    /// Opens the pools (and, for SQLite, creates the file's folder).
    pub fn connect(options: &DbOptions) -> Result<Self, RepoError> {
        let wait = options.lock_wait.as_millis();
        if let Some(path) = sqlite_path(&options.url) {
            if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| RepoError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
            }
            // WAL is a property of the file: set it once, before connections race to set it.
            SqliteConnection::establish(path)
                .and_then(|mut conn| {
                    conn.batch_execute(&format!("PRAGMA busy_timeout = {wait}; PRAGMA journal_mode = WAL;"))
                        .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
                })
                .map_err(|e| RepoError::Unavailable(format!("cannot open {path}: {e}")))?;
            let settings = SqliteSettings { busy_timeout_ms: wait };
            let pool = Pool::builder()
                .max_size(options.pool_size)
                .connection_timeout(options.lock_wait)
                .error_handler(Box::new(PoolErrorsToDebug))
                .connection_customizer(Box::new(settings))
                .build(Checked { inner: ConnectionManager::<SqliteConnection>::new(path) })?;
            Ok(Database::Sqlite { pool, writer: SqliteWriter::start(path, settings, options.lock_wait)? })
        } else if options.url.starts_with("postgres://") || options.url.starts_with("postgresql://") {
            let pool = Pool::builder()
                .max_size(options.pool_size)
                .connection_timeout(options.lock_wait)
                .error_handler(Box::new(PoolErrorsToDebug))
                .connection_customizer(Box::new(PgSettings { lock_timeout_ms: wait }))
                .build(Checked { inner: ConnectionManager::<PgConnection>::new(&options.url) })?;
            Ok(Database::Postgres(pool))
        } else {
            Err(RepoError::Unavailable("DATABASE_URL must start with sqlite:// or postgres://".into()))
        }
    }

    /// Applies pending migrations; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, RepoError> {
        let applied = match self {
            Database::Postgres(pool) => {
                let mut conn = pool.get()?;
                conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
                let result = conn
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|versions| versions.iter().map(ToString::to_string).collect());
                conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
                result
            }
            Database::Sqlite { pool, .. } => pool
                .get()?
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|versions| versions.iter().map(ToString::to_string).collect()),
        };
        applied.map_err(|e| RepoError::Unexpected(e.to_string().into()))
    }

    /// Whether every migration has been applied (one query).
    pub fn is_migrated(&self) -> Result<bool, RepoError> {
        let pending = match self {
            Database::Postgres(pool) => pool.get()?.pending_migrations(POSTGRES_MIGRATIONS).map(|p| p.len()),
            Database::Sqlite { pool, .. } => pool.get()?.pending_migrations(SQLITE_MIGRATIONS).map(|p| p.len()),
        };
        pending.map(|n| n == 0).map_err(|e| RepoError::Unavailable(e.to_string()))
    }

    /// `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "postgres",
            Database::Sqlite { .. } => "sqlite",
        }
    }
}

impl domain::ports::Diagnostics for Database {
    fn ready(&self) -> Result<(), domain::ports::StoreError> {
        if self.is_migrated()? {
            Ok(())
        } else {
            Err(domain::ports::StoreError::Unavailable("database migrations are pending".into()))
        }
    }

    fn pools(&self) -> Vec<domain::ports::PoolStats> {
        let stats = |name, state: r2d2::State| domain::ports::PoolStats {
            name,
            in_use: state.connections - state.idle_connections,
            idle: state.idle_connections,
        };
        match self {
            Database::Postgres(pool) => vec![stats("postgres", pool.state())],
            Database::Sqlite { pool, .. } => vec![stats("sqlite", pool.state())],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_debug_output() {
        assert_eq!(
            redacted_url("postgres://app:s3cret@db.internal:5432/checkout"),
            "postgres://app:[redacted]@db.internal:5432/checkout"
        );
        assert_eq!(redacted_url("postgres://postgres@127.0.0.1/x"), "postgres://postgres@127.0.0.1/x");
        assert_eq!(redacted_url("sqlite://data/checkout.db"), "sqlite://data/checkout.db");
        let options = DbOptions { url: "postgres://u:pw@h/d".into(), pool_size: 1, lock_wait: Duration::from_secs(1) };
        assert!(!format!("{options:?}").contains("pw"));
    }
}
