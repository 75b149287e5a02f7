//! Valibot parity, proven against Valibot itself: `tests/valibot/parity.mjs` runs the seed's
//! schema, written with Valibot 1.x (pinned in its lockfile), over a generated corpus of bodies;
//! every body is posted here and the service's `issues` must be Valibot's, field by field and in
//! order (JSON text against `JSON.stringify` text). Where a body touches one of the deliberate
//! exceptions of `docs/input-rules.md`, the service must give what the documented rule gives.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

/// An issue as JavaScript wrote it: each field's JSON text.
type JsIssue = BTreeMap<String, String>;

#[derive(Debug, Deserialize)]
struct Case {
    body: String,
    valibot: Option<Vec<JsIssue>>,
    documented: Option<Vec<JsIssue>>,
    exceptions: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Corpus {
    results: Vec<Case>,
}

/// Valibot's verdicts, computed once per test run (installing Valibot with `npm ci` when needed).
fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/valibot");
        if !dir.join("node_modules/valibot").exists() {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .expect("npm (Node.js) must be installed for the Valibot parity test");
            assert!(status.success(), "npm ci failed in {}", dir.display());
        }
        let output = Command::new("node").arg("parity.mjs").current_dir(&dir).output().expect("node");
        assert!(output.status.success(), "parity.mjs failed: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).expect("parity.mjs prints JSON")
    })
}

#[derive(Debug, Deserialize)]
struct Answer<'a> {
    error: String,
    #[serde(borrow)]
    issues: Vec<BTreeMap<String, &'a RawValue>>,
}

fn post_bytes(app: &TestApp, key: &str, body: &[u8]) -> (u16, String) {
    let request = ureq::post(&format!("{}/checkout", app.address))
        .set("Content-Type", "application/json")
        .set("Authorization", &format!("Bearer {key}"));
    let response = match request.send_bytes(body) {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("transport error: {e}"),
    };
    (response.status(), response.into_string().expect("body"))
}

/// How the service's issues differ from the expected ones, if they do.
fn difference(expected: &[JsIssue], text: &str) -> Option<String> {
    let answer: Answer = match serde_json::from_str(text) {
        Ok(answer) => answer,
        Err(e) => return Some(format!("not an issue list ({e}): {text}")),
    };
    if answer.error != "validation_error" {
        return Some(format!("error {:?}", answer.error));
    }
    if answer.issues.len() != expected.len() {
        return Some(format!("{} issues, Valibot has {}: {text}", answer.issues.len(), expected.len()));
    }
    for (i, (ours, theirs)) in answer.issues.iter().zip(expected).enumerate() {
        let ours: BTreeMap<&str, &str> = ours.iter().map(|(k, v)| (k.as_str(), v.get())).collect();
        let theirs: BTreeMap<&str, &str> = theirs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if ours != theirs {
            let fields: Vec<String> = ours
                .keys()
                .chain(theirs.keys())
                .filter(|k| ours.get(*k) != theirs.get(*k))
                .map(|k| format!("{k}: ours {:?}, Valibot {:?}", ours.get(k), theirs.get(k)))
                .collect();
            return Some(format!("issue {i}: {}", fields.join("; ")));
        }
    }
    None
}

fn the_service_s_issues_are_valibot_s(backend: Backend) {
    let app = TestApp::spawn(backend);
    let merchant = app.new_merchant();
    let corpus = corpus();
    let mut compared_with_valibot = 0;
    let mut differences = Vec::new();
    for case in &corpus.results {
        let body = STANDARD.decode(&case.body).expect("base64");
        let (status, text) = post_bytes(&app, &merchant.key, &body);
        let shown = String::from_utf8_lossy(&body).chars().take(160).collect::<String>();
        if case.exceptions.is_empty() {
            assert_eq!(
                serde_json::to_string(&case.valibot).ok(),
                serde_json::to_string(&case.documented).ok(),
                "{shown}"
            );
            compared_with_valibot += 1;
        }
        let found = match &case.documented {
            // Valibot accepts the body; its junk claim is then refused at `checkoutClaim`.
            None if status == 400
                && text.contains(r#""type":"checkout_claim""#)
                && text.matches(r#""kind":"#).count() == 1 =>
            {
                None
            }
            None => Some(format!("Valibot accepts it, the service answered {status}: {text}")),
            Some(_) if status != 400 => Some(format!("status {status}: {text}")),
            Some(expected) => difference(expected, &text),
        };
        if let Some(found) = found {
            differences.push(format!("{shown}\n    {found}"));
        }
    }
    assert!(corpus.results.len() >= 200 && compared_with_valibot >= 200, "too small a corpus");
    assert!(
        differences.is_empty(),
        "{} of {} bodies differ from Valibot:\n{}",
        differences.len(),
        corpus.results.len(),
        differences.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(app.checkout_rows(), [0, 0, 0, 0, 0], "no body of the corpus makes an order");
}

on_both_backends!(the_service_s_issues_are_valibot_s);
