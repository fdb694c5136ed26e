//! Whether a lab test runs, skips loudly, or fails because it must run (CI).

use super::cmd::available;

/// True when the lab tests may run. When they cannot, prints why and returns false, unless
/// `CI` or `HEARTH_LAB=require` is set, in which case it panics: CI must run them.
pub fn labs_can_run(test: &str) -> bool {
    match available() {
        Ok(()) => true,
        Err(why) => {
            let required = std::env::var_os("CI").is_some()
                || std::env::var("HEARTH_LAB").is_ok_and(|v| v == "require");
            assert!(!required, "{test}: {why}, but CI requires lab tests to run");
            eprintln!("SKIPPED {test}: {why}");
            false
        }
    }
}
