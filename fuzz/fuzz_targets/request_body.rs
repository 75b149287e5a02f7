//! Any bytes as a `POST /checkout` body: parsing and validation must answer (a typed request or
//! issues that serialise), never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = api::parse_contract_json(data).ok().flatten();
    for production in [false, true] {
        if let Err(issues) = api::validation::checkout_request(body.as_ref(), production) {
            assert!(!issues.is_empty());
            assert!(serde_json::to_string(&issues).is_ok());
        }
    }
});
