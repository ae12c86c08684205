//! Real conformance: the WebSocket cases of the Autobahn testsuite give the
//! same verdicts through the pair as against the app directly.
//!
//! The cases are the suite's own files, read from its PyPI sdist (never
//! copied into this repository; `H2HOP_AUTOBAHN_SDIST` names the tarball or
//! the directory `pip download --no-deps autobahntestsuite==25.10.1 -d DIR`
//! filled). The suite runs on Python 2 only, so `integration/autobahn/`
//! holds a Python 3 runner of ours that translates the case files at load
//! time and drives them with a client that behaves as the suite's fuzzing
//! client does (its `runner.py` explains how).
//!
//! One `h2hop-echo` (tokio-tungstenite) serves both runs: first direct, then
//! behind the real `h2hop-sidecar` and `h2hop-front` binaries over mutual
//! TLS. Every case must get the same verdict, close verdict and close code
//! from the server both times (the close code only where the suite defines
//! the outcome, so not for INFORMATIONAL cases); the direct run must have
//! run every case with a sane share of OK, so a broken runner fails the
//! test instead of agreeing with itself. All cases run, 9.x (16 MiB
//! messages, 1000-message round trips) included: about a minute for both
//! runs on two cores. Cases 12.x and 13.x offer permessage-deflate, which
//! the echo declines, so both runs report them UNIMPLEMENTED.
//!
//! Without the sdist or Python 3 with lib2to3, the test
//! says so loudly and passes, unless `H2HOP_REQUIRE_EXTERNAL=1` (as CI
//! sets), which makes it fail.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use h2hop_certs::DevPki;
use h2hop_integration::binaries;
use h2hop_integration::process::{Output, Process, find_program};
use serde_json::{Value, json};

/// Where the sdist is: its tarball, or the directory `pip download` wrote.
const SDIST_ENV: &str = "H2HOP_AUTOBAHN_SDIST";
/// The bound on one run of the runner (about 20 s direct and 40 s through
/// the pair with debug builds on two cores).
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// The cases of autobahntestsuite 25.10.1.
const SUITE_CASES: usize = 517;
/// OK verdicts a conformant echo gets directly (296 with tokio-tungstenite
/// 0.30; the rest are 12.x/13.x UNIMPLEMENTED and a few NON-STRICT or
/// INFORMATIONAL); far fewer means the runner, not the app, is broken.
const MIN_DIRECT_OK: usize = 280;

/// Says why the test cannot run: a loud skip, or a failure when
/// `H2HOP_REQUIRE_EXTERNAL=1`.
fn unavailable(why: &str) {
    let required = std::env::var("H2HOP_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    assert!(!required, "{why} and H2HOP_REQUIRE_EXTERNAL=1");
    eprintln!("!!! SKIPPED autobahn: {why}");
}

/// The sdist, and a Python 3 that still has lib2to3 (removed in 3.13).
fn prerequisites() -> Option<(PathBuf, PathBuf)> {
    let Some(sdist) = std::env::var_os(SDIST_ENV).map(PathBuf::from) else {
        unavailable(&format!(
            "{SDIST_ENV} is not set (pip download --no-deps autobahntestsuite==25.10.1 -d DIR)"
        ));
        return None;
    };
    if !sdist.exists() {
        unavailable(&format!("{SDIST_ENV}={} does not exist", sdist.display()));
        return None;
    }
    let Some(python) = find_program("python3") else {
        unavailable("python3 is not installed");
        return None;
    };
    let lib2to3 = Command::new(&python)
        .args(["-W", "ignore", "-c", "import lib2to3.refactor"])
        .status()
        .is_ok_and(|status| status.success());
    if !lib2to3 {
        unavailable("python3 has no lib2to3 (Python 3.12 or older needed)");
        return None;
    }
    Some((sdist, python))
}

/// What h2hop-sidecar logs for each RFC 8441 stream when it ends: its
/// access line with `kind="tunnel"` and the `:protocol`.
const TUNNEL_MARKS: &[&str] = &["h2hop::access", "kind=\"tunnel\"", "protocol=\"websocket\""];

/// The real `h2hop-sidecar` and `h2hop-front` binaries of `bin` over mutual
/// TLS in front of `app`, one worker thread each; killed on drop.
struct BinaryPair {
    front: Process,
    sidecar: Process,
    _certs: tempfile::TempDir,
}

impl BinaryPair {
    async fn start(bin: &Path, app: SocketAddr) -> BinaryPair {
        let certs = tempfile::tempdir().unwrap();
        let pki = DevPki::generate(&["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        pki.write_to(certs.path(), false).unwrap();
        let file = |name: &str| certs.path().join(name).display().to_string();
        let common = [
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--log-level",
            "info",
        ];
        let mut flags = common.map(str::to_owned).to_vec();
        flags.extend(["--app".to_owned(), app.to_string()]);
        for (flag, name) in [
            ("--cert", "sidecar.pem"),
            ("--key", "sidecar-key.pem"),
            ("--client-ca", "ca.pem"),
        ] {
            flags.extend([flag.to_owned(), file(name)]);
        }
        let sidecar = Process::start(&bin.join("h2hop-sidecar"), &flags)
            .await
            .unwrap();
        let mut flags = common.map(str::to_owned).to_vec();
        flags.extend([
            "--sidecar".to_owned(),
            sidecar.listen().unwrap().to_string(),
        ]);
        for (flag, name) in [
            ("--ca", "ca.pem"),
            ("--cert", "front.pem"),
            ("--key", "front-key.pem"),
        ] {
            flags.extend([flag.to_owned(), file(name)]);
        }
        let front = Process::start(&bin.join("h2hop-front"), &flags)
            .await
            .unwrap();
        BinaryPair {
            front,
            sidecar,
            _certs: certs,
        }
    }

    /// The sidecar's access lines of WebSocket tunnels.
    fn tunnels(&self) -> Vec<String> {
        self.sidecar.lines_with(TUNNEL_MARKS)
    }

    /// Both processes' last log lines, for messages.
    fn log_tails(&self) -> String {
        let tail = |process: &Process| {
            let lines = process.lines();
            lines[lines.len().saturating_sub(20)..].join("\n")
        };
        format!(
            "\n--- sidecar\n{}\n--- front\n{}",
            tail(&self.sidecar),
            tail(&self.front)
        )
    }
}

/// Runs every case against `addr` and returns the runner's report.
async fn run_cases(python: &Path, sdist: &Path, addr: SocketAddr, name: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("{name}.json"));
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("autobahn/runner.py");
    let started = Instant::now();
    let mut command = Command::new(python);
    command
        // -B: no __pycache__ in the source tree.
        .arg("-B")
        .arg(&runner)
        .arg("--sdist")
        .arg(sdist)
        .arg("--url")
        .arg(format!("ws://{addr}/ws"))
        .arg("--json")
        .arg(&out);
    let mut child = Process::spawn("the Autobahn runner", &mut command, Output::Lines).unwrap();
    let status = child
        .wait(RUN_LIMIT)
        .await
        .unwrap_or_else(|err| panic!("the {name} run: {err:#}"));
    let log = child.lines();
    let tail = &log[log.len().saturating_sub(15)..];
    assert!(
        status.success(),
        "the {name} run failed ({status}):\n{}",
        tail.join("\n")
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    eprintln!(
        "autobahn {name}: {} cases in {:.1?}: {}",
        report["order"].as_array().map_or(0, Vec::len),
        started.elapsed(),
        verdict_counts(&report)
    );
    report
}

/// `OK=296 NON-STRICT=2 ...`: how many cases got each verdict.
fn verdict_counts(report: &Value) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for case in report["cases"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        let verdict = case["behavior"].as_str().unwrap_or("?").to_owned();
        *counts.entry(verdict).or_default() += 1;
    }
    counts
        .iter()
        .map(|(verdict, n)| format!("{verdict}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What must not change between the runs: the verdict, the close verdict
/// and the close code the server sent. An INFORMATIONAL case's outcome is
/// left to the implementation (7.1.6: a Close right behind a 256 KiB
/// message, answered or not depending on how the echo's reads fall, which
/// varies directly too), so its close code is not compared.
fn verdict(case: &Value) -> (Value, Value, Value) {
    let code = if case["behavior"] == "INFORMATIONAL" {
        Value::Null
    } else {
        case["remoteCloseCode"].clone()
    };
    (
        case["behavior"].clone(),
        case["behaviorClose"].clone(),
        code,
    )
}

/// One line per case whose verdict differs, or that only one run has.
fn differences(direct: &Value, pair: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let direct = direct["cases"].as_object().unwrap_or(&empty);
    let pair = pair["cases"].as_object().unwrap_or(&empty);
    let mut ids: Vec<&String> = direct.keys().chain(pair.keys()).collect();
    ids.sort_by_key(|id| {
        id.split('.')
            .map(|part| part.parse::<u32>().unwrap_or(u32::MAX))
            .collect::<Vec<_>>()
    });
    ids.dedup();
    ids.into_iter()
        .filter_map(|id| match (direct.get(id), pair.get(id)) {
            (Some(d), Some(p)) if verdict(d) == verdict(p) => None,
            (Some(d), Some(p)) => Some(format!(
                "{id}: direct {:?} / pair {:?} ({} / {})",
                verdict(d),
                verdict(p),
                p["result"],
                p["resultClose"]
            )),
            (d, _) => Some(format!(
                "{id}: only in the {} run",
                if d.is_some() { "direct" } else { "pair" }
            )),
        })
        .collect()
}

#[tokio::test]
async fn autobahn_cases_get_the_same_verdicts_through_the_pair() {
    let Some((sdist, python)) = prerequisites() else {
        return;
    };
    let bin = binaries::dir();
    let program = Path::new(env!("CARGO_BIN_EXE_h2hop-echo"));
    let app = Process::start(program, &["--listen", "127.0.0.1:0"])
        .await
        .unwrap();
    let echo = app.listen().unwrap();
    let direct = run_cases(&python, &sdist, echo, "direct").await;

    let pair = BinaryPair::start(&bin, echo).await;
    let through = run_cases(&python, &sdist, pair.front.listen().unwrap(), "pair").await;
    // The pair run crossed the HTTP/2 hop: the sidecar logged tunnels.
    assert!(!pair.tunnels().is_empty(), "{}", pair.log_tails());

    let cases = direct["order"].as_array().unwrap();
    assert_eq!(cases.len(), SUITE_CASES, "{direct:#}");
    let ok = direct["cases"]
        .as_object()
        .unwrap()
        .values()
        .filter(|case| case["behavior"] == "OK")
        .count();
    assert!(
        ok >= MIN_DIRECT_OK,
        "only {ok} OK directly: {}",
        verdict_counts(&direct)
    );
    let differ = differences(&direct, &through);
    assert!(
        differ.is_empty(),
        "{} of {} cases differ through the pair:\n{}\n{}",
        differ.len(),
        cases.len(),
        differ.join("\n"),
        pair.log_tails()
    );
}

/// The comparison itself: a changed close code, a changed verdict and a
/// missing case are each reported; an identical case is not, nor the close
/// code of an INFORMATIONAL one.
#[test]
fn differences_report_every_changed_or_missing_case() {
    let case = |behavior: &str, code: Value| {
        json!({"behavior": behavior, "behaviorClose": "OK", "remoteCloseCode": code,
               "result": "r", "resultClose": "rc"})
    };
    let direct = json!({"cases": {
        "1.1.1": case("OK", json!(1000)),
        "2.5": case("OK", Value::Null),
        "6.4.3": case("NON-STRICT", Value::Null),
        "7.1.6": case("INFORMATIONAL", Value::Null),
        "10.1.1": case("OK", json!(1000)),
    }});
    let pair = json!({"cases": {
        "1.1.1": case("OK", json!(1000)),
        "2.5": case("OK", json!(1002)),
        "6.4.3": case("FAILED", Value::Null),
        "7.1.6": case("INFORMATIONAL", json!(1000)),
    }});
    let found = differences(&direct, &pair);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("2.5: direct"), "{found:#?}");
    assert!(found[1].starts_with("6.4.3: direct"), "{found:#?}");
    assert_eq!(found[2], "10.1.1: only in the direct run");
}
