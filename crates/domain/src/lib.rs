//! The Checkout API's domain: entities, value types, the rules of claims, idempotency and expiry,
//! and the ports (traits) that storage and other adapters implement.
//!
//! Pure by design: no HTTP, no database, no async runtime. What needs I/O is asked of a port.

pub mod checkout;
pub mod claim;
pub mod dispatch;
pub mod idempotency;
pub mod ids;
pub mod lifecycle;
pub mod livemode;
pub mod merchant;
pub mod money;
pub mod network;
pub mod order;
pub mod payment;
pub mod ports;
pub mod secret;
pub mod session;
pub mod time;
pub mod web_url;
pub mod webhook;
