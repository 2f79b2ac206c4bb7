//! Rebuild when a template or a static file changes: both are compiled into the binary.

fn main() {
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=static");
}
