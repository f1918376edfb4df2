//! `sqlx::migrate!` embeds the files in `migrations/` but the compiler only
//! watches the ones that existed at the last build; this makes adding a new
//! migration file rebuild the crate.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
