//! Request validation with issues in Valibot's format, the format existing merchant clients parse.
//!
//! The body is checked field by field in the order of the contract's `required` list, every
//! problem reported at once; a valid body comes out as a typed `CheckoutRequest`.

use domain::checkout::{CheckoutRequest, ReturnUrl, ReturnUrlError};
use domain::claim::ClaimError;
use domain::idempotency::{IdempotencyKey, MAX_KEY_LEN};
use domain::order::Mode;
use serde::Serialize;
use serde_json::{Map, Value};
use validator::{ValidateLength, ValidateUrl};

/// One entry of an issue's `path`.
#[derive(Debug, Clone, Serialize)]
pub struct PathItem {
    #[serde(rename = "type")]
    kind: &'static str,
    origin: &'static str,
    input: Value,
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
}

/// A Valibot issue: `kind` is `schema` (shape and type) or `validation` (value rules).
#[derive(Debug, Clone, Serialize)]
pub struct Issue {
    kind: &'static str,
    #[serde(rename = "type")]
    issue_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<Value>,
    expected: String,
    received: String,
    message: String,
    path: Vec<PathItem>,
    /// Why a claim was refused (`claim_expired`, …): an addition to Valibot's format.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// Valibot's `_stringify`: how a value is shown in `received`.
fn stringify(value: Option<&Value>) -> String {
    match value {
        None => "undefined".into(),
        Some(Value::Null) => "null".into(),
        Some(Value::String(s)) => format!("\"{s}\""),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => match n.as_f64() {
            // JavaScript prints integral floats without a fraction.
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        Some(Value::Array(_)) => "Array".into(),
        Some(Value::Object(_)) => "Object".into(),
    }
}

impl Issue {
    fn at(body: &Map<String, Value>, key: &str, origin: &'static str) -> Vec<PathItem> {
        vec![PathItem {
            kind: "object",
            origin,
            input: Value::Object(body.clone()),
            key: key.to_owned(),
            value: body.get(key).cloned(),
        }]
    }

    fn schema(issue_type: &'static str, expected: String, input: Option<&Value>, path: Vec<PathItem>) -> Self {
        let received = stringify(input);
        let label = if path.first().is_some_and(|p| p.origin == "key") { "key" } else { "type" };
        Self {
            kind: "schema",
            issue_type,
            input: input.cloned(),
            message: format!("Invalid {label}: Expected {expected} but received {received}"),
            expected,
            received,
            path,
            reason: None,
        }
    }

    fn validation(
        issue_type: &'static str,
        expected: String,
        received: String,
        message: String,
        input: &Value,
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
            message,
            path: Vec::new(),
            reason: None,
        }
    }

    /// A claim that did not verify, at path `checkoutClaim`.
    pub fn invalid_claim(body: &Value, error: &ClaimError) -> Self {
        let claim = body.get("checkoutClaim").cloned().unwrap_or(Value::Null);
        let path = body.as_object().map(|b| Self::at(b, "checkoutClaim", "value")).unwrap_or_default();
        Self {
            reason: Some(error.reason()),
            ..Self::validation(
                "checkout_claim",
                "a valid checkout claim".into(),
                stringify(Some(&claim)),
                error.to_string(),
                &claim,
                path,
            )
        }
    }
}

/// Runs `check` on the string at `key`, or reports a missing key or a non-string value.
fn string_field<'a, T>(
    body: &'a Map<String, Value>,
    key: &str,
    issues: &mut Vec<Issue>,
    check: impl FnOnce(&'a str, &Value, Vec<PathItem>) -> Result<T, Vec<Issue>>,
) -> Option<T> {
    let Some(value) = body.get(key) else {
        issues.push(Issue::schema("object", format!("\"{key}\""), None, Issue::at(body, key, "key")));
        return None;
    };
    let Some(text) = value.as_str() else {
        issues.push(Issue::schema("string", "string".into(), Some(value), Issue::at(body, key, "value")));
        return None;
    };
    check(text, value, Issue::at(body, key, "value")).map_err(|found| issues.extend(found)).ok()
}

fn length_issues(text: &str, value: &Value, path: &[PathItem], max: Option<usize>) -> Vec<Issue> {
    let len = text.chars().count();
    let mut issues = Vec::new();
    if !text.validate_length(Some(1), None, None) {
        issues.push(Issue::validation(
            "min_length",
            ">=1".into(),
            len.to_string(),
            format!("Invalid length: Expected >=1 but received {len}"),
            value,
            path.to_vec(),
        ));
    }
    if let Some(max) = max.filter(|&max| !text.validate_length(None, Some(max as u64), None)) {
        issues.push(Issue::validation(
            "max_length",
            format!("<={max}"),
            len.to_string(),
            format!("Invalid length: Expected <={max} but received {len}"),
            value,
            path.to_vec(),
        ));
    }
    issues
}

fn url_field(text: &str, value: &Value, path: Vec<PathItem>, require_https: bool) -> Result<ReturnUrl, Vec<Issue>> {
    let expected = if require_https { "https URL" } else { "http(s) URL" };
    let received = stringify(Some(value));
    let message = if !text.validate_url() {
        format!("Invalid URL: Received {received}")
    } else {
        match ReturnUrl::parse(text, require_https) {
            Ok(url) => return Ok(url),
            Err(ReturnUrlError::NotHttp | ReturnUrlError::HttpsRequired) => {
                format!("Invalid URL: Expected {expected} but received {received}")
            }
        }
    };
    Err(vec![Issue::validation("url", expected.into(), received, message, value, path)])
}

/// Parses a `POST /checkout` body (`None` when empty), or lists everything wrong with it.
pub fn checkout_request(body: Option<&Value>, require_https: bool) -> Result<CheckoutRequest, Vec<Issue>> {
    let Some(object) = body.and_then(Value::as_object) else {
        return Err(vec![Issue::schema("object", "Object".into(), body, Vec::new())]);
    };
    let mut issues = Vec::new();
    let claim = string_field(object, "checkoutClaim", &mut issues, |text, value, path| {
        let found = length_issues(text, value, &path, None);
        if found.is_empty() {
            Ok(text.to_owned())
        } else {
            Err(found)
        }
    });
    let mode = match object.get("mode") {
        None => {
            issues.push(Issue::schema("object", "\"mode\"".into(), None, Issue::at(object, "mode", "key")));
            None
        }
        Some(value) => match value.as_str().and_then(Mode::from_stored) {
            Some(mode) => Some(mode),
            None => {
                let expected = "\"hosted\" | \"embedded\"".to_owned();
                issues.push(Issue::schema("picklist", expected, Some(value), Issue::at(object, "mode", "value")));
                None
            }
        },
    };
    let success_url = string_field(object, "successUrl", &mut issues, |text, value, path| {
        url_field(text, value, path, require_https)
    });
    let cancel_url =
        string_field(object, "cancelUrl", &mut issues, |text, value, path| url_field(text, value, path, require_https));
    let idempotency_key = string_field(object, "idempotencyKey", &mut issues, |text, value, path| {
        let found = length_issues(text, value, &path, Some(MAX_KEY_LEN));
        match IdempotencyKey::parse(text) {
            Ok(key) if found.is_empty() => Ok(key),
            _ => Err(found),
        }
    });
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
    use serde_json::json;

    use super::*;

    fn issues(body: Value) -> Value {
        match checkout_request(Some(&body), false) {
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
        let request = checkout_request(Some(&valid()), true).ok();
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
        assert_eq!(found[1]["expected"], "\"hosted\" | \"embedded\"");
        assert_eq!(found[1]["received"], "\"popup\"");
        assert_eq!(found[1]["message"], "Invalid type: Expected \"hosted\" | \"embedded\" but received \"popup\"");
        assert_eq!(found[2]["received"], "null");
        assert_eq!(found[3]["kind"], "validation");
        assert_eq!(found[3]["message"], "Invalid URL: Received \"abc\"");
        assert_eq!(found[4]["expected"], "<=255");
        assert_eq!(found[4]["message"], "Invalid length: Expected <=255 but received 300");
    }

    #[test]
    fn empty_strings_fail_min_length() {
        let mut body = valid();
        body["checkoutClaim"] = json!("");
        body["idempotencyKey"] = json!("");
        let found = issues(body);
        assert_eq!(found[0]["type"], "min_length");
        assert_eq!(found[0]["expected"], ">=1");
        assert_eq!(found[0]["message"], "Invalid length: Expected >=1 but received 0");
        assert_eq!(found[1]["path"][0]["key"], "idempotencyKey");
    }

    #[test]
    fn a_body_that_is_not_an_object_is_one_issue_with_an_empty_path() {
        for (body, received) in [(json!([1]), "Array"), (json!("s"), "\"s\""), (json!(null), "null"), (json!(1.0), "1")]
        {
            let found = issues(body);
            assert_eq!(found.as_array().map(Vec::len), Some(1));
            assert_eq!(found[0]["expected"], "Object");
            assert_eq!(found[0]["received"], received);
            assert_eq!(found[0]["path"], json!([]));
        }
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
        let strict = checkout_request(Some(&body), true).err().unwrap_or_default();
        assert_eq!(strict.len(), 2);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut body = valid();
        body["extra"] = json!({"anything": true});
        assert!(checkout_request(Some(&body), false).is_ok());
    }
}
