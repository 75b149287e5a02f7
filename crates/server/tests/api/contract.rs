//! The served contract reads as documentation: every operation shows a `curl` and example bodies,
//! every example is valid against its own schema, every field a real order shows is in its schema,
//! every webhook event is in `webhooks`, the servers are this deployment's, and the new refusals
//! are documented.

use serde_json::Value;

use crate::helpers::{Backend, TestApp};

fn resolve<'a>(document: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let target = reference
                .trim_start_matches("#/")
                .split('/')
                .fold(document, |at, key| at.get(key).unwrap_or_else(|| panic!("dangling {reference}")));
            resolve(document, target)
        }
        None => node,
    }
}

/// A small JSON Schema check, covering what the document uses: `$ref`, `type`, `const`, `enum`,
/// `properties`, `required`, `items` and `format: date-time`.
fn check(document: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = resolve(document, schema);
    let mut problem = |text: String| problems.push(format!("{at}: {text}"));
    if let Some(wanted) = schema.get("const") {
        if wanted != value {
            problem(format!("{value} is not {wanted}"));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            problem(format!("{value} is not one of {options:?}"));
        }
    }
    if let Some(kind) = schema.get("type") {
        let kinds: Vec<&str> = match kind {
            Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
            other => other.as_str().into_iter().collect(),
        };
        let fits = |kind: &str| match kind {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            "null" => value.is_null(),
            _ => false,
        };
        if !kinds.iter().any(|kind| fits(kind)) {
            problem(format!("{value} is not of type {kinds:?}"));
        }
    }
    if schema.get("format").and_then(Value::as_str) == Some("date-time") {
        if let Some(text) = value.as_str() {
            if chrono::DateTime::parse_from_rfc3339(text).is_err() {
                problem(format!("{text:?} is not a date-time"));
            }
        }
    }
    if let (Some(required), Some(object)) = (schema.get("required").and_then(Value::as_array), value.as_object()) {
        for key in required.iter().filter_map(Value::as_str).filter(|key| !object.contains_key(*key)) {
            problem(format!("{key} is missing"));
        }
    }
    if let (Some(properties), Some(object)) = (schema.get("properties").and_then(Value::as_object), value.as_object()) {
        for (key, property) in properties {
            if let Some(inner) = object.get(key) {
                check(document, property, inner, &format!("{at}.{key}"), problems);
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            check(document, items, item, &format!("{at}[{i}]"), problems);
        }
    }
}

/// Every example of a request or response body: (where, schema, value).
fn examples(document: &Value) -> Vec<(String, Value, Value)> {
    let mut found = Vec::new();
    let mut media = |place: String, content: &Value| {
        for (media_type, media) in content.as_object().into_iter().flatten() {
            let schema = media.get("schema").cloned().unwrap_or(Value::Null);
            if let Some(example) = media.get("example") {
                found.push((format!("{place} {media_type}"), schema.clone(), example.clone()));
            }
            for (name, example) in media.get("examples").and_then(Value::as_object).into_iter().flatten() {
                let value = resolve(document, example).get("value").cloned().unwrap_or(Value::Null);
                found.push((format!("{place} {media_type} example {name}"), schema.clone(), value));
            }
        }
    };
    for (section, operations) in operations(document) {
        let body = operations.get("requestBody").map(|b| resolve(document, b));
        if let Some(content) = body.and_then(|b| b.get("content")) {
            media(format!("{section} request"), content);
        }
        for (code, response) in operations["responses"].as_object().into_iter().flatten() {
            if let Some(content) = resolve(document, response).get("content") {
                media(format!("{section} {code}"), content);
            }
        }
    }
    found
}

/// Every operation of `paths` and `webhooks`, with a name to show.
fn operations(document: &Value) -> Vec<(String, &Value)> {
    let mut found = Vec::new();
    for section in ["paths", "webhooks"] {
        for (path, item) in document[section].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                found.push((format!("{} {path}", method.to_uppercase()), operation));
            }
        }
    }
    found
}

fn problems_of(document: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (place, schema, value) in examples(document) {
        check(document, &schema, &value, &place, &mut problems);
    }
    problems
}

#[test]
fn every_example_is_valid_against_its_schema() {
    let app = TestApp::spawn(Backend::Sqlite);
    let document = app.request("GET", "/openapi.json", &[]).json();
    let found = examples(&document);
    assert!(found.len() >= 20, "only {} examples", found.len());
    let problems = problems_of(&document);
    assert!(problems.is_empty(), "{problems:#?}");

    // The check can fail: a wrong example is caught.
    let mut broken = document.clone();
    broken["paths"]["/checkout"]["post"]["responses"]["200"]["content"]["application/json"]["examples"]["created"]
        ["value"]["orderId"] = Value::from(7);
    broken["components"]["examples"]["PaidOrder"]["value"]["status"] = Value::from("shipped");
    assert_eq!(problems_of(&broken).len(), 2, "{:#?}", problems_of(&broken));
}

#[test]
fn every_operation_shows_a_curl_and_example_bodies() {
    let app = TestApp::spawn(Backend::Sqlite);
    let document = app.request("GET", "/openapi.json", &[]).json();
    let found = examples(&document);
    for (name, operation) in operations(&document) {
        let with_example = |part: &str| found.iter().any(|(place, _, _)| place.starts_with(&format!("{name} {part}")));
        let webhook = !name.contains(" /");
        let answered = found.iter().any(|(place, _, _)| place.starts_with(&format!("{name} 2")));
        assert!(webhook || answered, "{name}: no answer example");
        if operation.get("requestBody").is_some() {
            assert!(with_example("request"), "{name}: no request example");
        }
        if !webhook {
            let samples = operation["x-codeSamples"].as_array().unwrap_or_else(|| panic!("{name}: no x-codeSamples"));
            let curl = samples.iter().find(|s| s["lang"] == "curl").unwrap_or_else(|| panic!("{name}: no curl"));
            let source = curl["source"].as_str().unwrap();
            assert!(source.starts_with("curl ") && source.contains("$CHECKOUT_SECRET_KEY"), "{name}: {source}");
            // The body a curl sends is valid too.
            if let Some(data) = source.split("-d '").nth(1).and_then(|rest| rest.split('\'').next()) {
                let body: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{name}: {e}: {data}"));
                let schema = &resolve(&document, &operation["requestBody"])["content"]["application/json"]["schema"];
                let mut problems = Vec::new();
                check(&document, schema, &body, &format!("{name} curl"), &mut problems);
                assert!(problems.is_empty(), "{problems:#?}");
            }
        }
    }
}

#[test]
fn every_webhook_event_and_its_envelope_are_documented() {
    let app = TestApp::spawn(Backend::Sqlite);
    let document = app.request("GET", "/openapi.json", &[]).json();
    let events: Vec<&str> = document["webhooks"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(events.len(), domain::webhook::EventType::ALL.len());
    for event in domain::webhook::EventType::ALL.map(domain::webhook::EventType::as_str) {
        assert!(events.contains(&event), "{event} missing from {events:?}");
        let body = &document["webhooks"][event]["post"]["requestBody"]["content"]["application/json"];
        assert_eq!(body["schema"]["$ref"], "#/components/schemas/WebhookEvent");
        assert_eq!(body["examples"]["event"]["value"]["type"], event);
    }
}

/// The fields of `value` that `schema` does not name as properties, at any depth.
fn undocumented(document: &Value, schema: &Value, value: &Value, at: &str, found: &mut Vec<String>) {
    let schema = resolve(document, schema);
    if let (Some(object), Some(properties)) = (value.as_object(), schema.get("properties")) {
        for (key, inner) in object {
            match properties.get(key) {
                Some(property) => undocumented(document, property, inner, &format!("{at}.{key}"), found),
                None => found.push(format!("{at}.{key}")),
            }
        }
    }
    if let (Some(array), Some(items)) = (value.as_array(), schema.get("items")) {
        for (i, item) in array.iter().enumerate() {
            undocumented(document, items, item, &format!("{at}[{i}]"), found);
        }
    }
}

#[test]
fn every_field_a_real_order_shows_is_documented() {
    let app = TestApp::spawn(Backend::Sqlite);
    let document = app.request("GET", "/openapi.json", &[]).json();
    let schema =
        &document["paths"]["/orders/{orderId}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    let merchant = app.new_merchant();
    let (page, paid) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    assert_eq!(app.pay(&page, "4000000000000002").status, 402, "declined: the page again");
    assert_eq!(app.pay(&page, "4242424242424242").status, 303);
    let (_, cancelled) = app.create_checkout(&merchant, &app.checkout_body(&merchant));
    assert_eq!(app.cancel_order(&merchant.key, &cancelled).status, 200);
    let mut found = Vec::new();
    for order_id in [paid, cancelled] {
        undocumented(&document, schema, &app.get_order(&merchant.key, &order_id), "order", &mut found);
    }
    assert!(found.is_empty(), "not in the Order schema of docs/openapi.yaml: {found:?}");
}

#[test]
fn the_servers_are_this_deployment_s_public_url() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("CHECKOUT_PUBLIC_URL", "http://pay.checkout.test:8080")]);
    let json = app.request("GET", "/openapi.json", &[]).json();
    let urls: Vec<&str> = json["servers"].as_array().unwrap().iter().filter_map(|s| s["url"].as_str()).collect();
    assert_eq!(urls, ["http://pay.checkout.test:8080", "http://pay.checkout.test:8080/api"]);
    let yaml = app.request("GET", "/api/openapi.yaml", &[]).text;
    assert!(yaml.contains("    url: \"http://pay.checkout.test:8080/api\"\n"), "{yaml}");
    assert!(!yaml.contains("checkout.fanfare.io"));
}

#[test]
fn the_new_refusals_are_documented() {
    let app = TestApp::spawn(Backend::Sqlite);
    let document = app.request("GET", "/openapi.json", &[]).json();
    let issue = &document["paths"]["/checkout"]["post"]["responses"]["400"]["content"]["application/json"]["schema"]
        ["properties"]["issues"]["items"];
    let reasons = issue["properties"]["reason"]["enum"].as_array().unwrap();
    for reason in ["claim_control_character", "claim_lifetime_too_long", "claim_invalid_items", "claim_expired"] {
        assert!(reasons.contains(&Value::from(reason)), "{reason}");
    }
    let description = document["info"]["description"].as_str().unwrap();
    assert!(description.contains("2,048") && description.contains("CHECKOUT_CLAIM_MAX_LIFETIME_SECONDS"));
    let webhooks = document["paths"]["/webhook-endpoints"]["post"]["responses"]["400"]["description"].as_str();
    assert!(webhooks.unwrap().contains("2,048"));
}

#[test]
fn every_404_names_what_was_not_found_and_the_examples_say_how_to_get_a_real_claim() {
    let app = TestApp::spawn(Backend::Sqlite);
    let document = app.request("GET", "/api/openapi.json", &[]).json();
    for (name, operation) in operations(&document) {
        let Some(not_found) = operation["responses"].get("404") else { continue };
        let description = resolve(&document, not_found)["description"].as_str().unwrap();
        if name.contains("/webhook-endpoints") {
            assert!(description.contains("endpoint") && !description.contains("order"), "{name}: {description}");
        } else {
            assert!(!description.contains("endpoint"), "{name}: {description}");
        }
    }
    let intro = document["info"]["description"].as_str().unwrap();
    assert!(intro.contains("placeholder") && intro.contains("checkout-server claim issue"), "{intro}");
}

/// What `assets/docs.js` makes of `markdown` as the description of a document, as HTML (run in
/// Node over a small stand-in for the DOM).
fn rendered_markdown(markdown: &str) -> String {
    let script = format!(
        r#"
        function node(tag) {{
          return {{ tag: tag, children: [], setAttribute: function () {{}},
            append: function () {{ this.children.push.apply(this.children, arguments); }},
            get lastChild() {{ return this.children[this.children.length - 1]; }} }};
        }}
        var root = node("main");
        global.document = {{ getElementById: function () {{ return root; }}, createElement: node }};
        var spec = {{ info: {{ title: "T", version: "1", description: {markdown} }}, paths: {{}} }};
        global.fetch = function () {{ return Promise.resolve({{ json: function () {{ return spec; }} }}); }};
        function html(n) {{
          return typeof n === "string" ? n : "<" + n.tag + ">" + n.children.map(html).join("") + "</" + n.tag + ">";
        }}
        require({script:?});
        setTimeout(function () {{ console.log(html(root.children[1])); }}, 50);
        "#,
        markdown = Value::from(markdown),
        script = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/assets/docs.js"),
    );
    let node = std::process::Command::new("node").args(["-e", &script]).output().expect("node is on the machine");
    assert!(node.status.success(), "{}", String::from_utf8_lossy(&node.stderr));
    String::from_utf8(node.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_docs_markdown_leaves_code_spans_and_underscores_inside_words_alone() {
    let cases = [
        (
            "over its rate (CHECKOUT_RATE_LIMIT_PER_SECOND and _BURST)",
            "<p>over its rate (CHECKOUT_RATE_LIMIT_PER_SECOND and _BURST)</p>",
        ),
        ("_stressed_ but snake_case_name", "<p><em>stressed</em> but snake_case_name</p>"),
        ("x_y `a_b *c*` z_", "<p>x_y <code>a_b *c*</code> z_</p>"),
        ("_around `code_x` here_", "<p><em>around <code>code_x</code> here</em></p>"),
        (
            "`**not strong**` and **strong** and *it*",
            "<p><code>**not strong**</code> and <strong>strong</strong> and <em>it</em></p>",
        ),
        ("[a `b_c` link](https://x.example) [bad](javascript:alert(1))", "<p><a>a <code>b_c</code> link</a> bad)</p>"),
    ];
    for (markdown, html) in cases {
        assert_eq!(rendered_markdown(markdown), format!("<div>{html}</div>"), "{markdown}");
    }
}
