//! Turns `docs/openapi.yaml`, the contract as written, into the JSON served at `/openapi.json`, so
//! the two can never disagree.

// A build script that cannot read or write the document must stop the build, loudly.
#![allow(clippy::expect_used)]

use std::path::Path;

use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

fn json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Real(text) => text.parse::<f64>().ok().and_then(Number::from_f64).map_or(Value::Null, Value::Number),
        Yaml::Integer(n) => Value::from(*n),
        Yaml::String(s) => Value::from(s.as_str()),
        Yaml::Boolean(b) => Value::from(*b),
        Yaml::Array(items) => Value::Array(items.iter().map(json).collect()),
        Yaml::Hash(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(n) => n.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        other => panic!("unsupported key in the OpenAPI document: {other:?}"),
                    };
                    (key, json(v))
                })
                .collect::<Map<_, _>>(),
        ),
        Yaml::Null => Value::Null,
        other => panic!("unsupported value in the OpenAPI document: {other:?}"),
    }
}

fn main() {
    // Read when the script runs, not baked in when it is compiled: a target directory shared by two
    // checkouts may run a script compiled in the other one.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let source = Path::new(&manifest_dir).join("../../docs/openapi.yaml");
    println!("cargo:rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(&source).expect("docs/openapi.yaml");
    let documents = YamlLoader::load_from_str(&text).expect("docs/openapi.yaml is YAML");
    let document = json(documents.first().expect("one YAML document"));
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("openapi.json");
    std::fs::write(out, serde_json::to_string_pretty(&document).expect("JSON")).expect("write openapi.json");
}
