//! Connections: one r2d2 pool for PostgreSQL; for SQLite, a single-connection writer pool (SQLite
//! has one writer at a time, and queueing in-process is fairer than spinning on its lock) beside a
//! pool of readers (WAL lets them run alongside the writer).

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::RepoError;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
/// Serialises migrations of replicas starting together on one PostgreSQL database.
const MIGRATION_LOCK: i64 = 4_805_001;

/// A PostgreSQL pool.
pub type PgPool = Pool<ConnectionManager<PgConnection>>;
/// A SQLite pool.
pub type SqlitePool = Pool<ConnectionManager<SqliteConnection>>;

/// How to connect.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// `sqlite://path`, `sqlite:path` or `postgres://…`
    pub url: String,
    /// Most connections per pool.
    pub pool_size: u32,
    /// How long a request waits for a lock held by another (the idempotency wait) or for a pooled
    /// connection, before giving up.
    pub lock_wait: Duration,
}

/// The database behind the repositories: cheap to clone.
#[derive(Clone, Debug)]
pub enum Database {
    /// PostgreSQL: production, shared by replicas.
    Postgres(PgPool),
    /// SQLite: the embedded default.
    Sqlite {
        /// Exactly one connection: all writes queue here.
        writer: SqlitePool,
        /// Reads run beside the writer.
        readers: SqlitePool,
    },
}

/// Runs `$body` with `$conn` bound to a pooled connection of either backend. The body is compiled
/// once per backend, so the same diesel query serves both.
macro_rules! with_conn {
    ($db:expr, $role:ident, |$conn:ident| $body:expr) => {
        match $db {
            $crate::db::Database::Postgres(pool) => {
                let mut pooled = pool.get().map_err($crate::error::RepoError::from)?;
                let $conn = &mut *pooled;
                $body
            }
            $crate::db::Database::Sqlite { $role: pool, .. } => {
                let mut pooled = pool.get().map_err($crate::error::RepoError::from)?;
                let $conn = &mut *pooled;
                $body
            }
        }
    };
}

/// Runs `$body` in one write transaction: on SQLite `BEGIN IMMEDIATE` (the write lock is taken up
/// front, so a transaction never fails half-way for want of it).
macro_rules! write_tx {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::db::Database::Postgres(pool) => {
                pool.get().map_err($crate::error::RepoError::from)?.transaction(|$conn| $body)
            }
            $crate::db::Database::Sqlite { writer, .. } => {
                writer.get().map_err($crate::error::RepoError::from)?.immediate_transaction(|$conn| $body)
            }
        }
    };
}

pub(crate) use {with_conn, write_tx};

#[derive(Debug)]
struct SqliteSettings {
    busy_timeout_ms: u128,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqliteSettings {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        // FULL: a commit is on disk before the response leaves, so an acknowledged order survives
        // a power cut, not only a crash.
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA foreign_keys = ON;",
            self.busy_timeout_ms
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

#[derive(Debug)]
struct PgSettings {
    lock_timeout_ms: u128,
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for PgSettings {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!("SET lock_timeout = {}; SET TIME ZONE 'UTC';", self.lock_timeout_ms))
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// The file path of a SQLite URL, if it is one.
pub fn sqlite_path(url: &str) -> Option<&str> {
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
            let pool = |size: u32| {
                Pool::builder()
                    .max_size(size)
                    .test_on_check_out(false)
                    .connection_timeout(options.lock_wait)
                    .connection_customizer(Box::new(SqliteSettings { busy_timeout_ms: wait }))
                    .build(ConnectionManager::<SqliteConnection>::new(path))
            };
            Ok(Database::Sqlite { writer: pool(1)?, readers: pool(options.pool_size)? })
        } else if options.url.starts_with("postgres://") || options.url.starts_with("postgresql://") {
            // No `SELECT 1` before every use: that round trip would cost more than the queries it
            // guards; a connection that breaks is discarded when it is returned.
            let pool = Pool::builder()
                .max_size(options.pool_size)
                .test_on_check_out(false)
                .connection_timeout(options.lock_wait)
                .connection_customizer(Box::new(PgSettings { lock_timeout_ms: wait }))
                .build(ConnectionManager::<PgConnection>::new(&options.url))?;
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
            Database::Sqlite { writer, .. } => writer
                .get()?
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|versions| versions.iter().map(ToString::to_string).collect()),
        };
        applied.map_err(|e| RepoError::Unexpected(e.to_string().into()))
    }

    /// Whether every migration has been applied.
    pub fn is_migrated(&self) -> Result<bool, RepoError> {
        let pending = match self {
            Database::Postgres(pool) => pool.get()?.pending_migrations(POSTGRES_MIGRATIONS).map(|p| p.len()),
            Database::Sqlite { readers, .. } => readers.get()?.pending_migrations(SQLITE_MIGRATIONS).map(|p| p.len()),
        };
        pending.map(|n| n == 0).map_err(|e| RepoError::Unexpected(e.to_string().into()))
    }

    /// `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "postgres",
            Database::Sqlite { .. } => "sqlite",
        }
    }
}
