//! Storage for the Checkout API: diesel repositories implementing the domain's ports on SQLite
//! (embedded default) and PostgreSQL (production, shared by replicas), the r2d2 pools and the
//! embedded migrations. Every use case is one transaction; uniqueness rules are database
//! constraints, never check-then-insert.

mod checkout;
mod db;
mod error;
mod merchant;
mod outbox;
mod postgres;
mod schema;
mod session;
mod webhook;

pub use checkout::CheckoutRepository;
pub use db::{redacted_url, Database, DbOptions};
pub use error::RepoError;
pub use merchant::MerchantRepository;
pub use session::SessionRepository;
pub use webhook::WebhookRepository;
