//! The server under test: the release `checkout-server` binary in a process of its own, with its
//! production defaults except where a scenario says otherwise.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use domain::claim::ClaimSigner;

use crate::machine::wait_until;

pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    /// Starts a server on `database_url` trusting `signer`, with `extra` settings, and waits
    /// until it is ready.
    pub fn start(database_url: &str, signer: &ClaimSigner, dir: &std::path::Path, extra: &[(&str, String)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_checkout-server"));
        command
            .arg("serve")
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("CHECKOUT_BIND", format!("127.0.0.1:{port}"))
            .env("CHECKOUT_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("CHECKOUT_CLAIM_KEYS", format!("{}:{}", signer.kid(), signer.public_key()))
            .env("CHECKOUT_TOKEN_SECRET", "bench-token-secret-of-at-least-32-characters")
            .env("CHECKOUT_DEV_SECRETS_FILE", dir.join("dev-secrets.json"))
            // A merchant's rate limit would measure the limiter, not the service.
            .env("CHECKOUT_RATE_LIMIT_PER_SECOND", "0")
            // Access lines are written as in production, to a file nobody reads.
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // The server's own tuning settings pass through, so they can be compared.
        for name in [
            "DATABASE_POOL_SIZE",
            "CHECKOUT_WORKERS",
            "CHECKOUT_QUEUE_TIMEOUT_MS",
            "CHECKOUT_SWEEP_INTERVAL_SECONDS",
            "CHECKOUT_WEBHOOK_POLL_MS",
        ] {
            if let Ok(value) = std::env::var(name) {
                command.env(name, value);
            }
        }
        for (name, value) in extra {
            command.env(name, value);
        }
        let child = command.spawn().expect("start checkout-server");
        let server = Server { child, port };
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(2)).build();
        let ready = wait_until(Duration::from_secs(60), || agent.get(&server.url("/readyz")).call().is_ok());
        assert!(ready, "the server on port {port} never became ready");
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let stopped = wait_until(Duration::from_secs(30), || matches!(self.child.try_wait(), Ok(Some(_))));
        if !stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
