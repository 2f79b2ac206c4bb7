//! Re-embed the migrations when a migration folder is added or changed:
//! `embed_migrations!` alone does not notice new folders.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=migrations_mysql");
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=static");
}
