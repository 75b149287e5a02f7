//! The `checkout-server` binary's library: configuration, wiring, the operator CLI and
//! development-mode conveniences. `main.rs` only dispatches.

pub mod cli;
pub mod config;
pub mod dev;
pub mod startup;
pub mod usage;

use std::sync::Arc;

use domain::livemode::Livemode;
use domain::ports::SystemClock;
use persistence::Database;

use crate::config::Config;
use crate::dev::{cli_command, demo_claim, demo_curl, DevSecrets};
use crate::startup::merchant_service;

/// In development: on an empty database, makes a demo merchant and test key; prints a request that
/// works as pasted (with the key the first time; afterwards with `$CHECKOUT_SECRET_KEY`, which the
/// shell expands inside the double quotes), against `public_url`, where the server really listens.
pub fn development_banner(config: &Config, database: &Database, public_url: &str) -> Result<String, String> {
    let merchants = merchant_service(database, Arc::new(SystemClock));
    let mut dev = DevSecrets::load_or_create(&config.dev_secrets_file).map_err(|e| e.to_string())?;
    let signer = dev.claim_signer().ok_or("the development claim key is unreadable")?;
    let fresh = merchants.no_merchants().map_err(|e| e.to_string())?;
    let cli = cli_command();
    let (merchant, secret) = if fresh {
        let merchant = merchants.create_merchant("Demo Merchant").map_err(|e| e.to_string())?;
        let (_, key) = merchants.create_key(merchant.id, Livemode::Test).map_err(|e| e.to_string())?;
        dev.demo_merchant_id = Some(merchant.id.to_string());
        dev.save(&config.dev_secrets_file).map_err(|e| e.to_string())?;
        (merchant.id, key.secret().expose().to_owned())
    } else {
        match dev.demo_merchant_id.as_deref().and_then(|id| id.parse().ok()) {
            Some(id) => (id, "$CHECKOUT_SECRET_KEY".to_owned()),
            None => {
                return Ok(format!(
                    "Development mode. Create a merchant and key with `{cli} merchant create` and `{cli} key create`."
                ))
            }
        }
    };
    let curl = demo_curl(public_url, &secret, &demo_claim(&signer, merchant));
    let mut text = String::from("Development mode (never use it for real payments).\n");
    if fresh {
        text.push_str(&format!(
            "Created demo merchant {merchant} with a test secret key, shown only now:\n\n  {secret}\n\n"
        ));
    } else {
        text.push_str(&format!(
            "Demo merchant {merchant}: set CHECKOUT_SECRET_KEY to the test key printed at its creation \
             (lost it? `{cli} key create --merchant {merchant}` makes another).\n"
        ));
    }
    text.push_str(&format!(
        "Create a checkout (the claim inside is fresh and valid for 15 minutes; run it twice to see \
         `Idempotent-Replayed: true`):\n\n{curl}\n\n\
         More claims: {cli} claim issue --merchant {merchant} --item sku=TEE-1,name=Tee,quantity=1,unitAmount=2500\n"
    ));
    Ok(text)
}
