//! Re-embed the migrations when a migration folder is added or changed (`embed_migrations!`
//! alone does not notice new folders), and write the table of each folder's migrations with
//! their SQL, which `migrations::Plan::script` prints for a DBA (diesel_migrations keeps its
//! copy of the SQL private).
use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=migrations_mysql");
    let mut out = String::new();
    for (constant, folder) in [("SQL", "migrations"), ("MYSQL", "migrations_mysql")] {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
        let mut names: Vec<String> = std::fs::read_dir(&root)
            .expect("the migrations folder")
            .filter_map(Result::ok)
            .filter(|entry| entry.path().join("up.sql").exists())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let _ = writeln!(
            out,
            "/// `{folder}/`: each migration's folder name and `up.sql`, in order.\n\
             pub const {constant}: &[(&str, &str)] = &["
        );
        for name in names {
            let up = root.join(&name).join("up.sql");
            let _ = writeln!(
                out,
                "    ({name:?}, include_str!({:?})),",
                up.display().to_string()
            );
        }
        out.push_str("];\n");
    }
    let target = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("migration_sql.rs");
    std::fs::write(target, out).expect("write the migrations' table");
}
