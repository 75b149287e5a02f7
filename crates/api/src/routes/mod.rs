//! One module per endpoint.

pub mod checkout;
