//! Secrets and the tokens made from them: merchant API keys and checkout-page tokens.
//!
//! A secret is shown once, at creation, and only its SHA-256 is kept. The secrets here carry 256
//! bits of randomness, so a fast hash is enough: nobody can guess a preimage, and lookups by hash
//! stay a single index probe.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::livemode::Livemode;

/// A string that must never reach a log line: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must show or send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Hex SHA-256 of a secret: what is stored and looked up instead of the secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretHash(String);

impl SecretHash {
    /// Hashes a secret.
    pub fn of(secret: &str) -> Self {
        Self(sha256_hex(secret.as_bytes()))
    }

    /// Wraps a hash read back from storage.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(bytes) {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// `N` bytes from the operating system's CSPRNG.
///
/// # Panics
/// When the operating system has no randomness to give, which leaves nothing safe to do.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Fixed-width base62 of a big-endian number: `width` digits, zero-padded (the number modulo
/// 62^`width`). Long division by 62⁵ at a time, so a 256-bit number takes 9 passes, not 43.
pub(crate) fn base62(bytes: &[u8], width: usize) -> String {
    const CHUNK: u64 = 62 * 62 * 62 * 62 * 62;
    let mut digits = bytes.to_vec();
    let mut out = Vec::with_capacity(width + 4);
    while out.len() < width {
        let mut remainder = 0u64;
        for d in digits.iter_mut() {
            let acc = (remainder << 8) | u64::from(*d);
            // acc < 62⁵·256, so the quotient fits a byte.
            *d = (acc / CHUNK) as u8;
            remainder = acc % CHUNK;
        }
        for _ in 0..5 {
            out.push(BASE62[(remainder % 62) as usize]);
            remainder /= 62;
        }
    }
    out.truncate(width);
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// A random token for URLs: 256 bits as 43 base62 characters.
pub fn random_token() -> Secret {
    Secret(base62(&random_bytes::<32>(), 43))
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

const KEY_RANDOM_LEN: usize = 43;
const KEY_CHECKSUM_LEN: usize = 6;

/// What is wrong with a presented API key before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyFormatError {
    /// Not shaped like any Fanfare key.
    #[error("the API key is malformed")]
    Malformed,
    /// Shaped like a key but the checksum does not match: a typo or a truncated copy.
    #[error("the API key's checksum does not match; check that it was copied whole")]
    BadChecksum,
    /// A publishable key (`pk_…`), which may not call server-side endpoints.
    #[error("a publishable key cannot be used here; use a secret key (sk_test_… or sk_live_…)")]
    Publishable,
}

/// A merchant's secret API key: `sk_test_<43 random base62><6 base62 CRC32>` (or `sk_live_…`).
///
/// The checksum lets the service (and secret scanners) tell a Fanfare key from noise without a
/// database lookup.
#[derive(Debug, Clone)]
pub struct ApiKeySecret {
    secret: Secret,
    livemode: Livemode,
}

impl ApiKeySecret {
    /// A fresh key.
    pub fn generate(livemode: Livemode) -> Self {
        let head = format!("{}{}", prefix(livemode), base62(&random_bytes::<32>(), KEY_RANDOM_LEN));
        let checksum = base62(&crc32(head.as_bytes()).to_be_bytes(), KEY_CHECKSUM_LEN);
        Self { secret: Secret(format!("{head}{checksum}")), livemode }
    }

    /// Checks a presented key's shape and checksum.
    pub fn parse(text: &str) -> Result<Self, ApiKeyFormatError> {
        let livemode = if text.starts_with("sk_test_") {
            Livemode::Test
        } else if text.starts_with("sk_live_") {
            Livemode::Live
        } else if text.starts_with("pk_test_") || text.starts_with("pk_live_") {
            return Err(ApiKeyFormatError::Publishable);
        } else {
            return Err(ApiKeyFormatError::Malformed);
        };
        let body = &text[prefix(livemode).len()..];
        if body.len() != KEY_RANDOM_LEN + KEY_CHECKSUM_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ApiKeyFormatError::Malformed);
        }
        let (head, checksum) = text.split_at(text.len() - KEY_CHECKSUM_LEN);
        if base62(&crc32(head.as_bytes()).to_be_bytes(), KEY_CHECKSUM_LEN) != checksum {
            return Err(ApiKeyFormatError::BadChecksum);
        }
        Ok(Self { secret: Secret(text.to_owned()), livemode })
    }

    /// Test or live, as the prefix says.
    pub fn livemode(&self) -> Livemode {
        self.livemode
    }

    /// The stored form.
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(self.secret.expose())
    }

    /// The last four characters, for recognising a key in listings.
    pub fn hint(&self) -> String {
        let s = self.secret.expose();
        s[s.len() - 4..].to_owned()
    }

    /// The key itself: shown once, at creation.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }
}

fn prefix(livemode: Livemode) -> &'static str {
    match livemode {
        Livemode::Test => "sk_test_",
        Livemode::Live => "sk_live_",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digit-at-a-time conversion `base62` replaced: the same numbers, the same text.
    fn base62_by_digit(bytes: &[u8], width: usize) -> String {
        let mut digits = bytes.to_vec();
        let mut out = Vec::with_capacity(width);
        for _ in 0..width {
            let mut remainder = 0u32;
            for d in digits.iter_mut() {
                let acc = (remainder << 8) | u32::from(*d);
                *d = (acc / 62) as u8;
                remainder = acc % 62;
            }
            out.push(BASE62[remainder as usize]);
        }
        out.reverse();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn base62_writes_what_it_always_wrote() {
        for width in [1, 5, 6, 7, 11, 43, 44] {
            for bytes in [[0u8; 32], [255u8; 32], random_bytes::<32>(), random_bytes::<32>()] {
                assert_eq!(base62(&bytes, width), base62_by_digit(&bytes, width), "{width} {bytes:?}");
            }
            let small = random_bytes::<4>();
            assert_eq!(base62(&small, width), base62_by_digit(&small, width));
        }
    }

    #[test]
    fn sha256_hex_is_lower_case_hex() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn a_generated_key_parses_back_with_its_mode() {
        for mode in [Livemode::Test, Livemode::Live] {
            let key = ApiKeySecret::generate(mode);
            let parsed = ApiKeySecret::parse(key.secret().expose()).map(|k| k.livemode());
            assert_eq!(parsed, Ok(mode));
            assert_eq!(key.secret().expose().len(), 8 + KEY_RANDOM_LEN + KEY_CHECKSUM_LEN);
        }
    }

    #[test]
    fn a_typo_in_a_key_is_caught_by_the_checksum() {
        let key = ApiKeySecret::generate(Livemode::Test);
        let text = key.secret().expose();
        let mut chars: Vec<char> = text.chars().collect();
        chars[12] = if chars[12] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(ApiKeySecret::parse(&typo).err(), Some(ApiKeyFormatError::BadChecksum));
    }

    #[test]
    fn keys_of_other_shapes_are_refused() {
        assert_eq!(ApiKeySecret::parse("").err(), Some(ApiKeyFormatError::Malformed));
        assert_eq!(ApiKeySecret::parse("sk_test_short").err(), Some(ApiKeyFormatError::Malformed));
        assert_eq!(ApiKeySecret::parse("pk_test_anything").err(), Some(ApiKeyFormatError::Publishable));
        let key = ApiKeySecret::generate(Livemode::Test);
        let swapped = key.secret().expose().replacen("sk_test_", "sk_live_", 1);
        assert_eq!(ApiKeySecret::parse(&swapped).err(), Some(ApiKeyFormatError::BadChecksum));
    }

    #[test]
    fn secrets_do_not_print() {
        let key = ApiKeySecret::generate(Livemode::Test);
        let printed = format!("{key:?}");
        assert!(!printed.contains(key.secret().expose()));
        assert!(printed.contains("[redacted]"));
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn tokens_are_distinct_and_url_safe() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
