//! What the front's client-facing TLS listener offers, seen from outside
//! with `openssl s_client` (Debian `openssl`): TLS 1.3 and 1.2 only, and
//! only AEAD suites with ephemeral key exchange, as the README's Hardening
//! section lists them. A refusal must come from the front, as a TLS alert
//! it sends and a failed handshake it logs, not from the local openssl
//! declining to try: old versions are offered with `@SECLEVEL=0`, which
//! lets Debian's openssl send them. (rustls answers a TLS 1.0 or 1.1
//! ClientHello with handshake_failure rather than protocol_version: such
//! a hello has no signature_algorithms extension, which it checks first.)
//!
//! Without `openssl` the test says so loudly and passes, unless
//! `H2HOP_REQUIRE_EXTERNAL=1` (as CI sets), which makes it fail.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use h2hop_integration::harness::{Pair, within};
use h2hop_integration::logs::Captured;
use tokio::process::Command;

/// The TLS 1.3 suites the listener offers.
const TLS13_SUITES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// The TLS 1.2 suites the listener offers with an ECDSA certificate (the
/// test PKI's); with an RSA one, the same with ECDHE-RSA.
const TLS12_SUITES: [&str; 3] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
];

/// TLS 1.2 suites an old server might still take: CBC with HMAC, and a
/// key exchange without forward secrecy.
const TLS12_REFUSED: [&str; 3] = [
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-ECDSA-AES128-SHA",
    "AES128-GCM-SHA256",
];

/// The system `openssl`, or `None` after a loud skip line; with
/// `H2HOP_REQUIRE_EXTERNAL=1` a missing one fails the test.
fn openssl() -> Option<PathBuf> {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let path = PathBuf::from(dir).join("openssl");
        if path.is_file() {
            return Some(path);
        }
    }
    let required = std::env::var("H2HOP_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "openssl is not installed and H2HOP_REQUIRE_EXTERNAL=1"
    );
    eprintln!("!!! SKIPPED: openssl is not installed (apt-get install openssl)");
    None
}

/// How one `s_client` handshake ended.
#[derive(Debug)]
struct Handshake {
    /// The protocol and suite agreed, from `-brief`'s lines.
    agreed: Option<(String, String)>,
    /// Everything it printed, for the assertions' messages.
    output: String,
}

impl Handshake {
    /// The server refused it with a TLS alert: openssl names a received
    /// one ("sslv3 alert handshake failure ... SSL alert number 40"),
    /// where a local refusal says "no protocols available" or "no ciphers
    /// available" and sends nothing.
    fn refused_by_the_server(&self) -> bool {
        self.agreed.is_none() && self.output.contains("SSL alert number")
    }
}

/// One `openssl s_client` handshake with the listener at `addr`, `flags`
/// choosing versions and suites; its standard input is empty, so it
/// closes once the handshake is over.
async fn s_client(openssl: &PathBuf, addr: SocketAddr, flags: &[&str]) -> Handshake {
    let run = Command::new(openssl)
        .args(["s_client", "-brief", "-connect", &addr.to_string()])
        .args(["-servername", "localhost"])
        .args(flags)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("openssl s_client still running after 10 s")
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| {
        output
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.trim().to_owned())
    };
    let agreed = match (field("Protocol version:"), field("Ciphersuite:")) {
        (Some(version), Some(suite)) if output.contains("CONNECTION ESTABLISHED") => {
            Some((version, suite))
        }
        _ => None,
    };
    Handshake { agreed, output }
}

/// TLS 1.0 and 1.1 are refused by the front with an alert, each a failed
/// handshake in its log that blames the peer; TLS 1.2 and 1.3 complete.
#[tokio::test]
async fn tls_10_and_11_are_refused_and_12_and_13_accepted() {
    let Some(openssl) = openssl() else { return };
    let (logs, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder().h2c().client_tls().start().await.unwrap();
        let addr = pair.front_tls.unwrap();
        // SECLEVEL=0: Debian's openssl refuses to offer these versions
        // (and their SHA-1 signatures) at its default level 2.
        let legacy = ["-cipher", "DEFAULT:@SECLEVEL=0"];
        for version in ["-tls1", "-tls1_1"] {
            let handshake = s_client(&openssl, addr, &[&[version][..], &legacy].concat()).await;
            assert!(
                handshake.refused_by_the_server(),
                "{version}: not refused by the server:\n{}",
                handshake.output
            );
        }
        let failed = ["client TLS handshake failed", "peer is incompatible"];
        logs.wait_for(&failed).await;
        assert_eq!(logs.lines_with(&failed).len(), 2, "{}", logs.text());
        for (flag, version) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
            let handshake = s_client(&openssl, addr, &[flag]).await;
            let agreed = handshake.agreed.as_ref().map(|(v, _)| v.as_str());
            assert_eq!(agreed, Some(version), "{}", handshake.output);
        }
    })
    .await;
}

/// Each suite the README lists completes a handshake on its own, and a
/// TLS 1.2 client offering only CBC or static-RSA suites is refused by the
/// front.
#[tokio::test]
async fn only_the_listed_suites_are_offered() {
    let Some(openssl) = openssl() else { return };
    // Captured though unread: with a single subscriber in the process,
    // tracing asks the thread that first hits a callsite whether it is on,
    // and this one would turn the front's log lines off for the test above.
    let (_logs, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder().h2c().client_tls().start().await.unwrap();
        let addr = pair.front_tls.unwrap();
        for suite in TLS13_SUITES {
            let flags = ["-tls1_3", "-ciphersuites", suite];
            let handshake = s_client(&openssl, addr, &flags).await;
            let agreed = handshake.agreed.as_ref().map(|(_, s)| s.as_str());
            assert_eq!(agreed, Some(suite), "{}", handshake.output);
        }
        for suite in TLS12_SUITES {
            let handshake = s_client(&openssl, addr, &["-tls1_2", "-cipher", suite]).await;
            let agreed = handshake.agreed.as_ref().map(|(_, s)| s.as_str());
            assert_eq!(agreed, Some(suite), "{}", handshake.output);
        }
        for suite in TLS12_REFUSED {
            let handshake = s_client(&openssl, addr, &["-tls1_2", "-cipher", suite]).await;
            assert!(
                handshake.refused_by_the_server(),
                "{suite}: not refused by the server:\n{}",
                handshake.output
            );
        }
    })
    .await;
}
