//! Any text as a checkout claim, and any bytes as the payload of a correctly signed claim (so the
//! payload checks are reached, not only the signature check): verification must answer, never
//! panic, and never accept a claim for another merchant.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use domain::claim::{ClaimKeys, ClaimSigner};
use domain::ids::MerchantId;
use libfuzzer_sys::fuzz_target;

struct Setup {
    signer: ClaimSigner,
    keys: ClaimKeys,
    merchant: MerchantId,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let signer = ClaimSigner::generate();
        let mut keys = ClaimKeys::default();
        keys.insert(signer.kid(), signer.verifying_key());
        Setup { signer, keys, merchant: MerchantId::new() }
    })
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let now = chrono::Utc::now();
    let Some((&mode, rest)) = data.split_first() else { return };
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        setup.signer.sign_raw(&URL_SAFE_NO_PAD.encode(rest))
    };
    if let Ok(claim) = setup.keys.verify(&token, setup.merchant, now) {
        assert_eq!(claim.merchant_id, setup.merchant);
        assert!(claim.amount_total >= 0 && !claim.items.is_empty());
    }
});
