//! Development mode's conveniences: secrets made on first use and kept in a local file (never used
//! in production), and a demo merchant with a ready-to-paste request on a new database.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::Utc;
use domain::claim::{ClaimItem, ClaimPayload, ClaimSigner};
use domain::ids::MerchantId;
use domain::secret::{random_token, Secret};
use serde::{Deserialize, Serialize};

/// The `kid` of the development claim key.
pub const DEV_KID: &str = "dev";

/// What development mode keeps between runs, in `CHECKOUT_DEV_SECRETS_FILE` (mode 0600).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DevSecrets {
    /// Signs checkout page tokens when `CHECKOUT_TOKEN_SECRET` is unset.
    pub token_secret: String,
    /// Signs development claims (trusted in development mode only).
    pub claim_private_key: String,
    /// The demo merchant made on the first start, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demo_merchant_id: Option<String>,
}

impl std::fmt::Debug for DevSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevSecrets").field("demo_merchant_id", &self.demo_merchant_id).finish_non_exhaustive()
    }
}

impl DevSecrets {
    /// Reads the file, or makes and writes fresh secrets.
    pub fn load_or_create(path: &str) -> std::io::Result<Self> {
        if let Some(secrets) = Self::read(path)? {
            return Ok(secrets);
        }
        let secrets = DevSecrets {
            token_secret: random_token().expose().to_owned(),
            claim_private_key: ClaimSigner::generate().private_key().expose().to_owned(),
            demo_merchant_id: None,
        };
        secrets.save(path)?;
        Ok(secrets)
    }

    /// Reads the file if there is one, creating nothing.
    pub fn read(path: &str) -> std::io::Result<Option<Self>> {
        match fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| std::io::Error::other(format!("{path} is not a development secrets file: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the file, readable by its owner only.
    pub fn save(&self, path: &str) -> std::io::Result<()> {
        if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
        file.write_all(text.as_bytes())
    }

    /// The development claim signer.
    pub fn claim_signer(&self) -> Option<ClaimSigner> {
        ClaimSigner::from_private(DEV_KID, &self.claim_private_key)
    }

    /// The token secret.
    pub fn token_secret(&self) -> Secret {
        Secret::new(self.token_secret.clone())
    }
}

/// A demo claim: two tees, valid for 15 minutes.
pub fn demo_claim(signer: &ClaimSigner, merchant: MerchantId) -> String {
    let items = vec![ClaimItem {
        sku: "TEE-BLACK-M".into(),
        name: "Drop tee (black, M)".into(),
        quantity: 2,
        unit_amount: 2500,
    }];
    signer.sign(&ClaimPayload { sub: "cus_demo".into(), ..ClaimPayload::new(merchant, items, Utc::now(), 900) })
}

/// A `curl` that creates a checkout with `claim` and shows the answer's headers (`-i`), so a second
/// run shows `Idempotent-Replayed: true`. The key sits in double quotes: `$CHECKOUT_SECRET_KEY`
/// expands there, and a real key has no character the shell would touch.
pub fn demo_curl(public_url: &str, secret_key: &str, claim: &str) -> String {
    let body = serde_json::json!({
        "checkoutClaim": claim,
        "mode": "hosted",
        "successUrl": "https://example.com/checkout/success",
        "cancelUrl": "https://example.com/checkout/cancel",
        "idempotencyKey": format!("demo-{}", &random_token().expose()[..12]),
    });
    format!(
        "curl -i -sS -X POST {}/checkout \\\n  -H \"Authorization: Bearer {secret_key}\" \\\n  -H 'Content-Type: application/json' \\\n  -d '{body}'",
        public_url.trim_end_matches('/')
    )
}

/// How the person reading the banner runs this binary's commands: `cargo run --release --` (or
/// `cargo run --` for a debug build) when it runs from a checkout's `target/` folder, as after
/// `cargo run --release`; `checkout-server` when that name on the `PATH` is this binary; its own
/// path otherwise.
pub fn cli_command() -> String {
    let Ok(exe) = std::env::current_exe() else { return "checkout-server".into() };
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|dir| dir.join("checkout-server")).find(|candidate| candidate.is_file())
    });
    command_for(&exe, on_path.as_deref())
}

/// [`cli_command`] for the binary at `exe`, with `on_path` the `checkout-server` the `PATH` finds.
fn command_for(exe: &Path, on_path: Option<&Path>) -> String {
    let canonical = |path: &Path| fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let profile = exe.parent().filter(|dir| dir.parent().and_then(Path::file_name) == Some("target".as_ref()));
    match profile.and_then(Path::file_name).and_then(|name| name.to_str()) {
        Some("release") => return "cargo run --release --".into(),
        Some("debug") => return "cargo run --".into(),
        _ => {}
    }
    if on_path.is_some_and(|found| canonical(found) == canonical(exe)) {
        return "checkout-server".into();
    }
    let shown: PathBuf = canonical(exe);
    shown.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_names_the_binary_as_it_can_be_run() {
        let exe = Path::new("/src/checkout/target/release/checkout-server");
        assert_eq!(command_for(exe, None), "cargo run --release --");
        assert_eq!(command_for(Path::new("/src/checkout/target/debug/checkout-server"), None), "cargo run --");
        let installed = Path::new("/opt/checkout/bin/checkout-server");
        assert_eq!(command_for(installed, Some(installed)), "checkout-server");
        assert_eq!(
            command_for(installed, Some(Path::new("/usr/bin/checkout-server"))),
            "/opt/checkout/bin/checkout-server"
        );
        assert_eq!(command_for(installed, None), "/opt/checkout/bin/checkout-server");
    }
}
