//! HTTP-level tests of the Checkout API: the real server on a free port, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod provider;

mod auth;
mod browser;
mod checkout;
mod cli;
mod cli_ops;
mod concurrency;
mod contract;
mod crash;
mod dispatch;
mod faults;
mod idempotency;
mod indexes;
mod input_rules;
mod limits;
mod money;
mod operations;
mod orders;
mod pages;
mod refusals;
mod startup;
mod valibot;
mod validation;
mod webhooks;
