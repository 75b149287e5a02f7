//! HTTP-level tests of the Checkout API: the real server on a free port, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod auth;
mod browser;
mod checkout;
mod cli;
mod cli_ops;
mod concurrency;
mod faults;
mod idempotency;
mod operations;
mod orders;
mod pages;
mod startup;
mod validation;
mod webhooks;
