//! Checkout claims: compact JWS tokens signed with Ed25519 by the admission side.
//!
//! Verification trusts only the configured keys, picked by the header's `kid`; the algorithm is
//! fixed to `EdDSA` (never `none`, never an HMAC, never a key carried in the token). A verified
//! claim is the only source of what is sold and at what price.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::ids::MerchantId;
use crate::money::{self, Currency};
use crate::secret::{random_bytes, Secret};

/// The audience every checkout claim must name.
pub const AUDIENCE: &str = "checkout";
/// Clock skew tolerated between the admission side and this service.
pub const LEEWAY_SECONDS: i64 = 30;
/// Most items one claim may carry.
pub const MAX_ITEMS: usize = 100;
/// The longest lifetime (`exp` − `iat`) a claim may have unless configured otherwise: an hour.
pub const DEFAULT_MAX_LIFETIME_SECONDS: i64 = 3600;
const MAX_TEXT: usize = 255;
const MAX_NAME: usize = 500;

/// Why a claim was refused. The `Display` text is what the merchant reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Not a compact JWS with a JSON header and payload.
    #[error("The checkout claim is malformed: {0}")]
    Malformed(String),
    /// The header names an algorithm other than EdDSA.
    #[error("The checkout claim uses algorithm {0:?}; only \"EdDSA\" is accepted")]
    UnsupportedAlgorithm(String),
    /// The header has no `kid`.
    #[error("The checkout claim's header has no \"kid\"")]
    MissingKeyId,
    /// The `kid` is not one of the trusted keys.
    #[error("The checkout claim was signed with key {0:?}, which is not trusted")]
    UnknownKey(String),
    /// The signature does not verify with the named key.
    #[error("The checkout claim's signature is invalid")]
    BadSignature,
    /// The payload is not a checkout claim.
    #[error("The checkout claim's payload is invalid: {0}")]
    InvalidPayload(String),
    /// `aud` does not include `checkout`.
    #[error("The checkout claim's audience is not \"checkout\"")]
    WrongAudience,
    /// `exp` has passed.
    #[error("The checkout claim expired at {0}")]
    Expired(String),
    /// `nbf` (or `iat`) is still in the future.
    #[error("The checkout claim is not valid before {0}")]
    NotYetValid(String),
    /// `mid` is not the authenticated merchant.
    #[error("The checkout claim was issued for another merchant")]
    WrongMerchant,
    /// `items` or `currency` are not sane.
    #[error("The checkout claim's items are invalid: {0}")]
    InvalidItems(String),
    /// A string of the claim holds a C0 control character (U+0000–U+001F); names the field.
    #[error("The checkout claim's {0:?} holds a control character (U+0000 to U+001F)")]
    ControlCharacter(String),
    /// `exp` − `iat` is longer than the service accepts.
    #[error("The checkout claim is valid for {lifetime} seconds; at most {max} seconds are accepted")]
    LifetimeTooLong {
        /// `exp` − `iat`, in seconds.
        lifetime: i64,
        /// The configured maximum, in seconds.
        max: i64,
    },
}

impl ClaimError {
    /// A stable machine-readable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ClaimError::Malformed(_) => "claim_malformed",
            ClaimError::UnsupportedAlgorithm(_) => "claim_unsupported_algorithm",
            ClaimError::MissingKeyId => "claim_missing_kid",
            ClaimError::UnknownKey(_) => "claim_unknown_key",
            ClaimError::BadSignature => "claim_bad_signature",
            ClaimError::InvalidPayload(_) => "claim_invalid_payload",
            ClaimError::WrongAudience => "claim_wrong_audience",
            ClaimError::Expired(_) => "claim_expired",
            ClaimError::NotYetValid(_) => "claim_not_yet_valid",
            ClaimError::WrongMerchant => "claim_wrong_merchant",
            ClaimError::InvalidItems(_) => "claim_invalid_items",
            ClaimError::ControlCharacter(_) => "claim_control_character",
            ClaimError::LifetimeTooLong { .. } => "claim_lifetime_too_long",
        }
    }
}

/// `aud` may be one string or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "checkout"`
    One(String),
    /// `"aud": ["checkout", …]`
    Many(Vec<String>),
}

impl Audience {
    fn includes(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(all) => all.iter().any(|a| a == wanted),
        }
    }
}

/// One item of a claim, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimItem {
    /// The merchant's stock-keeping unit.
    pub sku: String,
    /// Shown to the consumer.
    pub name: String,
    /// At least 1.
    pub quantity: i64,
    /// Minor units of the claim's currency, 0 or more.
    pub unit_amount: i64,
}

/// The payload of a checkout claim, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimPayload {
    /// Who issued it (the admission side).
    pub iss: String,
    /// Must include `checkout`.
    pub aud: Audience,
    /// The consumer.
    pub sub: String,
    /// The claim's id: one open order per claim.
    pub jti: String,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Expires at (unix seconds).
    pub exp: i64,
    /// Not valid before (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The merchant that may redeem it.
    pub mid: String,
    /// ISO 4217, lower-case.
    pub currency: String,
    /// What may be bought.
    pub items: Vec<ClaimItem>,
    /// The drop experience the consumer was admitted through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experience_id: Option<String>,
    /// The queue, draw or auction that admitted the consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution_id: Option<String>,
}

impl ClaimPayload {
    /// A claim that `merchant` may redeem, issued at `now` and valid for `ttl_seconds`, with a
    /// random `jti`, in US dollars. Issuing claims is the admission side's job; this serves the
    /// CLI, development mode and tests, which change fields with struct update syntax.
    pub fn new(merchant: MerchantId, items: Vec<ClaimItem>, now: DateTime<Utc>, ttl_seconds: i64) -> Self {
        let now = now.timestamp();
        Self {
            iss: "checkout-server".into(),
            aud: Audience::One(AUDIENCE.into()),
            sub: "cus_unknown".into(),
            jti: format!("clm_{}", &crate::secret::random_token().expose()[..20]),
            iat: now,
            exp: now + ttl_seconds,
            nbf: None,
            mid: merchant.to_string(),
            currency: "usd".into(),
            items,
            experience_id: None,
            distribution_id: None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crit: Option<serde_json::Value>,
}

/// A claim whose signature, audience, time window, merchant and items all checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaim {
    /// `jti`
    pub claim_id: String,
    /// `iss`
    pub issuer: String,
    /// `sub`
    pub consumer_id: String,
    /// `mid`, equal to the caller.
    pub merchant_id: MerchantId,
    /// The order's currency.
    pub currency: Currency,
    /// The order's lines, priced by the claim.
    pub items: Vec<LineItem>,
    /// Sum of the lines.
    pub amount_total: i64,
    /// `exp`: no checkout session outlives it.
    pub expires_at: DateTime<Utc>,
    /// `experienceId`
    pub experience_id: Option<String>,
    /// `distributionId`
    pub distribution_id: Option<String>,
}

/// The verifying keys trusted at once (several during a rotation), by `kid`, and the longest
/// lifetime a claim may have.
#[derive(Debug, Clone)]
pub struct ClaimKeys {
    keys: BTreeMap<String, VerifyingKey>,
    max_lifetime_seconds: i64,
}

impl Default for ClaimKeys {
    fn default() -> Self {
        Self { keys: BTreeMap::new(), max_lifetime_seconds: DEFAULT_MAX_LIFETIME_SECONDS }
    }
}

/// A `CHECKOUT_CLAIM_KEYS` entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid claim key {entry:?}: {reason}")]
pub struct ClaimKeyError {
    /// The offending `kid:publicKey` entry (public keys only, safe to show).
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl ClaimKeys {
    /// Parses `kid:publicKey[,kid:publicKey…]`, public keys in base64url (32 bytes).
    pub fn parse(list: &str) -> Result<Self, ClaimKeyError> {
        let mut keys = Self::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let error = |reason| ClaimKeyError { entry: entry.to_owned(), reason };
            let (kid, public) = entry.split_once(':').ok_or_else(|| error("expected kid:publicKey"))?;
            if kid.is_empty() {
                return Err(error("the kid is empty"));
            }
            let key = decode_key(public).ok_or_else(|| error("the public key is not 32 bytes of base64url"))?;
            let key = VerifyingKey::from_bytes(&key).map_err(|_| error("not an Ed25519 public key"))?;
            if keys.keys.insert(kid.to_owned(), key).is_some() {
                return Err(error("the kid is listed twice"));
            }
        }
        Ok(keys)
    }

    /// Refuses claims whose `exp` − `iat` is longer than `seconds`.
    pub fn with_max_lifetime(self, seconds: i64) -> Self {
        Self { max_lifetime_seconds: seconds, ..self }
    }

    /// The longest claim lifetime accepted, in seconds.
    pub fn max_lifetime_seconds(&self) -> i64 {
        self.max_lifetime_seconds
    }

    /// Trusts one more key.
    pub fn insert(&mut self, kid: impl Into<String>, key: VerifyingKey) {
        self.keys.insert(kid.into(), key);
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The trusted key ids.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Verifies `token` for `merchant` at `now`.
    pub fn verify(&self, token: &str, merchant: MerchantId, now: DateTime<Utc>) -> Result<VerifiedClaim, ClaimError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ClaimError::Malformed("expected three dot-separated parts".into()));
        };
        let header: Header = serde_json::from_slice(&decode_part(header_b64, "header")?)
            .map_err(|e| ClaimError::Malformed(format!("the header is not valid JSON ({e})")))?;
        if header.alg != "EdDSA" {
            return Err(ClaimError::UnsupportedAlgorithm(header.alg));
        }
        if header.crit.is_some() {
            return Err(ClaimError::Malformed("critical header extensions are not supported".into()));
        }
        let kid = header.kid.ok_or(ClaimError::MissingKeyId)?;
        let key = self.keys.get(&kid).ok_or(ClaimError::UnknownKey(kid))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .ok_or_else(|| ClaimError::Malformed("the signature is not 64 bytes of base64url".into()))?;
        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        key.verify_strict(signed.as_bytes(), &signature).map_err(|_| ClaimError::BadSignature)?;
        let payload: ClaimPayload = serde_json::from_slice(&decode_part(payload_b64, "payload")?)
            .map_err(|e| ClaimError::InvalidPayload(e.to_string()))?;
        check(payload, merchant, now, self.max_lifetime_seconds)
    }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    URL_SAFE_NO_PAD.decode(text.trim()).ok()?.try_into().ok()
}

fn decode_part(part: &str, what: &str) -> Result<Vec<u8>, ClaimError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| ClaimError::Malformed(format!("the {what} is not base64url")))
}

fn base64_json(value: &impl Serialize) -> String {
    // Serialising plain structs of strings and integers cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

fn timestamp(seconds: i64) -> Result<DateTime<Utc>, ClaimError> {
    Utc.timestamp_opt(seconds, 0)
        .single()
        .ok_or_else(|| ClaimError::InvalidPayload(format!("{seconds} is not a valid timestamp")))
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn check_text(value: &str, field: &str, max: usize) -> Result<(), ClaimError> {
    if value.is_empty() || value.chars().count() > max {
        return Err(ClaimError::InvalidPayload(format!("\"{field}\" must be 1 to {max} characters")));
    }
    Ok(())
}

/// Every string of a claim is stored or shown, and none may hold a C0 control character: NUL
/// cannot be stored in PostgreSQL text, and the others have no place in a name or an id.
fn check_characters(payload: &ClaimPayload) -> Result<(), ClaimError> {
    let mut fields: Vec<(String, &str)> = vec![
        ("iss".into(), &payload.iss),
        ("sub".into(), &payload.sub),
        ("jti".into(), &payload.jti),
        ("mid".into(), &payload.mid),
        ("currency".into(), &payload.currency),
    ];
    fields.extend(payload.experience_id.as_deref().map(|v| ("experienceId".to_owned(), v)));
    fields.extend(payload.distribution_id.as_deref().map(|v| ("distributionId".to_owned(), v)));
    if let Audience::One(aud) = &payload.aud {
        fields.push(("aud".into(), aud));
    }
    for (i, item) in payload.items.iter().enumerate() {
        fields.push((format!("items[{i}].sku"), &item.sku));
        fields.push((format!("items[{i}].name"), &item.name));
    }
    match fields.into_iter().find(|(_, value)| value.chars().any(|c| c < ' ')) {
        Some((field, _)) => Err(ClaimError::ControlCharacter(field)),
        None => Ok(()),
    }
}

fn check(
    payload: ClaimPayload,
    merchant: MerchantId,
    now: DateTime<Utc>,
    max_lifetime: i64,
) -> Result<VerifiedClaim, ClaimError> {
    check_characters(&payload)?;
    if !payload.aud.includes(AUDIENCE) {
        return Err(ClaimError::WrongAudience);
    }
    check_text(&payload.jti, "jti", MAX_TEXT)?;
    check_text(&payload.sub, "sub", MAX_TEXT)?;
    check_text(&payload.iss, "iss", MAX_TEXT)?;
    let expires_at = timestamp(payload.exp)?;
    let issued_at = timestamp(payload.iat)?;
    let now_s = now.timestamp();
    if payload.exp <= now_s - LEEWAY_SECONDS {
        return Err(ClaimError::Expired(rfc3339(expires_at)));
    }
    let not_before = payload.nbf.unwrap_or(payload.iat).max(payload.iat);
    if not_before > now_s + LEEWAY_SECONDS {
        return Err(ClaimError::NotYetValid(rfc3339(timestamp(not_before)?)));
    }
    if expires_at <= issued_at {
        return Err(ClaimError::InvalidPayload("\"exp\" is not after \"iat\"".into()));
    }
    let lifetime = payload.exp.saturating_sub(payload.iat);
    if lifetime > max_lifetime {
        return Err(ClaimError::LifetimeTooLong { lifetime, max: max_lifetime });
    }
    let merchant_id: MerchantId = payload.mid.parse().map_err(|_| ClaimError::WrongMerchant)?;
    if merchant_id != merchant {
        return Err(ClaimError::WrongMerchant);
    }
    let currency = Currency::iso4217(&payload.currency)
        .ok_or_else(|| ClaimError::InvalidItems(format!("{:?} is not an ISO 4217 currency code", payload.currency)))?;
    let items = line_items(payload.items)?;
    let amount_total = money::total(items.iter().map(|i| i.amount))
        .ok_or_else(|| ClaimError::InvalidItems("the total is too large".into()))?;
    if amount_total == 0 {
        // Nothing to pay: a page would "charge" nothing and mark the order paid.
        return Err(ClaimError::InvalidItems("the total is zero; a checkout takes a payment".into()));
    }
    for (field, value) in [("experienceId", &payload.experience_id), ("distributionId", &payload.distribution_id)] {
        if let Some(value) = value {
            check_text(value, field, MAX_TEXT)?;
        }
    }
    Ok(VerifiedClaim {
        claim_id: payload.jti,
        issuer: payload.iss,
        consumer_id: payload.sub,
        merchant_id,
        currency,
        items,
        amount_total,
        expires_at,
        experience_id: payload.experience_id,
        distribution_id: payload.distribution_id,
    })
}

fn line_items(items: Vec<ClaimItem>) -> Result<Vec<LineItem>, ClaimError> {
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(ClaimError::InvalidItems(format!("a claim carries 1 to {MAX_ITEMS} items")));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let bad = |why: &str| ClaimError::InvalidItems(format!("item {i}: {why}"));
            if item.sku.is_empty() || item.sku.chars().count() > MAX_TEXT {
                return Err(bad("\"sku\" must be 1 to 255 characters"));
            }
            if item.name.is_empty() || item.name.chars().count() > MAX_NAME {
                return Err(bad("\"name\" must be 1 to 500 characters"));
            }
            if item.quantity < 1 {
                return Err(bad("\"quantity\" must be at least 1"));
            }
            if item.unit_amount < 0 {
                return Err(bad("\"unitAmount\" must not be negative"));
            }
            let amount =
                money::line_amount(item.quantity, item.unit_amount).ok_or_else(|| bad("the amount is too large"))?;
            Ok(LineItem {
                sku: item.sku,
                name: item.name,
                quantity: item.quantity,
                unit_amount: item.unit_amount,
                amount,
            })
        })
        .collect()
}

/// An Ed25519 key pair for signing claims, as `claim keygen` prints it.
#[derive(Debug)]
pub struct ClaimSigner {
    kid: String,
    key: SigningKey,
}

impl ClaimSigner {
    /// A fresh key pair with a random `kid`.
    pub fn generate() -> Self {
        let kid = format!("ck_{}", crate::secret::sha256_hex(&random_bytes::<16>())[..12].to_owned());
        Self { kid, key: SigningKey::from_bytes(&random_bytes::<32>()) }
    }

    /// From a `kid` and a base64url private key (the 32-byte seed).
    pub fn from_private(kid: impl Into<String>, private_key: &str) -> Option<Self> {
        Some(Self { kid: kid.into(), key: SigningKey::from_bytes(&decode_key(private_key)?) })
    }

    /// The key id placed in each header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key (seed) in base64url.
    pub fn private_key(&self) -> Secret {
        Secret::new(URL_SAFE_NO_PAD.encode(self.key.to_bytes()))
    }

    /// The public key in base64url, as `CHECKOUT_CLAIM_KEYS` takes it.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.verifying_key().to_bytes())
    }

    /// The verifying half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs `payload` as a compact JWS.
    pub fn sign(&self, payload: &ClaimPayload) -> String {
        self.sign_parts(&self.header(), payload)
    }

    fn header(&self) -> Header {
        Header { alg: "EdDSA".into(), kid: Some(self.kid.clone()), typ: Some("JWT".into()), crit: None }
    }

    /// Signs a payload that is already base64url-encoded, whatever it holds: for fuzzing the
    /// checks that run after the signature.
    pub fn sign_raw(&self, payload_b64: &str) -> String {
        self.sign_encoded(&base64_json(&self.header()), payload_b64)
    }

    fn sign_parts(&self, header: &impl Serialize, payload: &impl Serialize) -> String {
        self.sign_encoded(&base64_json(header), &base64_json(payload))
    }

    fn sign_encoded(&self, header_b64: &str, payload_b64: &str) -> String {
        let signing_input = format!("{header_b64}.{payload_b64}");
        let signature = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

/// One line of an order, priced by the claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    /// The merchant's stock-keeping unit.
    pub sku: String,
    /// Shown to the consumer.
    pub name: String,
    /// At least 1.
    pub quantity: i64,
    /// Minor units.
    pub unit_amount: i64,
    /// `quantity × unit_amount`.
    pub amount: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(merchant: MerchantId, now: DateTime<Utc>) -> ClaimPayload {
        let items = vec![ClaimItem { sku: "TEE-1".into(), name: "Tee".into(), quantity: 2, unit_amount: 2500 }];
        ClaimPayload::new(merchant, items, now, 900)
    }

    fn setup() -> (ClaimSigner, ClaimKeys, MerchantId, DateTime<Utc>) {
        let signer = ClaimSigner::generate();
        let mut keys = ClaimKeys::default();
        keys.insert(signer.kid(), signer.verifying_key());
        (signer, keys, MerchantId::new(), Utc::now())
    }

    #[test]
    fn a_well_signed_claim_verifies_with_its_prices() {
        let (signer, keys, merchant, now) = setup();
        let claim = keys.verify(&signer.sign(&payload(merchant, now)), merchant, now);
        let claim = claim.map(|c| (c.amount_total, c.currency.to_string(), c.items.len()));
        assert_eq!(claim, Ok((5000, "usd".into(), 1)));
    }

    #[test]
    fn a_tampered_payload_fails_the_signature() {
        let (signer, keys, merchant, now) = setup();
        let token = signer.sign(&payload(merchant, now));
        let mut cheaper = payload(merchant, now);
        cheaper.items[0].unit_amount = 1;
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cheaper).unwrap_or_default());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(keys.verify(&forged, merchant, now), Err(ClaimError::BadSignature));
    }

    #[test]
    fn unsigned_and_hmac_tokens_are_refused() {
        let (signer, keys, merchant, now) = setup();
        for alg in ["none", "HS256", "RS256"] {
            let header = Header { alg: alg.into(), kid: Some(signer.kid().into()), typ: None, crit: None };
            let token = signer.sign_parts(&header, &payload(merchant, now));
            assert_eq!(keys.verify(&token, merchant, now), Err(ClaimError::UnsupportedAlgorithm(alg.into())));
        }
    }

    #[test]
    fn a_key_that_is_not_trusted_is_refused() {
        let (_, keys, merchant, now) = setup();
        let stranger = ClaimSigner::generate();
        let result = keys.verify(&stranger.sign(&payload(merchant, now)), merchant, now);
        assert_eq!(result, Err(ClaimError::UnknownKey(stranger.kid().into())));
    }

    #[test]
    fn a_known_kid_with_another_key_fails_the_signature() {
        let (signer, keys, merchant, now) = setup();
        let impostor = ClaimSigner::from_private(signer.kid(), ClaimSigner::generate().private_key().expose());
        let token = impostor.map(|i| i.sign(&payload(merchant, now))).unwrap_or_default();
        assert_eq!(keys.verify(&token, merchant, now), Err(ClaimError::BadSignature));
    }

    #[test]
    fn the_time_window_is_enforced_with_a_small_leeway() {
        let (signer, keys, merchant, now) = setup();
        let mut expired = payload(merchant, now);
        expired.iat = now.timestamp() - 1000;
        expired.exp = now.timestamp() - LEEWAY_SECONDS - 1;
        assert!(matches!(keys.verify(&signer.sign(&expired), merchant, now), Err(ClaimError::Expired(_))));

        let mut just_expired = expired.clone();
        just_expired.exp = now.timestamp() - LEEWAY_SECONDS + 5;
        assert!(keys.verify(&signer.sign(&just_expired), merchant, now).is_ok());

        let mut early = payload(merchant, now);
        early.nbf = Some(now.timestamp() + LEEWAY_SECONDS + 10);
        assert!(matches!(keys.verify(&signer.sign(&early), merchant, now), Err(ClaimError::NotYetValid(_))));
    }

    #[test]
    fn audience_merchant_and_items_are_checked() {
        let (signer, keys, merchant, now) = setup();
        let verify = |p: &ClaimPayload| keys.verify(&signer.sign(p), merchant, now).map_err(|e| e.reason());

        let mut p = payload(merchant, now);
        p.aud = Audience::Many(vec!["other".into()]);
        assert_eq!(verify(&p), Err("claim_wrong_audience"));
        p.aud = Audience::Many(vec!["other".into(), AUDIENCE.into()]);
        assert!(verify(&p).is_ok());

        let mut p = payload(merchant, now);
        p.mid = MerchantId::new().to_string();
        assert_eq!(verify(&p), Err("claim_wrong_merchant"));

        let mut p = payload(merchant, now);
        p.items.clear();
        assert_eq!(verify(&p), Err("claim_invalid_items"));

        let mut p = payload(merchant, now);
        p.items[0].quantity = 0;
        assert_eq!(verify(&p), Err("claim_invalid_items"));

        let mut p = payload(merchant, now);
        p.items[0].unit_amount = i64::MAX;
        assert_eq!(verify(&p), Err("claim_invalid_items"));

        for currency in ["dollars", "xyz", "xau"] {
            let mut p = payload(merchant, now);
            p.currency = currency.into();
            assert_eq!(verify(&p), Err("claim_invalid_items"), "{currency}");
        }
    }

    #[test]
    fn a_claim_lives_at_most_the_configured_lifetime() {
        let (signer, keys, merchant, now) = setup();
        let mut p = payload(merchant, now);
        p.exp = p.iat + DEFAULT_MAX_LIFETIME_SECONDS;
        assert!(keys.verify(&signer.sign(&p), merchant, now).is_ok());
        p.exp = p.iat + DEFAULT_MAX_LIFETIME_SECONDS + 1;
        assert_eq!(
            keys.verify(&signer.sign(&p), merchant, now).map_err(|e| e.reason()),
            Err("claim_lifetime_too_long")
        );
        p.exp = 253_402_300_799; // the last second of 9999
        assert!(matches!(keys.verify(&signer.sign(&p), merchant, now), Err(ClaimError::LifetimeTooLong { .. })));
        let shorter = keys.with_max_lifetime(60);
        let p = payload(merchant, now);
        assert_eq!(
            shorter.verify(&signer.sign(&p), merchant, now),
            Err(ClaimError::LifetimeTooLong { lifetime: 900, max: 60 })
        );
    }

    #[test]
    fn control_characters_in_any_claim_string_are_refused() {
        let (signer, keys, merchant, now) = setup();
        let verify = |p: &ClaimPayload| keys.verify(&signer.sign(p), merchant, now);
        type Change = fn(&mut ClaimPayload);
        let changes: [(&str, Change); 8] = [
            ("iss", |p| p.iss.push('\0')),
            ("sub", |p| p.sub = "cus\u{1}".into()),
            ("jti", |p| p.jti.push('\n')),
            ("experienceId", |p| p.experience_id = Some("exp\0".into())),
            ("distributionId", |p| p.distribution_id = Some("\u{1f}".into())),
            ("items[0].sku", |p| p.items[0].sku.push('\t')),
            ("items[0].name", |p| p.items[0].name = "Tee\0".into()),
            ("currency", |p| p.currency = "us\0".into()),
        ];
        for (field, change) in changes {
            let mut p = payload(merchant, now);
            change(&mut p);
            assert_eq!(verify(&p), Err(ClaimError::ControlCharacter(field.into())), "{field}");
        }
        let mut p = payload(merchant, now);
        p.items[0].name = "Tee \u{202e}\u{7f}\u{85} 😀".into();
        assert!(verify(&p).is_ok(), "only C0 controls are refused");
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let (_, keys, merchant, now) = setup();
        for token in ["", "a.b", "a.b.c.d", "!!!.???.###", "e30.e30.e30"] {
            assert!(keys.verify(token, merchant, now).is_err(), "{token}");
        }
    }

    #[test]
    fn claim_keys_parse_from_configuration() {
        let a = ClaimSigner::generate();
        let b = ClaimSigner::generate();
        let list = format!("{}:{}, {}:{}", a.kid(), a.public_key(), b.kid(), b.public_key());
        let keys = ClaimKeys::parse(&list).map(|k| k.kids().count());
        assert_eq!(keys, Ok(2));
        assert!(ClaimKeys::parse("nokey").is_err());
        assert!(ClaimKeys::parse("k:short").is_err());
        let twice = format!("k:{},k:{}", a.public_key(), b.public_key());
        assert!(ClaimKeys::parse(&twice).is_err());
    }
}
