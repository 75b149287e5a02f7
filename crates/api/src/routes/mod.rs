//! One module per endpoint.

pub mod checkout;
pub mod openapi;
