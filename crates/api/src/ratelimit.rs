//! Request limits, each answering `429 rate_limited` with `Retry-After`:
//!
//! - **per merchant and mode**: requests of an authenticated merchant (any of its keys), counted
//!   once the key is known to be one of its own, before anything is done for it. A forged or
//!   unknown key never reaches this limit, so it can neither make a bucket nor spend a merchant's.
//! - **per client address, failed authentication**: every `401` spends one; an address that has
//!   spent them all is refused *before* its key is looked up, whatever key it presents, until
//!   one is free again. So forged keys share one budget per address, and a list of leaked keys
//!   cannot be tried faster than the limit allows.
//! - **per client address, checkout page posts** (`POST /c/{token}/pay|cancel`, `/embed/…`).
//!
//! The client address is the TCP peer's. Only when the peer is one of the configured trusted
//! proxies (`CHECKOUT_TRUSTED_PROXIES`) is `X-Forwarded-For` read: from the right, skipping
//! trusted proxies, the first other address is the client. IPv6 clients are counted by their
//! /64 network, which one host usually holds whole.
//!
//! Buckets are governor's GCRA limiters in each replica's memory: with N replicas behind a
//! balancer, each limit allows up to N times its rate. Memory is bounded: buckets that are full
//! again are dropped as the map grows, and a map still at [`MAX_KEYS`] after that starts afresh.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, ResponseError};
use domain::ids::MerchantId;
use domain::livemode::Livemode;
use domain::merchant::Caller;
use domain::ports::MerchantLimit;
use governor::clock::{Clock, MonotonicClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::error::ApiError;
use crate::metrics::Metrics;

/// Most keys one limiter holds; past it (after dropping full buckets) it starts afresh.
pub const MAX_KEYS: usize = 100_000;

/// Below this many keys a limiter does no housekeeping.
const PRUNE_FROM: usize = 1_024;

/// One limit's rate: `count` requests per `per` on average, up to `burst` at once. A `count` of 0
/// is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per `per`; 0 for no limit.
    pub count: u32,
    /// The period `count` is measured over.
    pub per: Duration,
    /// Requests allowed at once (at least 1).
    pub burst: u32,
}

impl Rate {
    /// No limit.
    pub const OFF: Rate = Rate { count: 0, per: Duration::from_secs(1), burst: 0 };

    /// `count` a second, `burst` at once.
    pub fn per_second(count: u32, burst: u32) -> Self {
        Self { count, per: Duration::from_secs(1), burst }
    }

    /// `count` a minute, `burst` at once.
    pub fn per_minute(count: u32, burst: u32) -> Self {
        Self { count, per: Duration::from_secs(60), burst }
    }

    fn quota(self) -> Option<Quota> {
        let count = NonZeroU32::new(self.count)?;
        let quota = Quota::with_period(self.per / count.get())?;
        Some(quota.allow_burst(NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN)))
    }
}

/// The configured limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// Requests per merchant and mode.
    pub merchant: Rate,
    /// Failed authentications (`401`) per client address.
    pub auth_failures: Rate,
    /// Checkout page form posts per client address.
    pub page_posts: Rate,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Networks,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            merchant: Rate::OFF,
            auth_failures: Rate::OFF,
            page_posts: Rate::OFF,
            trusted_proxies: Networks::default(),
        }
    }
}

/// A list of IP networks (`10.0.0.0/8`, `fd00::/8`, or single addresses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<(IpAddr, u8)>);

impl std::fmt::Display for Networks {
    /// As configured: `10.0.0.0/8,192.0.2.1/32`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries: Vec<String> = self.0.iter().map(|(address, bits)| format!("{address}/{bits}")).collect();
        f.write_str(&entries.join(","))
    }
}

impl Networks {
    /// Parses a comma-separated list; names the first entry that is not an address or network.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (address, bits) = entry.split_once('/').unwrap_or((entry, ""));
            let address: IpAddr = address.parse().map_err(|_| format!("{entry:?} is not an IP address or network"))?;
            let address = canonical(address);
            let max = if address.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                "" => max,
                bits => {
                    bits.parse().ok().filter(|b| *b <= max).ok_or_else(|| format!("{entry:?}: bad prefix length"))?
                }
            };
            networks.push((address, bits));
        }
        Ok(Self(networks))
    }

    /// Whether `address` is in one of the networks.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|(network, bits)| match (network, address) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix(u128::from(u32::from(*n)), 32, *bits) == prefix(u128::from(u32::from(a)), 32, *bits)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix(u128::from(*n), 128, *bits) == prefix(u128::from(a), 128, *bits),
            _ => false,
        })
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The first `bits` of a `width`-bit address.
fn prefix(address: u128, width: u8, bits: u8) -> u128 {
    match width - bits.min(width) {
        shift if shift >= 128 => 0,
        shift => address >> shift,
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The bucket a client address counts in: the address itself, or an IPv6 address's /64.
fn bucket_of(address: IpAddr) -> IpAddr {
    match canonical(address) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// The client of `req`: the peer, or, behind a trusted proxy, the nearest untrusted address of
/// `X-Forwarded-For`. `None` when the peer is unknown (no limit applies then).
pub fn client_address(req: &HttpRequest, trusted: &Networks) -> Option<IpAddr> {
    let mut client = canonical(req.peer_addr()?.ip());
    if trusted.is_empty() || !trusted.contains(client) {
        return Some(client);
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    for entry in forwarded.iter().rev().map(|e| e.trim()) {
        let parsed = entry
            .parse::<IpAddr>()
            .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
            .or_else(|_| entry.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>());
        // An entry that is not an address was not written by a proxy we trust: stop at the last
        // address we can vouch for.
        let Ok(address) = parsed.map(canonical) else { break };
        client = address;
        if !trusted.contains(address) {
            break;
        }
    }
    Some(client)
}

/// governor's keyed limiter over a plain map (no extra concurrency crates).
type Buckets<K, C> = RateLimiter<K, HashMapStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A keyed GCRA limiter whose memory stays bounded.
struct Keyed<K: Hash + Eq + Clone, C: Clock + Clone> {
    quota: Quota,
    clock: C,
    limiter: RwLock<Buckets<K, C>>,
    prune_at: AtomicUsize,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> Keyed<K, C> {
    fn new(quota: Quota, clock: C, max_keys: usize) -> Self {
        Self {
            limiter: RwLock::new(RateLimiter::hashmap_with_clock(quota, clock.clone())),
            quota,
            clock,
            prune_at: AtomicUsize::new(PRUNE_FROM.min(max_keys)),
            max_keys,
        }
    }

    /// Spends one request of `key`'s bucket, or says until when it is empty.
    fn check(&self, key: &K) -> Result<(), C::Instant> {
        let (result, len) = {
            let limiter = self.limiter.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            (limiter.check_key(key).map_err(|refused| refused.earliest_possible()), limiter.len())
        };
        if len >= self.prune_at.load(Ordering::Relaxed) {
            self.prune();
        }
        result
    }

    /// Drops buckets that are full again; starts afresh if that leaves `max_keys` or more.
    fn prune(&self) {
        let mut limiter = self.limiter.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        limiter.retain_recent();
        limiter.shrink_to_fit();
        if limiter.len() >= self.max_keys {
            log::warn!("rate limiter: {} clients within one refill; forgetting them all", limiter.len());
            *limiter = RateLimiter::hashmap_with_clock(self.quota, self.clock.clone());
        }
        let next = limiter.len().saturating_mul(2).clamp(PRUNE_FROM.min(self.max_keys), self.max_keys);
        self.prune_at.store(next, Ordering::Relaxed);
    }

    fn len(&self) -> usize {
        self.limiter.read().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    fn wait(&self, until: C::Instant) -> Duration {
        until.duration_since(self.clock.now()).into()
    }
}

/// Failed authentications per client address, and the addresses that have spent them all.
struct Failures<C: Clock + Clone> {
    counted: Keyed<IpAddr, C>,
    blocked: Mutex<HashMap<IpAddr, C::Instant>>,
}

impl<C: Clock + Clone> Failures<C> {
    fn new(quota: Quota, clock: C, max_keys: usize) -> Self {
        Self { counted: Keyed::new(quota, clock, max_keys), blocked: Mutex::default() }
    }

    /// `Err(wait)` while `client` may not try another key.
    fn blocked(&self, client: IpAddr) -> Result<(), Duration> {
        let now = self.counted.clock.now();
        let mut blocked = self.blocked.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match blocked.get(&client) {
            Some(until) if *until > now => Err(until.duration_since(now).into()),
            Some(_) => {
                blocked.remove(&client);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failure of `client`; `Err(wait)` when it was one too many.
    fn failed(&self, client: IpAddr) -> Result<(), Duration> {
        let until = match self.counted.check(&client) {
            Ok(()) => return Ok(()),
            Err(until) => until,
        };
        let now = self.counted.clock.now();
        let mut blocked = self.blocked.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if blocked.len() >= self.counted.max_keys {
            blocked.retain(|_, until| *until > now);
        }
        // When the list is full of live entries, the address is still refused on each failure by
        // the limiter itself, only after its key is looked up.
        if blocked.len() < self.counted.max_keys {
            blocked.insert(client, until);
        }
        Err(until.duration_since(now).into())
    }
}

/// Every limit of one replica.
pub struct Limits {
    merchant: Option<Keyed<(MerchantId, Livemode), MonotonicClock>>,
    auth_failures: Option<Failures<MonotonicClock>>,
    page_posts: Option<Keyed<IpAddr, MonotonicClock>>,
    trusted_proxies: Networks,
    metrics: Metrics,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("merchant", &self.merchant.as_ref().map(|l| l.quota))
            .field("auth_failures", &self.auth_failures.as_ref().map(|l| l.counted.quota))
            .field("page_posts", &self.page_posts.as_ref().map(|l| l.quota))
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

/// What a start-up log line says: each limit's rate and burst, or `off`.
impl std::fmt::Display for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = |quota: Option<Quota>| match quota {
            Some(q) => {
                let interval = q.replenish_interval().as_nanos().max(1);
                match Duration::from_secs(1).as_nanos() / interval {
                    0 => format!("{}/min, burst {}", Duration::from_secs(60).as_nanos() / interval, q.burst_size()),
                    per_second => format!("{per_second}/s, burst {}", q.burst_size()),
                }
            }
            None => "off".to_owned(),
        };
        write!(
            f,
            "per merchant and mode {}; failed authentications per address {}; page posts per address {}; \
             trusted proxies: {}",
            rate(self.merchant.as_ref().map(|l| l.quota)),
            rate(self.auth_failures.as_ref().map(|l| l.counted.quota)),
            rate(self.page_posts.as_ref().map(|l| l.quota)),
            if self.trusted_proxies.is_empty() { "none" } else { "configured" },
        )
    }
}

/// The `limit` label of `checkout_rate_limited_total` and `checkout_rate_limit_keys`.
const MERCHANT: &str = "merchant";
const AUTH_FAILURES: &str = "auth_failures";
const PAGE_POSTS: &str = "page_posts";

impl Limits {
    /// The limits of `settings`, counting refusals in `metrics`.
    pub fn new(settings: &LimitSettings, metrics: Metrics) -> Self {
        Self {
            merchant: settings.merchant.quota().map(|q| Keyed::new(q, MonotonicClock, MAX_KEYS)),
            auth_failures: settings.auth_failures.quota().map(|q| Failures::new(q, MonotonicClock, MAX_KEYS)),
            page_posts: settings.page_posts.quota().map(|q| Keyed::new(q, MonotonicClock, MAX_KEYS)),
            trusted_proxies: settings.trusted_proxies.clone(),
            metrics,
        }
    }

    /// No limits at all.
    pub fn none(metrics: Metrics) -> Self {
        Self::new(&LimitSettings::default(), metrics)
    }

    /// Counts a refusal by `limit` and how many clients that limit holds; passes `wait` on.
    fn refused(&self, limit: &str, keys: usize, wait: Duration) -> Duration {
        self.metrics.rate_limited.with_label_values(&[limit]).inc();
        self.held(limit, keys);
        wait
    }

    fn held(&self, limit: &str, keys: usize) {
        self.metrics.rate_limit_keys.with_label_values(&[limit]).set(i64::try_from(keys).unwrap_or(i64::MAX));
    }

    /// The client address of `req`, as the address limits count it.
    pub fn client(&self, req: &HttpRequest) -> Option<IpAddr> {
        client_address(req, &self.trusted_proxies).map(bucket_of)
    }

    /// Spends one checkout page post of `req`'s client address; `Err(wait)` when it has none.
    pub fn page_post(&self, req: &HttpRequest) -> Result<(), Duration> {
        let (Some(limiter), Some(client)) = (&self.page_posts, self.client(req)) else { return Ok(()) };
        let result = limiter.check(&client).map_err(|until| limiter.wait(until));
        self.held(PAGE_POSTS, limiter.len());
        result.map_err(|wait| self.refused(PAGE_POSTS, limiter.len(), wait))
    }

    /// Spends one request of the caller's merchant in the caller's mode, as an API answer.
    pub fn admit_merchant(&self, caller: &Caller) -> Result<(), ApiError> {
        self.admit(caller).map_err(|wait| ApiError::RateLimited(retry_after(wait)))
    }

    /// `Err(wait)` while `client` has spent its failed authentications.
    fn auth_blocked(&self, failures: &Failures<MonotonicClock>, client: IpAddr) -> Result<(), Duration> {
        failures.blocked(client).map_err(|wait| self.refused(AUTH_FAILURES, failures.counted.len(), wait))
    }

    /// Counts a failed authentication of `client`; `Err(wait)` when it was one too many.
    fn auth_failed(&self, failures: &Failures<MonotonicClock>, client: IpAddr) -> Result<(), Duration> {
        let result = failures.failed(client);
        self.held(AUTH_FAILURES, failures.counted.len());
        result.map_err(|wait| self.refused(AUTH_FAILURES, failures.counted.len(), wait))
    }
}

impl MerchantLimit for Limits {
    fn admit(&self, caller: &Caller) -> Result<(), Duration> {
        let Some(limiter) = &self.merchant else { return Ok(()) };
        let result = limiter.check(&(caller.merchant_id, caller.livemode)).map_err(|until| limiter.wait(until));
        self.held(MERCHANT, limiter.len());
        result.map_err(|wait| self.refused(MERCHANT, limiter.len(), wait))
    }
}

/// Whole seconds to wait, rounded up, at least 1: what `Retry-After` says.
pub fn retry_after(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// Middleware for the endpoints that need a secret key: an address that has spent its failed
/// authentications is refused before anything else runs, whatever key it presents, and every
/// `401` is counted (one that finds none left answers `429` instead).
pub async fn authentication(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(limits) = req.app_data::<web::Data<Limits>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let (Some(failures), Some(client)) = (&limits.auth_failures, limits.client(req.request())) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let too_many = |wait: Duration| ApiError::RateLimited(retry_after(wait)).error_response();
    if let Err(wait) = limits.auth_blocked(failures, client) {
        return Ok(req.into_response(too_many(wait)));
    }
    let response = next.call(req).await?;
    if response.status() != StatusCode::UNAUTHORIZED {
        return Ok(response.map_into_boxed_body());
    }
    match limits.auth_failed(failures, client) {
        Ok(()) => Ok(response.map_into_boxed_body()),
        Err(wait) => {
            let (req, _) = response.into_parts();
            Ok(ServiceResponse::new(req, too_many(wait)))
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn quota(rate: Rate) -> Quota {
        rate.quota().unwrap()
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let clock = FakeRelativeClock::default();
        let limiter = Keyed::new(quota(Rate::per_second(10, 5)), clock.clone(), MAX_KEYS);
        for _ in 0..5 {
            assert!(limiter.check(&"k").is_ok());
        }
        let until = limiter.check(&"k").unwrap_err();
        let wait = limiter.wait(until);
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100), "{wait:?}");
        clock.advance(Duration::from_millis(100));
        assert!(limiter.check(&"k").is_ok());
        assert!(limiter.check(&"k").is_err());
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(Rate::per_second(0, 10).quota().is_none());
        assert!(Rate::OFF.quota().is_none());
        let limits = Limits::none(Metrics::new());
        assert!(limits.merchant.is_none() && limits.auth_failures.is_none() && limits.page_posts.is_none());
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_bounded() {
        let clock = FakeRelativeClock::default();
        let limiter = Keyed::new(quota(Rate::per_minute(1, 1)), clock.clone(), 2_000);
        let mut most = 0;
        for n in 0..10_000u32 {
            let _ = limiter.check(&n);
            most = most.max(limiter.len());
        }
        assert!(most <= 2_000, "{most} keys held");
        // Buckets that have filled up again are dropped as the map grows.
        clock.advance(Duration::from_secs(61));
        for n in 10_000..10_000 + PRUNE_FROM as u32 {
            let _ = limiter.check(&n);
        }
        assert!(limiter.len() <= PRUNE_FROM + 1, "{} keys held", limiter.len());
    }

    #[test]
    fn an_address_that_spent_its_failures_is_blocked_until_one_is_free() {
        let clock = FakeRelativeClock::default();
        let failures = Failures::new(quota(Rate::per_minute(6, 2)), clock.clone(), MAX_KEYS);
        let (one, two): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(failures.blocked(one).is_ok());
        assert!(failures.failed(one).is_ok());
        assert!(failures.failed(one).is_ok());
        let wait = failures.failed(one).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert_eq!(failures.blocked(one), Err(Duration::from_secs(10)));
        assert!(failures.blocked(two).is_ok(), "another address has its own budget");
        clock.advance(Duration::from_secs(10));
        assert!(failures.blocked(one).is_ok());
        assert!(failures.failed(one).is_ok());
        assert!(failures.failed(one).is_err());
    }

    #[test]
    fn the_start_up_line_names_each_limit() {
        let settings = LimitSettings {
            merchant: Rate::per_second(200, 400),
            auth_failures: Rate::per_minute(30, 30),
            trusted_proxies: Networks::parse("10.0.0.0/8").unwrap(),
            ..LimitSettings::default()
        };
        assert_eq!(
            Limits::new(&settings, Metrics::new()).to_string(),
            "per merchant and mode 200/s, burst 400; failed authentications per address 30/min, burst 30; \
             page posts per address off; trusted proxies: configured"
        );
    }

    #[test]
    fn networks_match_addresses_and_prefixes() {
        let trusted = Networks::parse("10.0.0.0/8, 192.0.2.7, fd00::/8, ::1").unwrap();
        for inside in ["10.1.2.3", "192.0.2.7", "fd12::1", "::1", "::ffff:10.9.9.9"] {
            assert!(trusted.contains(inside.parse().unwrap()), "{inside}");
        }
        for outside in ["11.0.0.1", "192.0.2.8", "fe80::1", "::2"] {
            assert!(!trusted.contains(outside.parse().unwrap()), "{outside}");
        }
        assert!(Networks::parse("0.0.0.0/0").unwrap().contains("203.0.113.1".parse().unwrap()));
        assert!(Networks::parse("10.0.0.0/33").is_err());
        assert!(Networks::parse("proxy.internal").is_err());
        assert!(Networks::parse("").unwrap().is_empty());
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a = bucket_of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = bucket_of("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = bucket_of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(bucket_of("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    fn request(peer: &str, forwarded: &[&str]) -> HttpRequest {
        let mut req = actix_web::test::TestRequest::default().peer_addr(peer.parse().unwrap());
        for value in forwarded {
            req = req.append_header(("X-Forwarded-For", *value));
        }
        req.to_http_request()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let none = Networks::default();
        let proxy = Networks::parse("10.0.0.0/8").unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(client_address(&request("198.51.100.9:4000", &["203.0.113.5"]), &proxy), ip("198.51.100.9"));
        assert_eq!(client_address(&request("10.0.0.2:4000", &["203.0.113.5"]), &none), ip("10.0.0.2"));
        assert_eq!(client_address(&request("10.0.0.2:4000", &["203.0.113.5"]), &proxy), ip("203.0.113.5"));
        // A client's own X-Forwarded-For is on the left: the rightmost untrusted entry wins.
        let chain = request("10.0.0.2:4000", &["1.2.3.4, 203.0.113.5", "10.0.0.3"]);
        assert_eq!(client_address(&chain, &proxy), ip("203.0.113.5"));
        assert_eq!(client_address(&request("10.0.0.2:4000", &["junk, 203.0.113.5:80"]), &proxy), ip("203.0.113.5"));
        assert_eq!(client_address(&request("10.0.0.2:4000", &["203.0.113.5, junk"]), &proxy), ip("10.0.0.2"));
        assert_eq!(client_address(&request("10.0.0.2:4000", &[]), &proxy), ip("10.0.0.2"));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after(Duration::from_millis(1)), 1);
        assert_eq!(retry_after(Duration::ZERO), 1);
        assert_eq!(retry_after(Duration::from_millis(20_001)), 21);
        assert_eq!(retry_after(Duration::from_secs(20)), 20);
    }
}
