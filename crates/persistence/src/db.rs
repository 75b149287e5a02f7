//! Connections: one r2d2 pool of [`AnyConnection`]s for either backend; for SQLite, beside it, one
//! writer on a thread of its own. SQLite has one writer at a time: handing its lock from thread to
//! thread leaves it idle while the next thread is scheduled, so write transactions queue for a
//! thread that runs them back to back instead.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{CustomizeConnection, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::admission::{Fifo, Gate, Permit, Ticket};
use crate::connection::AnyConnection;
use crate::error::RepoError;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
/// Serialises migrations of replicas starting together on one PostgreSQL database.
const MIGRATION_LOCK: i64 = 4_805_001;

/// A connection and when it last proved alive.
pub struct Live {
    conn: AnyConnection,
    proved: Instant,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("conn", &self.conn).field("proved", &self.proved).finish()
    }
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

/// Opens connections of one backend, with a cheap liveness check: a connection is pinged on
/// checkout only if it has not proved alive within the last second. A ping on every checkout
/// would cost a round trip per query; none at all would keep connections that a database restart
/// killed in the pool forever (diesel does not notice a closed connection). This way a restart
/// costs at most a second of failed requests per connection, and a busy pool pings each
/// connection about once a second.
pub struct Checked {
    backend: Backend,
    /// A PostgreSQL URL or a SQLite file path.
    target: String,
}

impl std::fmt::Debug for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checked").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl Checked {
    fn establish(&self) -> diesel::ConnectionResult<AnyConnection> {
        Ok(match self.backend {
            Backend::Postgres => AnyConnection::Postgres(PgConnection::establish(&self.target)?),
            Backend::Sqlite => AnyConnection::Sqlite(SqliteConnection::establish(&self.target)?),
        })
    }
}

/// How long a connection that answered is trusted without a ping.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

impl ManageConnection for Checked {
    type Connection = Live;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Live, diesel::r2d2::Error> {
        let conn = self.establish().map_err(diesel::r2d2::Error::ConnectionError)?;
        Ok(Live { conn, proved: Instant::now() })
    }

    fn is_valid(&self, live: &mut Live) -> Result<(), diesel::r2d2::Error> {
        if live.proved.elapsed() >= TRUSTED_FOR {
            live.conn.ping().map_err(diesel::r2d2::Error::QueryError)?;
            live.proved = Instant::now();
        }
        Ok(())
    }

    fn has_broken(&self, live: &mut Live) -> bool {
        live.conn.is_broken()
    }
}

/// A pooled connection of either backend, returned to the pool when dropped.
#[derive(Debug)]
pub struct Pooled {
    // Dropped in this order: the connection goes back to the pool, its permit to the next in line,
    // then the caller leaves the gate.
    conn: PooledConnection<Checked>,
    _permit: Permit,
    _ticket: Ticket,
}

impl std::ops::Deref for Pooled {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.conn.conn
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn.conn
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
    /// How long a request waits for a lock held by another (the idempotency wait) before giving
    /// up.
    pub lock_wait: Duration,
    /// How long a caller may wait for a connection (the pool's, or SQLite's writer): a caller whose
    /// wait would be longer is refused at once (admission control).
    pub queue_timeout: Duration,
}

impl std::fmt::Debug for DbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbOptions")
            .field("url", &redacted_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("lock_wait", &self.lock_wait)
            .field("queue_timeout", &self.queue_timeout)
            .finish()
    }
}

/// The database behind the repositories: cheap to clone.
#[derive(Clone, Debug)]
pub struct Database {
    backend: Backend,
    /// Reads and administrative writes; on PostgreSQL, every write.
    pool: Pool<Checked>,
    /// Who waits for the pool.
    gate: Arc<Gate>,
    /// The pool's connections, handed out in the order they were asked for.
    fifo: Arc<Fifo>,
    /// SQLite only: the connection that runs write transactions.
    writer: Option<SqliteWriter>,
}

type Job = Box<dyn FnOnce(&mut AnyConnection) + Send>;

/// The SQLite connection that runs write transactions, one after another, on its own thread.
#[derive(Clone, Debug)]
struct SqliteWriter {
    jobs: mpsc::SyncSender<Job>,
    gate: Arc<Gate>,
}

impl SqliteWriter {
    const QUEUE: usize = 1024;

    fn start(path: &str, settings: Settings, queue_timeout: Duration) -> Result<Self, RepoError> {
        let mut conn = AnyConnection::Sqlite(
            SqliteConnection::establish(path).map_err(|e| RepoError::Unavailable(e.to_string()))?,
        );
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
        Ok(Self { jobs, gate: Gate::new("SQLite writer", 1, queue_timeout) })
    }

    /// Runs `work` on the writer's connection and waits for its result. A caller whose wait would
    /// be longer than the queue timeout is refused before it queues; one that has waited that long
    /// after all withdraws its work, which is then never started. Either way it gets `Unavailable`
    /// and nothing was written; work that has started is always waited for.
    fn run<T, E>(&self, work: impl FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<RepoError> + Send + 'static,
    {
        const QUEUED: u8 = 0;
        const STARTED: u8 = 1;
        const WITHDRAWN: u8 = 2;
        let mut ticket = self.gate.enter()?;
        let state = Arc::new(AtomicU8::new(QUEUED));
        let claimed = state.clone();
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |conn| {
            if claimed.compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                ticket.start();
                let _ = reply.send(work(conn));
            }
        });
        self.jobs.send(job).map_err(|_| RepoError::Unavailable("the SQLite writer has stopped".into()))?;
        let abandoned = || RepoError::Unexpected("the SQLite writer abandoned a transaction".into());
        match answer.recv_timeout(self.gate.timeout()) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if state.compare_exchange(QUEUED, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    Err(RepoError::Unavailable(format!(
                        "waited {} ms for the SQLite writer (CHECKOUT_QUEUE_TIMEOUT_MS)",
                        self.gate.timeout().as_millis()
                    ))
                    .into())
                } else {
                    answer.recv().map_err(|_| abandoned())?
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(abandoned().into()),
        }
    }
}

/// What every connection of a pool is set up with.
#[derive(Debug, Clone, Copy)]
enum Settings {
    Sqlite { busy_timeout_ms: u128 },
    Postgres { lock_timeout_ms: u128 },
}

impl Settings {
    fn apply(&self, conn: &mut AnyConnection) -> Result<(), diesel::result::Error> {
        match self {
            // FULL: a commit is on disk before the response leaves, so an acknowledged order
            // survives a power cut, not only a crash.
            Settings::Sqlite { busy_timeout_ms } => conn.batch_execute(&format!(
                "PRAGMA busy_timeout = {busy_timeout_ms}; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
            )),
            // Sequential scans priced out: every query of the service finds its rows through an
            // index (the index test proves it), and a plan must not depend on statistics. Tables
            // last analyzed while nearly empty make PostgreSQL cache scans of them, which a drop
            // then grows a row at a time until autovacuum analyzes again: on a schema analyzed
            // empty, creates ran at 1,052/s, against 2,325/s with this set.
            Settings::Postgres { lock_timeout_ms } => conn.batch_execute(&format!(
                "SET lock_timeout = {lock_timeout_ms}; SET TIME ZONE 'UTC'; SET enable_seqscan = off;"
            )),
        }
    }
}

impl CustomizeConnection<Live, diesel::r2d2::Error> for Settings {
    fn on_acquire(&self, live: &mut Live) -> Result<(), diesel::r2d2::Error> {
        self.apply(&mut live.conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

/// The file path of a SQLite URL, if it is one.
fn sqlite_path(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))
}

impl Database {
    /// Opens the pool (and, for SQLite, creates the file's folder and starts the writer).
    pub fn connect(options: &DbOptions) -> Result<Self, RepoError> {
        let wait = options.lock_wait.as_millis();
        let (manager, settings) = if let Some(path) = sqlite_path(&options.url) {
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
            (Checked { backend: Backend::Sqlite, target: path.to_owned() }, Settings::Sqlite { busy_timeout_ms: wait })
        } else if options.url.starts_with("postgres://") || options.url.starts_with("postgresql://") {
            let manager = Checked { backend: Backend::Postgres, target: options.url.clone() };
            (manager, Settings::Postgres { lock_timeout_ms: wait })
        } else {
            return Err(RepoError::Unavailable("DATABASE_URL must start with sqlite:// or postgres://".into()));
        };
        let manager_backend = manager.backend;
        let writer = match manager.backend {
            Backend::Sqlite => Some(SqliteWriter::start(&manager.target, settings, options.queue_timeout)?),
            Backend::Postgres => None,
        };
        let pool = Pool::builder()
            .max_size(options.pool_size)
            // The wait to open the pool at start; a caller's wait for a connection is the gate's.
            .connection_timeout(options.lock_wait)
            .error_handler(Box::new(PoolErrorsToDebug))
            .connection_customizer(Box::new(settings))
            .build(manager)?;
        let gate = Gate::new("connection pool", options.pool_size, options.queue_timeout);
        let fifo = Fifo::new(options.pool_size);
        Ok(Database { backend: manager_backend, pool, gate, fifo, writer })
    }

    /// A pooled connection: for reads, and for writes outside the checkout's hot paths.
    pub fn conn(&self) -> Result<Pooled, RepoError> {
        let mut ticket = self.gate.enter()?;
        let deadline = Instant::now() + self.gate.timeout();
        let permit = self.fifo.acquire(self.gate.timeout()).ok_or_else(|| {
            RepoError::Unavailable(format!(
                "waited {} ms for a database connection (CHECKOUT_QUEUE_TIMEOUT_MS)",
                self.gate.timeout().as_millis()
            ))
        })?;
        let conn = self.pool.get_timeout(deadline.saturating_duration_since(Instant::now()))?;
        ticket.start();
        Ok(Pooled { conn, _permit: permit, _ticket: ticket })
    }

    /// Runs `work` as one write transaction ([`AnyConnection::write_transaction`]): on
    /// PostgreSQL on a pooled connection, on SQLite queued for the writer. `work` may capture only
    /// owned values, since it may run on another thread.
    pub(crate) fn write<T, E>(
        &self,
        work: impl FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<RepoError> + From<diesel::result::Error> + Send + 'static,
    {
        self.run(move |conn| conn.write_transaction(work))
    }

    /// Runs `work`, which writes, on the connection for writes: a pooled one on PostgreSQL, the
    /// writer on SQLite. `work` begins its own transactions.
    pub(crate) fn run<T, E>(
        &self,
        work: impl FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<RepoError> + Send + 'static,
    {
        match &self.writer {
            Some(writer) => writer.run(work),
            None => work(&mut *self.conn()?),
        }
    }

    /// Applies pending migrations; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, RepoError> {
        let mut conn = self.conn()?;
        let applied = match &mut *conn {
            AnyConnection::Postgres(pg) => {
                pg.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
                let result = pg
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|versions| versions.iter().map(ToString::to_string).collect());
                pg.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
                result
            }
            AnyConnection::Sqlite(sqlite) => sqlite
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|versions| versions.iter().map(ToString::to_string).collect()),
        };
        applied.map_err(|e| RepoError::Unexpected(e.to_string().into()))
    }

    /// Whether every migration has been applied (one query).
    pub fn is_migrated(&self) -> Result<bool, RepoError> {
        let mut conn = self.conn()?;
        let pending = match &mut *conn {
            AnyConnection::Postgres(pg) => pg.pending_migrations(POSTGRES_MIGRATIONS).map(|p| p.len()),
            AnyConnection::Sqlite(sqlite) => sqlite.pending_migrations(SQLITE_MIGRATIONS).map(|p| p.len()),
        };
        pending.map(|n| n == 0).map_err(|e| RepoError::Unavailable(e.to_string()))
    }

    /// `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
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
        let state = self.pool.state();
        let mut pools = vec![domain::ports::PoolStats {
            name: self.backend(),
            in_use: state.connections - state.idle_connections,
            idle: state.idle_connections,
            queued: self.gate.queued(),
            refused: self.gate.refused(),
        }];
        if let Some(writer) = &self.writer {
            pools.push(domain::ports::PoolStats {
                name: "sqlite_writer",
                in_use: writer.gate.serving(),
                idle: 1 - writer.gate.serving(),
                queued: writer.gate.queued(),
                refused: writer.gate.refused(),
            });
        }
        pools
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
        let options = DbOptions {
            url: "postgres://u:pw@h/d".into(),
            pool_size: 1,
            lock_wait: Duration::from_secs(1),
            queue_timeout: Duration::from_secs(1),
        };
        assert!(!format!("{options:?}").contains("pw"));
    }
}
