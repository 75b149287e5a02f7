//! The wire contract this server implements (the seed plus its additions): `GET /openapi.yaml` as
//! written, `GET /openapi.json` (made from it at build time), and `GET /docs`, a readable page.
//! Both documents name this deployment (`CHECKOUT_PUBLIC_URL`) as their server when served, so
//! the examples and "try it" tools point at the server that answered.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use crate::AppState;

/// The document as written.
pub const DOCUMENT: &str = include_str!("../../../../docs/openapi.yaml");
/// The same document as JSON.
pub const DOCUMENT_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// The servers of the served document: the public URL, at the root and under `/api`.
fn servers(public_url: &str) -> [(&'static str, String); 2] {
    [("This server", public_url.to_owned()), ("This server, under /api", format!("{public_url}/api"))]
}

/// [`DOCUMENT`] with its top-level `servers` naming `public_url`; nothing else of the text moves.
pub fn served_yaml(public_url: &str) -> String {
    let Some(start) = DOCUMENT.find("\nservers:\n").map(|at| at + 1) else {
        return DOCUMENT.to_owned();
    };
    let body = start + "servers:\n".len();
    let end = DOCUMENT[body..]
        .split_inclusive('\n')
        .take_while(|line| line.starts_with(' ') || line.trim().is_empty())
        .map(str::len)
        .sum::<usize>()
        + body;
    let listed: String = servers(public_url)
        .iter()
        .map(|(description, url)| {
            // A JSON string is a YAML double-quoted scalar: safe whatever the URL holds.
            format!("  - description: {description}\n    url: {}\n", Value::from(url.as_str()))
        })
        .collect();
    format!("{}servers:\n{listed}{}", &DOCUMENT[..start], &DOCUMENT[end..])
}

/// [`DOCUMENT_JSON`] with its `servers` naming `public_url`.
pub fn served_json(public_url: &str) -> String {
    let mut document: Value = serde_json::from_str(DOCUMENT_JSON).unwrap_or_default();
    document["servers"] =
        servers(public_url).iter().map(|(description, url)| json!({"description": description, "url": url})).collect();
    serde_json::to_string_pretty(&document).unwrap_or_else(|_| DOCUMENT_JSON.to_owned())
}

/// `GET /openapi.yaml`
pub async fn yaml(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/yaml; charset=utf-8").body(served_yaml(state.urls.public_url()))
}

/// `GET /openapi.json`
pub async fn json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(served_json(state.urls.public_url()))
}

/// `GET /docs`: renders `/openapi.json` in the browser with a script served here (descriptions are
/// Markdown, rendered by that script; nothing is fetched from elsewhere).
pub async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ))
        .body(crate::page::docs().into_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_documents_name_this_server_and_change_nothing_else() {
        let yaml = served_yaml("https://pay.example");
        assert!(yaml.contains("servers:\n  - description: This server\n    url: \"https://pay.example\"\n"));
        assert!(yaml.contains("    url: \"https://pay.example/api\"\n"));
        assert!(!yaml.contains("https://checkout.fanfare.io/api"));
        let untouched = |text: &str| text.split("\nservers:\n").next().map(str::len);
        assert_eq!(untouched(&yaml), untouched(DOCUMENT));
        assert_eq!(yaml.split("\nsecurity:\n").nth(1), DOCUMENT.split("\nsecurity:\n").nth(1));
        let json: Value = serde_json::from_str(&served_json("https://pay.example")).unwrap_or_default();
        assert_eq!(json["servers"][1]["url"], "https://pay.example/api");
        assert_eq!(json["paths"]["/checkout"]["post"]["operationId"], "postCheckout");
    }
}
