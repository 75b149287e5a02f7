//! The migrations are embedded at compile time (`embed_migrations!`): a new or edited migration
//! must rebuild this crate even when no Rust file changed.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
