//! The Checkout API's domain: entities, value types, the rules of claims, idempotency and expiry,
//! the use cases, and the ports (traits) that storage and other adapters implement.
//!
//! Pure by design: no HTTP, no database, no async runtime. What needs I/O is asked of a port.
//!
//! The modules form a tree (`scripts/module-cycles` checks it), from the leaves up:
//! - shared value types: [`ids`], [`money`], [`time`], [`livemode`], [`secret`], [`web_url`],
//!   [`network`];
//! - the model, each entity with its rules: [`claim`], [`idempotency`], [`merchant`], [`order`],
//!   [`payment`], [`webhook`];
//! - every port: [`ports`];
//! - one module per capability: [`checkout`] (create a checkout), [`orders`] (the merchant's
//!   orders, and the changes every order goes through), [`page`] (the consumer's checkout page),
//!   [`sweeper`] (the background jobs), [`webhooks`] (endpoints and the dispatcher),
//!   [`merchants`] (merchants, keys and who a key is).

pub mod checkout;
pub mod claim;
pub mod idempotency;
pub mod ids;
pub mod livemode;
pub mod merchant;
pub mod merchants;
pub mod money;
pub mod network;
pub mod order;
pub mod orders;
pub mod page;
pub mod payment;
pub mod ports;
pub mod secret;
pub mod sweeper;
pub mod time;
pub mod web_url;
pub mod webhook;
pub mod webhooks;
