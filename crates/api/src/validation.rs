//! Request validation with issues in Valibot's format, the format existing merchant clients parse.
//!
//! The body is checked field by field in the order of the contract's `required` list, every
//! problem reported at once; a valid body comes out as a typed `CheckoutRequest`. The issues are
//! the ones Valibot 1.x gives for the seed's schema (proven against Valibot itself by the
//! differential test in `crates/server/tests/api/valibot.rs`), with the deliberate exceptions of
//! `docs/input-rules.md`: `expected` is always a string, return URLs must be http(s) with a valid
//! host and at most 2,048 long, and an idempotency key holds no control characters or lone
//! surrogates.

use domain::checkout::CheckoutRequest;

use domain::claim::ClaimError;
use domain::idempotency::{IdempotencyKey, MAX_KEY_LEN};
use domain::order::Mode;
use domain::web_url::{WebUrl, WebUrlError, MAX_URL_LENGTH};
use serde::Serialize;

use crate::json::{number_to_string, JsString, Json};

/// Valibot's `expected` of the `mode` picklist (its `_joinExpects` wraps a choice in parentheses).
const MODE_EXPECTED: &str = "(\"hosted\" | \"embedded\")";

/// The rule an idempotency key's characters follow, as the Valibot `regex` action that states it:
/// no C0 control character (U+0000–U+001F) and no lone surrogate.
pub const KEY_CHARACTERS: &str = r"/^[^\u0000-\u001F\uD800-\uDFFF]*$/u";

/// One entry of an issue's `path`.
#[derive(Debug, Clone, Serialize)]
pub struct PathItem {
    #[serde(rename = "type")]
    kind: &'static str,
    origin: &'static str,
    input: Json,
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Json>,
}

/// A Valibot issue: `kind` is `schema` (shape and type) or `validation` (value rules).
#[derive(Debug, Clone, Serialize)]
pub struct Issue {
    kind: &'static str,
    #[serde(rename = "type")]
    issue_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<Json>,
    expected: String,
    received: JsString,
    message: JsString,
    path: Vec<PathItem>,
    /// Why a claim was refused (`claim_expired`, …): an addition to Valibot's format.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// Valibot's `_stringify`: how a value is shown in `received`.
fn stringify(value: Option<&Json>) -> JsString {
    match value {
        None => "undefined".into(),
        Some(Json::Null) => "null".into(),
        Some(Json::String(s)) => {
            let mut quoted = JsString::from("\"");
            quoted.push_js(s);
            quoted.push_str("\"");
            quoted
        }
        Some(Json::Bool(b)) => JsString::from_text(&b.to_string()),
        Some(Json::Number(n)) => JsString::from_text(&number_to_string(*n)),
        Some(Json::Array(_)) => "Array".into(),
        Some(Json::Object(_)) => "Object".into(),
    }
}

/// Valibot's message: `Invalid <label>: Expected <expected> but received <received>`, or without
/// the expectation when the rule has none (`url`).
fn message(label: &str, expected: Option<&str>, received: &JsString) -> JsString {
    let mut text = JsString::from_text(&match expected {
        Some(expected) => format!("Invalid {label}: Expected {expected} but received "),
        None => format!("Invalid {label}: Received "),
    });
    text.push_js(received);
    text
}

impl Issue {
    fn at(body: &Json, key: &str, origin: &'static str) -> Vec<PathItem> {
        vec![PathItem {
            kind: "object",
            origin,
            input: body.clone(),
            key: key.to_owned(),
            value: body.property(key).cloned(),
        }]
    }

    fn schema(issue_type: &'static str, expected: String, input: Option<&Json>, path: Vec<PathItem>) -> Self {
        let received = stringify(input);
        let label = if path.first().is_some_and(|p| p.origin == "key") { "key" } else { "type" };
        Self {
            kind: "schema",
            issue_type,
            input: input.cloned(),
            message: message(label, Some(&expected), &received),
            expected,
            received,
            path,
            reason: None,
        }
    }

    fn validation(
        issue_type: &'static str,
        expected: String,
        received: JsString,
        message: JsString,
        input: &Json,
        path: Vec<PathItem>,
    ) -> Self {
        Self {
            kind: "validation",
            issue_type,
            input: Some(input.clone()),
            expected,
            received,
            message,
            path,
            reason: None,
        }
    }

    /// The body is not JSON at all.
    pub fn malformed_json(error: &str) -> Self {
        Self::unparsable("malformed JSON", format!("Invalid JSON: {error}"))
    }

    /// The body could not be read (a broken upload).
    pub fn unreadable_body(error: &str) -> Self {
        Self::unparsable("unreadable body", format!("Invalid body: {error}"))
    }

    fn unparsable(received: &str, message: String) -> Self {
        Self {
            kind: "schema",
            issue_type: "json",
            input: None,
            expected: "JSON".into(),
            received: received.into(),
            message: JsString::from_text(&message),
            path: Vec::new(),
            reason: None,
        }
    }

    /// A claim that did not verify, at path `checkoutClaim`.
    pub fn invalid_claim(body: &Json, error: &ClaimError) -> Self {
        let claim = body.property("checkoutClaim").cloned().unwrap_or_default();
        let path = if body.is_object_like() { Self::at(body, "checkoutClaim", "value") } else { Vec::new() };
        Self {
            reason: Some(error.reason()),
            ..Self::validation(
                "checkout_claim",
                "a valid checkout claim".into(),
                stringify(Some(&claim)),
                JsString::from_text(&error.to_string()),
                &claim,
                path,
            )
        }
    }
}

/// Runs `check` on the string at `key`, or reports a missing key or a non-string value.
fn string_field<'a, T>(
    body: &'a Json,
    key: &str,
    issues: &mut Vec<Issue>,
    check: impl FnOnce(&'a JsString, &'a Json, Vec<PathItem>) -> Result<T, Vec<Issue>>,
) -> Option<T> {
    let Some(value) = body.property(key) else {
        issues.push(Issue::schema("object", format!("\"{key}\""), None, Issue::at(body, key, "key")));
        return None;
    };
    let Some(text) = value.as_js_string() else {
        issues.push(Issue::schema("string", "string".into(), Some(value), Issue::at(body, key, "value")));
        return None;
    };
    check(text, value, Issue::at(body, key, "value")).map_err(|found| issues.extend(found)).ok()
}

/// Valibot's `min_length` / `max_length`, counting UTF-16 code units as JavaScript does.
fn length_issues(
    text: &JsString,
    value: &Json,
    path: &[PathItem],
    min: Option<usize>,
    max: Option<usize>,
) -> Vec<Issue> {
    let len = text.len();
    let received = JsString::from_text(&len.to_string());
    let mut issues = Vec::new();
    if let Some(min) = min.filter(|&min| len < min) {
        let expected = format!(">={min}");
        let message = message("length", Some(&expected), &received);
        issues.push(Issue::validation("min_length", expected, received.clone(), message, value, path.to_vec()));
    }
    if let Some(max) = max.filter(|&max| len > max) {
        let expected = format!("<={max}");
        let message = message("length", Some(&expected), &received);
        issues.push(Issue::validation("max_length", expected, received, message, value, path.to_vec()));
    }
    issues
}

/// Valibot's `url` (what `new URL` parses), then the tightening to http(s) with a valid host, then
/// `max_length(2048)`.
fn url_field(text: &JsString, value: &Json, path: Vec<PathItem>, require_https: bool) -> Result<WebUrl, Vec<Issue>> {
    let expected = if require_https { "https URL" } else { "http(s) URL" };
    let received = stringify(Some(value));
    // `new URL` reads its argument as a USVString: lone surrogates become U+FFFD.
    let parsed = WebUrl::parse(&text.to_string_lossy(), require_https);
    let mut issues = Vec::new();
    let wording = match parsed {
        Err(WebUrlError::NotUrl) => Some(None),
        Err(
            WebUrlError::NotHttp
            | WebUrlError::HttpsRequired
            | WebUrlError::InvalidHost
            | WebUrlError::Credentials
            | WebUrlError::PortZero,
        ) => Some(Some(expected)),
        Ok(_) | Err(WebUrlError::TooLong { .. }) => None,
    };
    if let Some(wording) = wording {
        let message = message("URL", wording, &received);
        issues.push(Issue::validation("url", expected.into(), received.clone(), message, value, path.clone()));
    }
    issues.extend(length_issues(text, value, &path, None, Some(MAX_URL_LENGTH)));
    if let (true, Err(WebUrlError::TooLong { length: encoded })) = (issues.is_empty(), &parsed) {
        // Short enough as typed, too long once encoded (the form redirects carry): the length
        // rule, counted on the encoded URL.
        let expected = format!("<={MAX_URL_LENGTH}");
        let received = JsString::from_text(&encoded.to_string());
        let message = message("length", Some(&expected), &received);
        issues.push(Issue::validation("max_length", expected, received, message, value, path.clone()));
    }
    match parsed {
        Ok(url) if issues.is_empty() => Ok(url),
        _ => Err(issues),
    }
}

/// `min_length(1)`, `max_length(255)`, then [`KEY_CHARACTERS`].
fn key_field(text: &JsString, value: &Json, path: Vec<PathItem>) -> Result<IdempotencyKey, Vec<Issue>> {
    let mut issues = length_issues(text, value, &path, Some(1), Some(MAX_KEY_LEN));
    let key = text.to_text().filter(|key| !key.chars().any(|c| c < ' '));
    if key.is_none() {
        let received = stringify(Some(value));
        let message = message("format", Some(KEY_CHARACTERS), &received);
        issues.push(Issue::validation("regex", KEY_CHARACTERS.into(), received, message, value, path));
    }
    match key.map(|key| IdempotencyKey::parse(&key)) {
        Some(Ok(key)) if issues.is_empty() => Ok(key),
        _ => Err(issues),
    }
}

/// Parses a `POST /checkout` body (`None` when empty), or lists everything wrong with it.
pub fn checkout_request(body: Option<&Json>, require_https: bool) -> Result<CheckoutRequest, Vec<Issue>> {
    let Some(object) = body.filter(|body| body.is_object_like()) else {
        return Err(vec![Issue::schema("object", "Object".into(), body, Vec::new())]);
    };
    let mut issues = Vec::new();
    let claim = string_field(object, "checkoutClaim", &mut issues, |text, _, _| Ok(text.to_string_lossy()));
    let mode = match object.property("mode") {
        None => {
            issues.push(Issue::schema("object", "\"mode\"".into(), None, Issue::at(object, "mode", "key")));
            None
        }
        Some(value) => match value.as_js_string().and_then(JsString::to_text).as_deref().and_then(Mode::from_stored) {
            Some(mode) => Some(mode),
            None => {
                issues.push(Issue::schema(
                    "picklist",
                    MODE_EXPECTED.into(),
                    Some(value),
                    Issue::at(object, "mode", "value"),
                ));
                None
            }
        },
    };
    let success_url = string_field(object, "successUrl", &mut issues, |text, value, path| {
        url_field(text, value, path, require_https)
    });
    let cancel_url =
        string_field(object, "cancelUrl", &mut issues, |text, value, path| url_field(text, value, path, require_https));
    let idempotency_key = string_field(object, "idempotencyKey", &mut issues, key_field);
    match (claim, mode, success_url, cancel_url, idempotency_key) {
        (Some(checkout_claim), Some(mode), Some(success_url), Some(cancel_url), Some(idempotency_key))
            if issues.is_empty() =>
        {
            Ok(CheckoutRequest { checkout_claim, mode, success_url, cancel_url, idempotency_key })
        }
        _ => Err(issues),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn issues(body: Value) -> Value {
        match checkout_request(Some(&Json::from(&body)), false) {
            Ok(_) => Value::Null,
            Err(found) => serde_json::to_value(found).unwrap_or_default(),
        }
    }

    fn valid() -> Value {
        json!({
            "checkoutClaim": "a.b.c",
            "mode": "hosted",
            "successUrl": "https://shop.example/ok",
            "cancelUrl": "https://shop.example/cancel",
            "idempotencyKey": "k1",
        })
    }

    #[test]
    fn a_valid_body_parses() {
        let request = checkout_request(Some(&Json::from(&valid())), true).ok();
        assert_eq!(
            request.map(|r| (r.mode, r.idempotency_key)),
            Some((Mode::Hosted, IdempotencyKey::parse("k1").unwrap_or_else(|_| unreachable!())))
        );
    }

    #[test]
    fn a_missing_key_is_a_schema_issue_at_that_key() {
        let mut body = valid();
        body.as_object_mut().map(|o| o.remove("mode"));
        let found = issues(body.clone());
        assert_eq!(found.as_array().map(Vec::len), Some(1));
        let issue = &found[0];
        assert_eq!(issue["kind"], "schema");
        assert_eq!(issue["type"], "object");
        assert_eq!(issue["expected"], "\"mode\"");
        assert_eq!(issue["received"], "undefined");
        assert_eq!(issue["message"], "Invalid key: Expected \"mode\" but received undefined");
        assert_eq!(issue["path"][0]["origin"], "key");
        assert_eq!(issue["path"][0]["key"], "mode");
        assert_eq!(issue["path"][0]["input"], body);
        assert!(issue["path"][0].get("value").is_none());
    }

    #[test]
    fn a_number_where_a_string_belongs_is_a_type_issue() {
        let mut body = valid();
        body["checkoutClaim"] = json!(42);
        let found = issues(body);
        assert_eq!(found[0]["type"], "string");
        assert_eq!(found[0]["expected"], "string");
        assert_eq!(found[0]["received"], "42");
        assert_eq!(found[0]["message"], "Invalid type: Expected string but received 42");
        assert_eq!(found[0]["path"][0]["origin"], "value");
        assert_eq!(found[0]["path"][0]["value"], 42);
    }

    #[test]
    fn every_problem_is_reported_in_contract_order() {
        let body = json!({
            "idempotencyKey": "x".repeat(300),
            "cancelUrl": "abc",
            "successUrl": null,
            "mode": "popup",
        });
        let found = issues(body);
        let types: Vec<&str> = found.as_array().into_iter().flatten().filter_map(|i| i["type"].as_str()).collect();
        assert_eq!(types, ["object", "picklist", "string", "url", "max_length"]);
        assert_eq!(found[1]["expected"], "(\"hosted\" | \"embedded\")");
        assert_eq!(found[1]["received"], "\"popup\"");
        assert_eq!(found[1]["message"], "Invalid type: Expected (\"hosted\" | \"embedded\") but received \"popup\"");
        assert_eq!(found[2]["received"], "null");
        assert_eq!(found[3]["kind"], "validation");
        assert_eq!(found[3]["message"], "Invalid URL: Received \"abc\"");
        assert_eq!(found[4]["expected"], "<=255");
        assert_eq!(found[4]["message"], "Invalid length: Expected <=255 but received 300");
    }

    #[test]
    fn an_empty_key_fails_min_length_and_an_empty_claim_is_left_to_verification() {
        let mut body = valid();
        body["checkoutClaim"] = json!("");
        body["idempotencyKey"] = json!("");
        let found = issues(body);
        assert_eq!(found.as_array().map(Vec::len), Some(1));
        assert_eq!(found[0]["type"], "min_length");
        assert_eq!(found[0]["expected"], ">=1");
        assert_eq!(found[0]["message"], "Invalid length: Expected >=1 but received 0");
        assert_eq!(found[0]["path"][0]["key"], "idempotencyKey");
    }

    #[test]
    fn lengths_count_utf16_code_units() {
        let mut body = valid();
        body["idempotencyKey"] = json!("😀".repeat(128));
        let found = issues(body);
        assert_eq!(found[0]["type"], "max_length");
        assert_eq!(found[0]["message"], "Invalid length: Expected <=255 but received 256");
    }

    #[test]
    fn numbers_are_received_as_javascript_prints_them() {
        for (raw, received) in [
            ("-0", "0"),
            ("1e-6", "0.000001"),
            ("9007199254740993", "9007199254740992"),
            ("1e400", "Infinity"),
            ("1e21", "1e+21"),
        ] {
            let body = crate::json::parse(&format!("{{\"checkoutClaim\": {raw}}}")).unwrap_or_default();
            let found = serde_json::to_value(checkout_request(Some(&body), false).err().unwrap_or_default())
                .unwrap_or_default();
            assert_eq!(found[0]["received"], received, "{raw}");
            assert_eq!(found[0]["message"], format!("Invalid type: Expected string but received {received}"));
        }
    }

    #[test]
    fn an_idempotency_key_holds_no_control_characters_or_lone_surrogates() {
        for raw in ["\"a\\u0000b\"", "\"\\u001f\"", "\"\\ud800\""] {
            let text = format!("{{\"checkoutClaim\":\"c\",\"mode\":\"hosted\",\"successUrl\":\"https://a.example\",\"cancelUrl\":\"https://a.example\",\"idempotencyKey\":{raw}}}");
            let body = crate::json::parse(&text).unwrap_or_default();
            let found = checkout_request(Some(&body), false).err().unwrap_or_default();
            let text = serde_json::to_string(&found).unwrap_or_default();
            assert_eq!(found.len(), 1, "{raw}");
            assert!(text.contains(r#""type":"regex""#), "{text}");
            assert!(text.contains(r#""expected":"/^[^\\u0000-\\u001F\\uD800-\\uDFFF]*$/u""#), "{text}");
        }
        let mut body = valid();
        body["idempotencyKey"] = json!("tab\u{7f}ok-😀");
        assert_eq!(issues(body), Value::Null);
    }

    #[test]
    fn a_body_that_is_not_an_object_is_one_issue_with_an_empty_path() {
        for (body, received) in [(json!("s"), "\"s\""), (json!(null), "null"), (json!(1.0), "1")] {
            let found = issues(body);
            assert_eq!(found.as_array().map(Vec::len), Some(1));
            assert_eq!(found[0]["expected"], "Object");
            assert_eq!(found[0]["received"], received);
            assert_eq!(found[0]["path"], json!([]));
        }
    }

    #[test]
    fn an_array_body_is_an_object_without_the_contract_s_keys() {
        let found = issues(json!([1]));
        assert_eq!(found.as_array().map(Vec::len), Some(5));
        assert_eq!(found[0]["message"], "Invalid key: Expected \"checkoutClaim\" but received undefined");
        assert_eq!(found[0]["path"][0]["input"], json!([1]));
    }

    #[test]
    fn an_empty_body_is_an_undefined_object() {
        let found = serde_json::to_value(checkout_request(None, false).err().unwrap_or_default()).unwrap_or_default();
        assert_eq!(found[0]["message"], "Invalid type: Expected Object but received undefined");
    }

    #[test]
    fn urls_must_be_http_and_https_in_production() {
        let mut body = valid();
        body["successUrl"] = json!("ftp://files.example/x");
        body["cancelUrl"] = json!("http://shop.example/cancel");
        assert_eq!(issues(body.clone())[0]["path"][0]["key"], "successUrl");
        assert_eq!(issues(body.clone()).as_array().map(Vec::len), Some(1));
        let strict = checkout_request(Some(&Json::from(&body)), true).err().unwrap_or_default();
        assert_eq!(strict.len(), 2);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut body = valid();
        body["extra"] = json!({"anything": true});
        assert!(checkout_request(Some(&Json::from(&body)), false).is_ok());
    }
}
