//! Prerequisites of a test: root, a tool, a kernel feature.
//!
//! Run by hand (`cargo test` as a user, on a machine without some tool), a
//! test that lacks one says so loudly and returns: the rest of the suite
//! still tells something. Run by `scripts/test.sh`, which sets
//! [`STRICT_VAR`], it fails with the reason instead, so a machine that
//! lacks something can never pass green.

use std::path::Path;

/// Set to `1` by `scripts/test.sh`: a missing prerequisite fails the test.
pub const STRICT_VAR: &str = "BERTH_TEST_STRICT";

/// Whether a missing prerequisite fails (see the module doc).
pub fn strict() -> bool {
    std::env::var(STRICT_VAR).is_ok_and(|v| v == "1")
}

/// `true` when `have`; otherwise panics under [`strict`], or prints
/// `skipped: <missing>` and returns `false` so the caller returns.
#[track_caller]
pub fn prerequisite(have: bool, missing: &str) -> bool {
    if have {
        return true;
    }
    if strict() {
        panic!("{missing} ({STRICT_VAR}=1: a test that cannot run fails)");
    }
    eprintln!("skipped: {missing}");
    false
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Root, or [`prerequisite`]'s answer for `what` ("the runtime tests").
#[track_caller]
pub fn root(what: &str) -> bool {
    prerequisite(is_root(), &format!("{what} need root"))
}

/// The program at `path` exists, or [`prerequisite`]'s answer naming the
/// Debian `package` that has it.
#[track_caller]
pub fn tool(path: &str, package: &str) -> bool {
    prerequisite(
        Path::new(path).exists(),
        &format!("{path} is missing: install {package}"),
    )
}
