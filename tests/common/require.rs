//! Tests that need something from outside the project (a Slurm cluster, the fetched data, a GPU)
//! skip where it is missing, unless `LORAPLUS_REQUIRE` names it (`.ci/run` sets `slurm,data`):
//! then a missing requirement fails the test, so a broken install step cannot turn CI green.

/// Whether `LORAPLUS_REQUIRE` (a comma-separated list) names `what`.
pub fn required(what: &str) -> bool {
    std::env::var("LORAPLUS_REQUIRE").is_ok_and(|list| list.split(',').any(|r| r.trim() == what))
}

/// Says why a test skips for want of `what`, or fails it if `what` is required.
pub fn skip_unless_required(what: &str, why: &str) {
    assert!(!required(what), "LORAPLUS_REQUIRE names `{what}`, but {why}");
    eprintln!("skipped: {why} (LORAPLUS_REQUIRE={what} makes this a failure)");
}
