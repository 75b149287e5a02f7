//! The HTTP adapter behind the domain's `WebhookSender`: ureq over rustls (Mozilla's root
//! certificates compiled in, no system OpenSSL), 5 seconds to connect and 15 in all by default, no
//! redirects, at most 64 KiB of an answer read. Unless private addresses are allowed
//! (development), a host that resolves to a loopback, private, link-local or otherwise internal
//! address (the domain's `network::is_internal`) is refused at connection time, after DNS, so a
//! rebinding name cannot slip through.

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use domain::network::is_internal;
use domain::ports::WebhookSender;

/// How long one delivery may take, all in, unless configured otherwise.
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// How long connecting may take (within the whole budget).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer's body read (and thrown away).
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// Sends deliveries.
#[derive(Debug, Clone)]
pub struct HttpSender {
    agent: ureq::Agent,
}

impl HttpSender {
    /// A sender with the default timeouts; `allow_internal` lets deliveries reach loopback and
    /// private addresses.
    pub fn new(allow_internal: bool) -> Result<Self, String> {
        Self::with_timeout(allow_internal, TIMEOUT)
    }

    /// A sender whose deliveries may take `timeout` in all (connecting at most 5 s of it).
    pub fn with_timeout(allow_internal: bool, timeout: Duration) -> Result<Self, String> {
        let agent = ureq::AgentBuilder::new()
            .timeout(timeout)
            .timeout_connect(CONNECT_TIMEOUT.min(timeout))
            .redirects(0)
            .resolver(move |netloc: &str| -> std::io::Result<Vec<SocketAddr>> {
                let addresses: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
                if allow_internal {
                    return Ok(addresses);
                }
                let public: Vec<SocketAddr> = addresses.into_iter().filter(|a| !is_internal(a.ip())).collect();
                if public.is_empty() {
                    Err(std::io::Error::other("refused: the endpoint resolves to an internal address"))
                } else {
                    Ok(public)
                }
            })
            .build();
        Ok(Self { agent })
    }
}

/// An endpoint's answer: its status and the start of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// At most the first `keep` bytes of the body (lossy UTF-8).
    pub body: String,
}

/// Reads at most [`MAX_ANSWER_BYTES`] of the body, keeping the first `keep` bytes.
fn drain(response: ureq::Response, keep: usize) -> Answer {
    let status = response.status();
    let mut reader = response.into_reader().take(MAX_ANSWER_BYTES);
    let mut start = Vec::with_capacity(keep);
    let _ = (&mut reader).take(keep as u64).read_to_end(&mut start);
    let _ = std::io::copy(&mut reader, &mut std::io::sink());
    Answer { status, body: String::from_utf8_lossy(&start).into_owned() }
}

impl HttpSender {
    /// Posts `body` to `url` with `headers` and returns the answer with the first `keep` bytes of
    /// its body (for people trying their endpoint), or why there was none.
    pub fn exchange(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: &str,
        keep: usize,
    ) -> Result<Answer, String> {
        let mut request = self.agent.post(url);
        for (name, value) in headers {
            request = request.set(name, value);
        }
        match request.send_string(body) {
            Ok(response) | Err(ureq::Error::Status(_, response)) => Ok(drain(response, keep)),
            Err(error) => Err(error.to_string()),
        }
    }
}

impl WebhookSender for HttpSender {
    fn send(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> Result<u16, String> {
        self.exchange(url, headers, body, 0).map(|answer| answer.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_resolves_inside_is_refused_in_production() {
        let sender = HttpSender::new(false).unwrap();
        let refused = sender.send("http://localhost:9/hook", &[], "{}").unwrap_err();
        assert!(refused.contains("internal address"), "{refused}");
    }
}
