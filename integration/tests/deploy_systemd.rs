//! The systemd units in `deploy/systemd/` and their example environment
//! files, checked without running systemd:
//!
//! - `systemd-analyze verify` accepts each unit without a word about it
//!   (it reports unknown keys and bad values on standard error and still
//!   exits 0, so any line naming the unit fails the test). It also checks
//!   that `ExecStart=`'s binary exists, so the unit is verified as a copy
//!   whose `/usr/local/bin/h2hop-*` is the freshly built debug binary;
//! - `systemd-analyze security --offline=yes` rates each unit's sandbox
//!   below [`MAX_EXPOSURE`] ("OK" or better);
//! - the unit sets the sandboxing directives this project relies on,
//!   reloads with SIGHUP and waits for the drain on stop;
//! - each environment file names only variables the binary reads (as its
//!   `--help` lists them), and the binary's `--check-config` accepts the
//!   values, with the certificate paths pointed at a fresh dev PKI.
//!
//! Whether the service starts under these restrictions (the system call
//! filter, the capability set) is not tested: no systemd runs here.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use h2hop_integration::process::{output_within, program_or_skip};
use tokio::process::Command;

/// Highest overall exposure `systemd-analyze security` may give a unit
/// (0 is the best, 10 the worst; below 3 it says "OK").
const MAX_EXPOSURE: f64 = 3.0;

/// Bound on one external program's run.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the units expect the binaries.
const INSTALLED_BIN: &str = "/usr/local/bin";
/// Where the env files expect the certificates and keys.
const INSTALLED_TLS: &str = "/etc/h2hop/tls";

/// A binary with a unit and an environment file in `deploy/systemd/`.
#[derive(Debug, Clone, Copy)]
enum Service {
    Front,
    Sidecar,
}

/// Every service with a unit.
const SERVICES: [Service; 2] = [Service::Front, Service::Sidecar];

impl Service {
    /// The binary's name, also the stem of its unit and env file.
    fn binary(self) -> &'static str {
        match self {
            Service::Front => "h2hop-front",
            Service::Sidecar => "h2hop-sidecar",
        }
    }

    /// The prefix of its own environment variables.
    fn env_prefix(self) -> &'static str {
        match self {
            Service::Front => "H2HOP_FRONT",
            Service::Sidecar => "H2HOP_SIDECAR",
        }
    }

    /// Its capability sets: binding :80 and :443 for the front, none for
    /// the sidecar.
    fn capabilities(self) -> &'static str {
        match self {
            Service::Front => "CAP_NET_BIND_SERVICE",
            Service::Sidecar => "",
        }
    }

    /// Its unit in `deploy/systemd/`.
    fn unit_path(self) -> PathBuf {
        deploy_dir().join(format!("{}.service", self.binary()))
    }

    /// Its example environment file in `deploy/systemd/`.
    fn env_path(self) -> PathBuf {
        deploy_dir().join(format!("{}.env", self.binary()))
    }
}

/// `deploy/systemd/` in this repository.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd")
}

/// A file's text; a missing file fails the test.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Runs `command` to its end, within [`RUN_TIMEOUT`].
async fn run(command: &mut Command) -> Output {
    output_within(command, RUN_TIMEOUT).await.unwrap()
}

/// Standard output and error as lines.
fn lines(output: &Output) -> Vec<String> {
    [&output.stdout, &output.stderr]
        .into_iter()
        .flat_map(|bytes| {
            String::from_utf8_lossy(bytes)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Writes each unit into `dir` with its `ExecStart=` binary taken from
/// `bin_dir` instead of [`INSTALLED_BIN`]; returns the copies' paths.
fn unit_copies(dir: &Path, bin_dir: &Path) -> Vec<(Service, PathBuf)> {
    SERVICES
        .iter()
        .map(|&service| {
            let installed = format!("ExecStart={INSTALLED_BIN}/{}\n", service.binary());
            let built = format!("ExecStart={}\n", bin_dir.join(service.binary()).display());
            let unit = read(&service.unit_path());
            assert!(
                unit.contains(&installed),
                "{}: no line {installed}",
                service.binary()
            );
            let copy = dir.join(format!("{}.service", service.binary()));
            std::fs::write(&copy, unit.replace(&installed, &built)).unwrap();
            (service, copy)
        })
        .collect()
}

#[tokio::test]
async fn units_pass_systemd_analyze_verify() {
    let test = "units_pass_systemd_analyze_verify";
    let Some(analyze) = program_or_skip(test, "systemd-analyze", "systemd").unwrap() else {
        return;
    };
    let bin_dir = h2hop_integration::binaries::dir();
    let dir = tempfile::tempdir().unwrap();
    for (service, copy) in unit_copies(dir.path(), &bin_dir) {
        let output = run(Command::new(&analyze).arg("verify").arg(&copy)).await;
        let unit_name = copy.file_name().unwrap().to_string_lossy().into_owned();
        let (about_unit, other): (Vec<String>, Vec<String>) = lines(&output)
            .into_iter()
            .partition(|line| line.contains(&unit_name));
        // Lines about the host's own units are its business, not ours.
        for line in &other {
            eprintln!(
                "systemd-analyze verify ({}), not about the unit: {line}",
                service.binary()
            );
        }
        assert!(
            output.status.success() && about_unit.is_empty(),
            "systemd-analyze verify {unit_name}: {}\n{}",
            output.status,
            about_unit.join("\n")
        );
    }
}

#[tokio::test]
async fn units_sandboxing_exposure_is_ok() {
    let test = "units_sandboxing_exposure_is_ok";
    let Some(analyze) = program_or_skip(test, "systemd-analyze", "systemd").unwrap() else {
        return;
    };
    for service in SERVICES {
        let output = run(Command::new(&analyze)
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(service.unit_path())
            .env("SYSTEMD_COLORS", "0"))
        .await;
        let all = lines(&output);
        // "→ Overall exposure level for h2hop-front.service: 1.7 OK 🙂"
        let overall = all
            .iter()
            .find_map(|line| {
                line.split_once("Overall exposure level for ")?
                    .1
                    .split_once(": ")
            })
            .map(|(_, rest)| rest.split_whitespace().take(2).collect::<Vec<_>>())
            .unwrap_or_else(|| {
                panic!(
                    "{}: no overall exposure in\n{}",
                    service.binary(),
                    all.join("\n")
                )
            });
        let exposure: f64 = overall[0]
            .parse()
            .unwrap_or_else(|_| panic!("exposure {overall:?}"));
        eprintln!("{}: exposure {exposure} {}", service.binary(), overall[1]);
        assert!(
            exposure < MAX_EXPOSURE,
            "{}: exposure {exposure} {}, not below {MAX_EXPOSURE}; the items:\n{}",
            service.binary(),
            overall[1],
            all.iter()
                .filter(|line| line.starts_with('✗'))
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// The `[Service]` section's directives, in order, as (key, value).
fn service_directives(unit: &str) -> Vec<(String, String)> {
    let mut section = "";
    let mut directives = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(!line.ends_with('\\'), "continued line: {line}");
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not key=value: {line}"));
            directives.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    directives
}

/// The `NAME=value` lines of an environment file.
fn env_vars(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not NAME=value: {line}"));
            // Quotes would be systemd's to strip, and nobody else's.
            assert!(!value.contains(['"', '\'']), "quoted value: {line}");
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// Seconds in a duration as the binaries and systemd write it: `20s`, `1m`.
fn seconds(duration: &str) -> u64 {
    let number = |suffix: &str| duration.strip_suffix(suffix)?.parse::<u64>().ok();
    number("s")
        .or_else(|| number("min").map(|minutes| minutes * 60))
        .or_else(|| number("m").map(|minutes| minutes * 60))
        .unwrap_or_else(|| panic!("duration {duration:?}"))
}

#[test]
fn units_set_the_sandbox_reload_and_stop_directives() {
    let mut problems = Vec::new();
    for service in SERVICES {
        let directives = service_directives(&read(&service.unit_path()));
        let env = env_vars(&read(&service.env_path()));
        let value = |key: &str| {
            directives
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let env_value = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let env_file = format!("/etc/h2hop/{}.env", service.binary());
        let expected = [
            ("Type", "exec"),
            ("EnvironmentFile", env_file.as_str()),
            ("ExecReload", "/bin/kill -HUP $MAINPID"),
            ("KillSignal", "SIGTERM"),
            ("Restart", "on-failure"),
            ("DynamicUser", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("PrivateDevices", "yes"),
            ("NoNewPrivileges", "yes"),
            ("CapabilityBoundingSet", service.capabilities()),
            ("AmbientCapabilities", service.capabilities()),
            ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
            ("SystemCallFilter", "@system-service"),
            ("SystemCallArchitectures", "native"),
            ("LockPersonality", "yes"),
            ("MemoryDenyWriteExecute", "yes"),
            ("RestrictNamespaces", "yes"),
            ("ProtectKernelTunables", "yes"),
            ("ProtectKernelModules", "yes"),
            ("ProtectKernelLogs", "yes"),
            ("ProtectControlGroups", "yes"),
            ("ProtectClock", "yes"),
            ("ProtectHostname", "yes"),
            ("RestrictRealtime", "yes"),
            ("RestrictSUIDSGID", "yes"),
            ("UMask", "0077"),
        ];
        for (key, wanted) in expected {
            if value(key) != Some(wanted) {
                problems.push(format!(
                    "{}: {key}={:?}, not {wanted:?}",
                    service.binary(),
                    value(key)
                ));
            }
        }
        // systemd's SIGKILL must come after the drain, not during it.
        let drain_var = format!("{}_DRAIN_TIMEOUT", service.env_prefix());
        let drain = env_value(&drain_var).map(seconds);
        let stop = value("TimeoutStopSec").map(seconds);
        match (drain, stop) {
            (Some(drain), Some(stop)) if stop > drain => {}
            _ => problems.push(format!(
                "{}: TimeoutStopSec {stop:?} s not above {drain_var} {drain:?} s",
                service.binary()
            )),
        }
        // One descriptor per tunnel or client connection, at least.
        let nofile: u64 = value("LimitNOFILE")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        for (name, count) in &env {
            if name.ends_with("_MAX_TUNNELS") || name.ends_with("_MAX_CONNECTIONS") {
                let count: u64 = count.parse().unwrap();
                if nofile <= count {
                    problems.push(format!(
                        "{}: LimitNOFILE={nofile} not above {name}={count}",
                        service.binary()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The environment variable names a binary's `--help` lists.
async fn env_names(binary: &Path) -> BTreeSet<String> {
    let output = run(Command::new(binary).arg("--help").env_clear()).await;
    assert!(
        output.status.success(),
        "{} --help: {}",
        binary.display(),
        output.status
    );
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    let names: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split_once('=').map(|(name, _)| name.to_owned()))
        .collect();
    assert!(
        names.len() > 10,
        "{} --help lists {names:?}",
        binary.display()
    );
    names
}

#[tokio::test]
async fn env_files_name_only_read_variables_with_valid_values() {
    let bin_dir = h2hop_integration::binaries::dir();
    // The certificates the env files name, from a dev PKI; the front's
    // client-facing pair (edge*.pem) is the sidecar's, as a stand-in.
    let tls = tempfile::tempdir().unwrap();
    let pki = h2hop_certs::DevPki::generate(&["localhost".to_owned()]).unwrap();
    pki.write_to(tls.path(), false).unwrap();
    std::fs::copy(tls.path().join("sidecar.pem"), tls.path().join("edge.pem")).unwrap();
    std::fs::copy(
        tls.path().join("sidecar-key.pem"),
        tls.path().join("edge-key.pem"),
    )
    .unwrap();
    for service in SERVICES {
        let binary = bin_dir.join(service.binary());
        let known = env_names(&binary).await;
        let env = env_vars(&read(&service.env_path()));
        let unknown: Vec<&str> = env
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| !known.contains(*name))
            .collect();
        assert!(
            unknown.is_empty(),
            "{}.env: {} does not read {unknown:?}",
            service.binary(),
            service.binary()
        );
        let local = tls.path().display().to_string();
        let env = env
            .iter()
            .map(|(name, value)| (name, value.replace(INSTALLED_TLS, &local)));
        let output = run(Command::new(&binary)
            .arg("--check-config")
            .env_clear()
            .envs(env))
        .await;
        assert!(
            output.status.success(),
            "{} --check-config with {}.env: {}\n{}",
            service.binary(),
            service.binary(),
            output.status,
            lines(&output).join("\n")
        );
    }
}
