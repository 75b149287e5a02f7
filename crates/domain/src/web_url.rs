//! Web URLs taken from merchants (return URLs, webhook endpoints): absolute `http(s)` with a real
//! host, kept in the WHATWG parser's serialisation, so that what goes into a header or a redirect
//! is always a parsed value.

/// The longest return or webhook endpoint URL accepted, in UTF-16 code units (as JavaScript and
/// Valibot count a string's length).
pub const MAX_URL_LENGTH: usize = 2048;

/// An absolute `http(s)` URL with a real host: where the consumer is sent back to (or where a
/// webhook goes). Parsed as WHATWG URLs are (JavaScript's `new URL`) and kept in that parser's
/// serialisation: ASCII, percent-encoded, so it is safe in a header and in either database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUrl {
    url: String,
    origin: String,
}

/// Why a return URL is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebUrlError {
    /// Not a URL at all (`new URL` would throw).
    #[error("is not a URL")]
    NotUrl,
    /// A URL, but not `http` or `https`.
    #[error("must be an absolute http or https URL")]
    NotHttp,
    /// `http` where production requires `https`.
    #[error("must use https")]
    HttpsRequired,
    /// A host that is neither a DNS name (letters, digits and hyphens, in dot-separated labels)
    /// nor an IP address, such as `x.example;script-src`.
    #[error("must name a valid host")]
    InvalidHost,
    /// A user name or password in the URL: it would travel on in every redirect.
    #[error("must not carry a user name or password")]
    Credentials,
    /// Port 0, which nothing listens on.
    #[error("must not use port 0")]
    PortZero,
    /// Longer than [`MAX_URL_LENGTH`], as typed or once encoded (each non-ASCII character becomes
    /// several `%XX`); the encoded form is what redirects and headers carry.
    #[error("must be at most 2048 characters")]
    TooLong {
        /// The longer of the two counts.
        length: usize,
    },
}

impl WebUrl {
    /// Accepts absolute `http(s)` URLs with a valid host, at most [`MAX_URL_LENGTH`] long;
    /// `https` only when `require_https`. The checks run in that order.
    pub fn parse(text: &str, require_https: bool) -> Result<Self, WebUrlError> {
        let url = url::Url::parse(text).map_err(|_| WebUrlError::NotUrl)?;
        match url.scheme() {
            "https" => {}
            "http" if require_https => return Err(WebUrlError::HttpsRequired),
            "http" => {}
            _ => return Err(WebUrlError::NotHttp),
        }
        let origin = web_origin(&url).ok_or(WebUrlError::InvalidHost)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(WebUrlError::Credentials);
        }
        if url.port() == Some(0) {
            return Err(WebUrlError::PortZero);
        }
        let length = text.encode_utf16().count().max(url.as_str().len());
        if length > MAX_URL_LENGTH {
            return Err(WebUrlError::TooLong { length });
        }
        Ok(Self { url: url.into(), origin })
    }

    /// The URL, as the WHATWG parser serialises it.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// `scheme://host[:port]`, built from the parsed parts (the port only when not the default).
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// The origin of a stored URL, for a header or a `postMessage` target: `None` unless the URL is
/// `http(s)` with a valid host. Stored URLs are parsed again rather than trusted.
pub fn origin_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok().filter(|u| matches!(u.scheme(), "http" | "https")).and_then(|u| web_origin(&u))
}

fn web_origin(url: &url::Url) -> Option<String> {
    let host = match url.host()? {
        url::Host::Domain(domain) => dns_name(domain).then(|| domain.to_owned())?,
        url::Host::Ipv4(address) => address.to_string(),
        url::Host::Ipv6(address) => format!("[{address}]"),
    };
    let port = url.port().map(|port| format!(":{port}")).unwrap_or_default();
    Some(format!("{}://{host}{port}", url.scheme()))
}

/// Whether a (WHATWG-normalised, so lower-case ASCII) domain is a DNS name: labels of letters,
/// digits and hyphens (not first or last), 1 to 63 long, 253 in all. Anything else could smuggle
/// syntax into a Content-Security-Policy or other header, or names no host.
fn dns_name(domain: &str) -> bool {
    domain.len() <= 253
        && domain.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_urls_carry_no_credentials_no_port_zero_and_real_labels() {
        assert_eq!(WebUrl::parse("https://user:pass@shop.example/ok", false), Err(WebUrlError::Credentials));
        assert_eq!(WebUrl::parse("https://user@shop.example/ok", false), Err(WebUrlError::Credentials));
        assert_eq!(WebUrl::parse("https://shop.example:0/ok", false), Err(WebUrlError::PortZero));
        assert_eq!(WebUrl::parse("https://-x.example/", false), Err(WebUrlError::InvalidHost));
        assert_eq!(WebUrl::parse("https://x-.example/", false), Err(WebUrlError::InvalidHost));
        assert!(WebUrl::parse("https://x-y.example:8443/", false).is_ok());
        // 2,048 characters as typed, but nine times that once encoded: what a redirect carries.
        let wide = format!("https://x.example/{}", "一".repeat(2030));
        assert_eq!(WebUrl::parse(&wide, false), Err(WebUrlError::TooLong { length: 18 + 9 * 2030 }));
    }

    #[test]
    fn return_urls_are_absolute_http_with_a_host() {
        assert!(WebUrl::parse("http://shop.example/x", false).is_ok());
        assert_eq!(WebUrl::parse("http://shop.example/x", true), Err(WebUrlError::HttpsRequired));
        assert_eq!(WebUrl::parse("https:///nohost", false).map(|u| u.origin().to_owned()), Ok("https://nohost".into()));
        assert_eq!(WebUrl::parse("javascript:alert(1)", false), Err(WebUrlError::NotHttp));
        assert_eq!(WebUrl::parse("https://a b.example", false), Err(WebUrlError::NotUrl));
        assert_eq!(WebUrl::parse("abc", false), Err(WebUrlError::NotUrl));
    }

    #[test]
    fn return_urls_are_kept_as_the_parser_writes_them() {
        let url = WebUrl::parse("HTTPS://Shop.example/ok/{ORDER_ID}?q=ä\0x", false).map(|u| u.as_str().to_owned());
        assert_eq!(url, Ok("https://shop.example/ok/%7BORDER_ID%7D?q=%C3%A4%00x".into()));
        let long = format!("https://shop.example/{}", "a".repeat(MAX_URL_LENGTH));
        assert_eq!(WebUrl::parse(&long, false), Err(WebUrlError::TooLong { length: MAX_URL_LENGTH + 21 }));
        let longest = format!("https://shop.example/{}", "a".repeat(MAX_URL_LENGTH - 21));
        assert!(WebUrl::parse(&longest, false).is_ok());
        // Short in UTF-16 units, but each emoji is twelve characters once encoded.
        let emoji = format!("https://shop.example/{}", "😀".repeat((MAX_URL_LENGTH - 21) / 2));
        assert_eq!(WebUrl::parse(&emoji, false), Err(WebUrlError::TooLong { length: 21 + 12 * 1013 }));
    }

    #[test]
    fn only_real_hosts_make_an_origin() {
        let origin = |text: &str| WebUrl::parse(text, false).map(|u| u.origin().to_owned());
        assert_eq!(origin("https://x.example;script-src-elem"), Err(WebUrlError::InvalidHost));
        assert_eq!(origin("https://x_y.example/"), Err(WebUrlError::InvalidHost));
        assert_eq!(origin("https://Shop.EXAMPLE:443/ok"), Ok("https://shop.example".into()));
        assert_eq!(origin("http://shop.example:8080/ok"), Ok("http://shop.example:8080".into()));
        assert_eq!(origin("https://bücher.example/"), Ok("https://xn--bcher-kva.example".into()));
        assert_eq!(origin("http://127.0.0.1:4000/"), Ok("http://127.0.0.1:4000".into()));
        assert_eq!(origin("http://[::1]/"), Ok("http://[::1]".into()));
        assert_eq!(origin_of("https://x.example;frame-ancestors *"), None);
        assert_eq!(origin_of("ftp://files.example/"), None);
    }
}
