//! Starting the server as a newcomer and an operator do: the banner's request works as pasted on
//! every start, and every mistake is one JSON line with a stable exit status, found before
//! anything is created, bound or migrated.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;

use domain::claim::ClaimSigner;
use serde_json::Value;
use server::config::Config;
use server::dev::DevSecrets;

use crate::helpers::{Backend, TestDb, TOKEN_SECRET};

const BIN: &str = env!("CARGO_BIN_EXE_checkout-server");

/// The binary in `dir` with nothing but `vars` in its environment.
fn checkout_server(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir).env_clear();
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().expect("run checkout-server")
}

/// The one JSON line a failure prints on stderr, and the exit status.
fn failure(output: &Output) -> (i32, Value) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, not: {stderr}");
    let error = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));
    (output.status.code().expect("an exit status"), error)
}

/// A child process that is killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts the development server in `dir` with nothing but `vars` set and returns it with its
/// banner, read up to the last line (the rest of stdout is read on the side, so the server never
/// writes into a closed pipe).
pub fn start_development(dir: &Path, vars: &[(&str, &str)]) -> (Killed, Vec<String>) {
    let mut command = Command::new(BIN);
    command.current_dir(dir).env_clear().env("RUST_LOG", "warn").stdout(Stdio::piped()).stderr(Stdio::null());
    for (name, value) in vars {
        command.env(name, value);
    }
    let mut child = Killed(command.spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let mut banner = Vec::new();
    for line in receiver.iter() {
        let last = line.starts_with("More claims");
        banner.push(line);
        if last {
            break;
        }
    }
    (child, banner)
}

/// The banner's `curl`, from its first line to the `-d` line, exactly as printed.
fn printed_curl(banner: &[String]) -> String {
    let start = banner.iter().position(|l| l.starts_with("curl ")).unwrap_or_else(|| panic!("no curl: {banner:#?}"));
    let end = start + banner[start..].iter().position(|l| l.trim_start().starts_with("-d ")).unwrap();
    banner[start..=end].join("\n")
}

/// Runs `command` with `sh -c`, as a terminal would; returns its output.
fn paste(command: &str, vars: &[(&str, &str)]) -> String {
    let mut shell = Command::new("sh");
    shell.args(["-c", command]);
    for (name, value) in vars {
        shell.env(name, value);
    }
    let output = shell.output().expect("sh");
    assert!(output.status.success(), "{command}\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_banners_curl_works_as_pasted_on_the_first_and_on_later_starts() {
    let db = TestDb::new(Backend::Sqlite);
    let bind = format!("127.0.0.1:{}", free_port());
    let (first, banner) = start_development(db.dir(), &[("CHECKOUT_BIND", &bind)]);
    let key = banner.iter().find_map(|l| l.trim().strip_prefix("sk_test_")).map(|k| format!("sk_test_{k}")).unwrap();
    let curl = printed_curl(&banner);
    let port = bind.rsplit(':').next().unwrap();
    assert!(curl.contains(&format!("http://localhost:{port}/checkout")), "the URL follows CHECKOUT_BIND: {curl}");

    let answer = paste(&curl, &[]);
    assert!(answer.starts_with("HTTP/1.1 200"), "-i shows the status and headers: {answer}");
    let body: Value = serde_json::from_str(answer.lines().last().unwrap()).unwrap();
    let checkout_url = body["checkoutUrl"].as_str().unwrap();
    assert!(checkout_url.starts_with(&format!("http://localhost:{port}/c/")), "{checkout_url}");
    let again = paste(&curl, &[]);
    assert!(again.to_ascii_lowercase().contains("idempotent-replayed: true"), "{again}");
    drop(first);

    let (_later, banner) = start_development(db.dir(), &[("CHECKOUT_BIND", &bind)]);
    let curl = printed_curl(&banner);
    assert!(!curl.contains("sk_test_"), "the key is shown only once: {curl}");
    assert!(curl.contains("\"Authorization: Bearer $CHECKOUT_SECRET_KEY\""), "{curl}");
    let answer = paste(&curl, &[("CHECKOUT_SECRET_KEY", &key)]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_wrong_setting_is_one_line_naming_it_and_nothing_is_created() {
    let dir = tempdir();
    let output = checkout_server(dir.path(), &[], &[("CHECKOUT_BIND", "localhost")]);
    let (status, error) = failure(&output);
    assert_eq!((status, error["error"].as_str()), (2, Some("configuration")));
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("CHECKOUT_BIND") && message.contains("\"localhost\""), "{message}");
    assert!(!dir.path().join("data").exists(), "no ./data, no database, no migration");

    let output = checkout_server(
        dir.path(),
        &["migrate"],
        &[("CHECKOUT_SESSION_TTL_SECONDS", "soon"), ("CHECKOUT_PUBLIC_URL", "https://")],
    );
    let (status, error) = failure(&output);
    assert_eq!(status, 2);
    assert_eq!(error["problems"].as_array().map(Vec::len), Some(2), "every problem at once: {error}");
    assert!(!dir.path().join("data").exists());

    let output = checkout_server(dir.path(), &["merchant", "list", "--no-such-flag"], &[]);
    let (status, error) = failure(&output);
    assert_eq!((status, error["error"].as_str()), (2, Some("usage")));
}

#[test]
fn settings_out_of_range_are_refused_by_name_before_anything_is_made() {
    let dir = tempdir();
    let cases = [
        ("CHECKOUT_WORKERS", "0", "CHECKOUT_WORKERS must be a whole number from 1 to 1024"),
        ("CHECKOUT_SWEEP_INTERVAL_SECONDS", "0", "CHECKOUT_SWEEP_INTERVAL_SECONDS must be a whole number from 1 to"),
        ("CHECKOUT_WEBHOOK_POLL_MS", "0", "CHECKOUT_WEBHOOK_POLL_MS must be a whole number from 10 to"),
        ("CHECKOUT_IDEMPOTENCY_WAIT_MS", "0", "CHECKOUT_IDEMPOTENCY_WAIT_MS must be a whole number from 1 to"),
        ("DATABASE_POOL_SIZE", "100000", "DATABASE_POOL_SIZE must be a whole number from 1 to 1000"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be text or json"),
        ("CHECKOUT_WEBHOOKS_ALLOW_INTERNAL", "yes", "true or false (any case), or 1 or 0"),
        ("CHECKOUT_RATE_LIMIT_BURST", "0", "CHECKOUT_RATE_LIMIT_BURST must be at least 1"),
        ("DATABASE_URL", "mysql://127.0.0.1/checkout", "must start with sqlite:// or postgres://"),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/checkout?sslmode=require", "asks for TLS (sslmode)"),
    ];
    // A build with PostgreSQL's TLS (`--features server/postgres-tls`) takes sslmode.
    let cases = cases.into_iter().filter(|(_, value, _)| !(persistence::POSTGRES_TLS && value.contains("sslmode")));
    for (name, value, why) in cases {
        // The merchant limit is on, so that a burst of 0 would refuse every request.
        let vars = [(name, value), ("CHECKOUT_BIND", "127.0.0.1:0"), ("CHECKOUT_RATE_LIMIT_PER_SECOND", "5")];
        for args in [&["config", "check"][..], &[][..], &["migrate"][..]] {
            let (status, error) = failure(&checkout_server(dir.path(), args, &vars));
            assert_eq!((status, error["error"].as_str()), (2, Some("configuration")), "{name}={value} {args:?}");
            assert!(error["message"].as_str().unwrap().contains(why), "{name}={value} {args:?}: {error}");
            assert!(!dir.path().join("data").exists(), "{name}={value} {args:?}: nothing is made");
        }
    }
    let (status, error) = failure(&checkout_server(dir.path(), &["claim", "keygen"], &[("LOG_FORMAT", "xml")]));
    assert_eq!((status, error["error"].as_str()), (2, Some("configuration")), "every command reads LOG_FORMAT");

    let vars = [("CHECKOUT_WEBHOOKS_ALLOW_INTERNAL", "TRUE"), ("LOG_FORMAT", "JSON")];
    let checked = checkout_server(dir.path(), &["config", "check"], &vars);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    let checked: Value = serde_json::from_slice(&checked.stdout).unwrap();
    assert_eq!(checked["settings"]["CHECKOUT_WEBHOOKS_ALLOW_INTERNAL"], true);
    assert_eq!(checked["settings"]["LOG_FORMAT"], "json");
}

#[test]
fn a_command_without_its_subcommand_is_one_line_naming_them() {
    let dir = tempdir();
    for (args, commands) in [
        (&["config"][..], &["check"][..]),
        (&["merchant"][..], &["create", "list", "suspend", "activate"][..]),
        (&["--format", "table", "key"][..], &["create", "list", "roll", "revoke"][..]),
        (
            &["webhook"][..],
            &["add", "list", "remove", "enable", "disable", "rotate-secret", "deliveries", "resend", "test"][..],
        ),
    ] {
        let (status, error) = failure(&checkout_server(dir.path(), args, &[]));
        assert_eq!((status, error["error"].as_str()), (2, Some("usage")), "{args:?}");
        assert_eq!(error["commands"], serde_json::json!(commands), "{args:?}");
        let message = error["message"].as_str().unwrap();
        let command = format!("checkout-server {}", args.last().unwrap());
        assert!(message.starts_with(&format!("`{command}` needs a command: {}", commands.join(", "))), "{message}");
        assert!(message.len() < 200 && !message.contains("Usage:"), "a short line, not the help: {message}");
    }
    assert!(!dir.path().join("data").exists());
}

#[test]
fn a_port_in_use_is_named_and_nothing_is_created() {
    let dir = tempdir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = checkout_server(dir.path(), &[], &[("CHECKOUT_BIND", &address)]);
    let (status, error) = failure(&output);
    assert_eq!((status, error["error"].as_str()), (1, Some("address_unavailable")));
    assert!(error["message"].as_str().unwrap().contains(&address), "{error}");
    assert!(!dir.path().join("data").exists(), "bound before the database is opened");
}

#[test]
fn an_unreachable_database_is_one_line_with_its_own_exit_status() {
    let dir = tempdir();
    let closed = format!("postgres://postgres@127.0.0.1:{}/checkout", free_port());
    for args in [&[][..], &["migrate"][..], &["merchant", "list"][..]] {
        let output = checkout_server(
            dir.path(),
            args,
            &[("DATABASE_URL", &closed), ("CHECKOUT_BIND", "127.0.0.1:0"), ("CHECKOUT_IDEMPOTENCY_WAIT_MS", "300")],
        );
        let (status, error) = failure(&output);
        assert_eq!((status, error["error"].as_str()), (3, Some("database_unavailable")), "{args:?}");
        assert!(error["message"].as_str().unwrap().contains("DATABASE_URL"), "{error}");
    }
}

#[test]
fn config_check_prints_the_effective_configuration_without_secrets() {
    let dir = tempdir();
    let secret = "a-token-secret-nobody-may-ever-see-0123456789";
    let vars = [
        ("DATABASE_URL", "postgres://app:db-password@db.internal/checkout"),
        ("CHECKOUT_TOKEN_SECRET", secret),
        ("CHECKOUT_BIND", "127.0.0.1:4931"),
    ];
    let output = checkout_server(dir.path(), &["config", "check"], &vars);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(!stdout.contains(secret) && !stdout.contains("db-password"), "{stdout}");
    let checked: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(checked["settings"]["CHECKOUT_PUBLIC_URL"], "http://localhost:4931");
    assert_eq!(checked["settings"]["CHECKOUT_TOKEN_SECRET"], "[redacted]");
    assert_eq!(checked["settings"]["DATABASE_URL"], "postgres://app:[redacted]@db.internal/checkout");
    assert!(!dir.path().join("data").exists(), "a check touches nothing");

    let flags = checkout_server(dir.path(), &["config", "check", "--bind", "127.0.0.1:5000"], &[]);
    let checked: Value = serde_json::from_slice(&flags.stdout).unwrap();
    assert_eq!(checked["settings"]["CHECKOUT_BIND"], "127.0.0.1:5000", "a flag stands for its variable");
}

/// Production settings that are safe, but for `changes`.
fn production(changes: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let signer = ClaimSigner::generate();
    let mut vars = vec![
        ("CHECKOUT_ENV", "production".to_owned()),
        ("CHECKOUT_CLAIM_KEYS", format!("{}:{}", signer.kid(), signer.public_key())),
        ("CHECKOUT_PUBLIC_URL", "https://checkout.example".to_owned()),
        ("CHECKOUT_TOKEN_SECRET", TOKEN_SECRET.to_owned()),
        ("CHECKOUT_BIND", "127.0.0.1:0".to_owned()),
    ];
    for (name, value) in changes {
        vars.retain(|(n, _)| n != name);
        vars.push((name, value.clone()));
    }
    vars
}

fn refused_in_production(dir: &Path, changes: &[(&'static str, String)], setting: &str) {
    let vars = production(changes);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (status, error) = failure(&checkout_server(dir, &["config", "check"], &vars));
    assert_eq!((status, error["error"].as_str()), (2, Some("configuration")), "{changes:?}");
    assert!(error["message"].as_str().unwrap().contains(setting), "{setting} not named: {error}");
    let (status, _) = failure(&checkout_server(dir, &[], &vars));
    assert_eq!(status, 2, "the server does not start either");
    assert!(!dir.join("data").exists());
}

#[test]
fn production_refuses_a_public_url_without_a_host_and_any_development_claim_key() {
    let dir = tempdir();
    let vars = production(&[]);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let safe = checkout_server(dir.path(), &["config", "check"], &vars);
    assert!(safe.status.success(), "{}", String::from_utf8_lossy(&safe.stderr));

    for url in ["https://", "https:///checkout", "https://:443/"] {
        refused_in_production(dir.path(), &[("CHECKOUT_PUBLIC_URL", url.to_owned())], "CHECKOUT_PUBLIC_URL");
    }
    let other = ClaimSigner::generate();
    let by_kid = format!("dev:{}", other.public_key());
    refused_in_production(dir.path(), &[("CHECKOUT_CLAIM_KEYS", by_kid)], "CHECKOUT_CLAIM_KEYS");

    // The development key under another name, as a copy of a development .env would carry it.
    let secrets_dir = tempdir();
    let secrets_file = secrets_dir.path().join("dev-secrets.json").display().to_string();
    let dev_key = DevSecrets::load_or_create(&secrets_file).unwrap().claim_signer().unwrap().public_key();
    let renamed = format!("{}:{},prod-2026:{dev_key}", other.kid(), other.public_key());
    refused_in_production(
        dir.path(),
        &[("CHECKOUT_CLAIM_KEYS", renamed), ("CHECKOUT_DEV_SECRETS_FILE", secrets_file)],
        "CHECKOUT_CLAIM_KEYS",
    );
}

#[test]
fn every_setting_the_configuration_reads_is_in_the_help() {
    let read = Mutex::new(BTreeSet::new());
    for environment in [None, Some("production")] {
        let _ = Config::from_lookup(|name| {
            read.lock().unwrap().insert(name.to_owned());
            (name == "CHECKOUT_ENV").then(|| environment.map(str::to_owned)).flatten()
        });
    }
    let help = checkout_server(Path::new("."), &["--help"], &[]);
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let mut names = read.into_inner().unwrap();
    names.extend(["RUST_LOG".to_owned(), "LOG_FORMAT".to_owned()]);
    for name in &names {
        assert!(help.contains(&format!("[env: {name}")), "{name} is not in --help");
    }
    // Each setting the configuration reads is also a flag, shown by `config check`, and in the
    // README's table: one forgotten place would drop a flag silently or hide a setting.
    let flags: BTreeSet<&str> = server::cli::Settings::default().named().iter().map(|(name, _)| *name).collect();
    let config = Config::from_lookup(|name| match name {
        "CHECKOUT_CLAIM_KEYS" => Some(format!("k1:{}", domain::claim::ClaimSigner::generate().public_key())),
        _ => None,
    })
    .expect("the development defaults");
    let described = config.describe()["settings"].clone();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for name in names.iter().filter(|n| !["RUST_LOG", "LOG_FORMAT", "CHECKOUT_ENV"].contains(&n.as_str())) {
        assert!(flags.contains(name.as_str()), "{name} is not in cli::Settings::named: its flag is ignored");
        assert!(described.as_object().unwrap().contains_key(name), "{name} is not in Config::describe");
        assert!(readme.contains(&format!("| `{name}` |")), "{name} is not in the README's settings table");
    }
    let issue = checkout_server(Path::new("."), &["claim", "issue", "--help"], &[]);
    assert!(String::from_utf8_lossy(&issue.stdout).contains("[env: CHECKOUT_CLAIM_PRIVATE_KEY"));
    for status in ["1 ", "2 ", "3 "] {
        assert!(help.contains(&format!("  {status}")), "exit status {status}is documented in --help");
    }
}

/// A folder of the test's own.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    let dir = std::env::temp_dir().join(format!("checkout-start-{}", &domain::secret::random_token().expose()[..16]));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

#[test]
fn the_binary_links_no_system_libpq_or_openssl() {
    // The release binary is checked the same way in CI; this one is built with the same features.
    let ldd = Command::new("ldd").arg(BIN).output().expect("ldd");
    let linked = String::from_utf8_lossy(&ldd.stdout);
    assert!(ldd.status.success() && linked.contains("libc.so"), "{linked}");
    for library in ["libpq", "libssl", "libcrypto"] {
        assert!(!linked.contains(library), "{library} is linked:\n{linked}");
    }
}
