//! One module per endpoint (the checkout page's three actions share one).

pub mod assets;
pub mod checkout;
pub mod checkout_page;
pub mod health;
pub mod openapi;
pub mod orders;
pub mod webhook_endpoints;
