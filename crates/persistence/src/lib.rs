//! Storage for the Checkout API: diesel repositories implementing the domain's ports on SQLite
//! (embedded default) and PostgreSQL (production, shared by replicas), the r2d2 pool and the
//! embedded migrations. A query is a plain function over [`AnyConnection`], the same for both
//! backends. Every use case is one transaction; uniqueness rules are database constraints, never
//! check-then-insert.
//!
//! A read of one row by a unique key is `get_result`, not `first`: `first` adds `LIMIT ?`, and
//! SQLite prepares a statement with a bound `LIMIT` again on every execution (it plans with the
//! limit's value), parser and planner included. A read of the newest of a few rows (a payment's
//! attempts) takes the first row of `get_result` too. Keep `first` where the limit bounds the
//! work.

mod admission;
mod checkout;
mod connection;
mod db;
mod error;
mod merchant;
mod orders;
mod outbox;
mod postgres;
pub mod raw;
mod rows;
mod schema;
mod webhook;

pub use checkout::CheckoutRepository;
pub use connection::AnyConnection;
pub use db::{redacted_url, Database, DbOptions, Pooled};
pub use error::RepoError;
pub use merchant::{KeyUsage, MerchantRepository};
pub use orders::OrderRepository;
pub use webhook::WebhookRepository;

/// Whether this build's libpq speaks TLS to PostgreSQL (the `postgres-tls` feature, which links
/// OpenSSL); the default build bundles libpq without it, so it needs no system library.
pub const POSTGRES_TLS: bool = cfg!(feature = "postgres-tls");
