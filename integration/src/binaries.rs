//! The `h2hop-front` and `h2hop-sidecar` binaries, for the tests that run
//! them as child processes.
//!
//! `cargo test` builds only the tested package's own binaries, so these
//! would be missing (or stale) beside a test executable. [`dir`] builds
//! them, once per test process, with the cargo that runs the tests, into
//! the test executable's own target directory and profile; when cargo is
//! done, they are current. A build that fails fails the test: no test
//! passes without running.
//!
//! The whole workspace is selected (`--workspace --bin ...`) so that the
//! dependencies' features are those of `cargo build --workspace`, whose
//! artifacts are then reused rather than rebuilt with other features.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

/// The binaries [`dir`] builds.
const BINARIES: [&str; 2] = ["h2hop-front", "h2hop-sidecar"];

/// The directory that holds current `h2hop-front` and `h2hop-sidecar`
/// binaries of this test's profile, built on the first call. Call it
/// before a test's time limit starts: the first build of a fresh clone
/// takes minutes.
#[allow(
    clippy::panic,
    reason = "test support: a binary that cannot be had fails the test"
)]
pub fn dir() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(build) {
        Ok(dir) => dir.clone(),
        Err(why) => panic!("{why}"),
    }
}

/// Runs `cargo build --workspace --bin h2hop-front --bin h2hop-sidecar`
/// for this test executable's profile and target directory.
fn build() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|err| format!("the test's own path: {err}"))?;
    // A test executable is TARGET/PROFILE/deps/NAME-HASH.
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{} is not in TARGET/PROFILE/deps", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{} has no parent", profile_dir.display()))?;
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        // The dev and test profiles write to `debug`.
        Some("debug") => "dev",
        Some(name) => name,
        None => return Err(format!("no profile in {}", profile_dir.display())),
    };
    // Cargo tells the tests it runs which cargo it is.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut command = Command::new(&cargo);
    command
        .args(["build", "--workspace", "--profile", profile])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir);
    for binary in BINARIES {
        command.args(["--bin", binary]);
    }
    let started = Instant::now();
    let output = command
        .output()
        .map_err(|err| format!("cannot run {}: {err}", cargo.to_string_lossy()))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    for binary in BINARIES {
        let path = profile_dir.join(binary);
        if !path.is_file() {
            return Err(format!("{command:?} left no {}", path.display()));
        }
    }
    eprintln!(
        "h2hop binaries of profile {profile} current in {} ({:.1?})",
        profile_dir.display(),
        started.elapsed()
    );
    Ok(profile_dir.to_path_buf())
}
