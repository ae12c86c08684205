//! The front's client-facing TLS listener configured as an operator would:
//! certificates chosen by SNI from the `--config` file's `[[certificate]]`
//! tables with `--tls-cert` as the default, `--tls-min-version`,
//! `--tls-ciphers`, OCSP staples (`--tls-ocsp` and a table's `ocsp`), and
//! their reload, in-process through the reload handle and as the binary on
//! a real SIGHUP.
//!
//! Each client is a rustls client built here, whose certificate verifier
//! records what the front showed (the leaf and the stapled OCSP bytes)
//! instead of judging it: these tests are about which certificate the
//! front picks, not whether a client trusts it.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser as _;
use h2hop::tls::reload::{ReloadReport, Reloader};
use h2hop_certs::DevPki;
use h2hop_integration::binaries;
use h2hop_integration::harness::{loopback, within};
use h2hop_integration::process::{Process, Signal};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CipherSuite, DigitallySignedStruct, ProtocolVersion, SignatureScheme, SupportedProtocolVersion,
};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Any one-label name in front of this is served the wildcard certificate.
const WILDCARD: &str = "*.example.com";
/// Served the exact-name certificate.
const API: &str = "api.example.com";
/// The shortest OCSPResponse (RFC 6960 §4.2.1): a SEQUENCE holding only
/// its status, `successful` (0), without response bytes. The front checks
/// only that it is a SEQUENCE; openssl prints the status.
const OCSP_DEFAULT: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x00];
/// Another one, status `tryLater` (3), for the exact-name certificate.
const OCSP_API: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x03];

/// What a client saw of a completed handshake.
#[derive(Debug)]
struct Seen {
    /// The leaf the front showed.
    leaf: CertificateDer<'static>,
    /// The stapled OCSP response; empty when none.
    ocsp: Vec<u8>,
    version: ProtocolVersion,
    suite: CipherSuite,
}

/// A verifier that accepts any certificate and records it and its staple;
/// handshake signatures are still checked, so the front must hold the key.
#[derive(Debug)]
struct Recorder {
    seen: Mutex<Option<(CertificateDer<'static>, Vec<u8>)>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = (end_entity.clone().into_owned(), ocsp_response.to_vec());
        *self.seen.lock().unwrap() = Some(seen);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// How a test client connects.
#[derive(Clone, Copy)]
struct Client<'a> {
    /// The SNI name; `None` sends none.
    sni: Option<&'a str>,
    versions: &'a [&'static SupportedProtocolVersion],
    /// The only suites offered; `None` offers all of ring's.
    suites: Option<&'a [CipherSuite]>,
}

const TLS12_AND_13: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

impl<'a> Client<'a> {
    fn sni(name: &'a str) -> Self {
        Client {
            sni: Some(name),
            versions: TLS12_AND_13,
            suites: None,
        }
    }

    fn no_sni() -> Self {
        Client {
            sni: None,
            ..Client::sni("unused")
        }
    }

    /// A handshake with the front's TLS listener at `addr`.
    async fn handshake(self, addr: SocketAddr) -> std::io::Result<Seen> {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(suites) = self.suites {
            provider
                .cipher_suites
                .retain(|suite| suites.contains(&suite.suite()));
        }
        let recorder = Arc::new(Recorder {
            seen: Mutex::new(None),
            algorithms: provider.signature_verification_algorithms,
        });
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(self.versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth();
        config.enable_sni = self.sni.is_some();
        let name = ServerName::try_from(self.sni.unwrap_or("localhost").to_owned()).unwrap();
        let tcp = TcpStream::connect(addr).await?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        let connection = tls.get_ref().1;
        let (leaf, ocsp) = recorder.seen.lock().unwrap().take().unwrap();
        Ok(Seen {
            leaf,
            ocsp,
            version: connection.protocol_version().unwrap(),
            suite: connection.negotiated_cipher_suite().unwrap().suite(),
        })
    }
}

/// A certificate for `sans`, written as `<stem>.pem` and `<stem>-key.pem`
/// in `dir`; its leaf.
fn write_cert(dir: &Path, stem: &str, sans: &[&str]) -> CertificateDer<'static> {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let pki = DevPki::generate(&sans).unwrap();
    std::fs::write(dir.join(format!("{stem}.pem")), &pki.server().cert).unwrap();
    std::fs::write(dir.join(format!("{stem}-key.pem")), &pki.server().key).unwrap();
    pki.server_chain().remove(0)
}

/// The leaves of the three certificates [`Site::new`] writes.
struct Leaves {
    default: CertificateDer<'static>,
    api: CertificateDer<'static>,
    wildcard: CertificateDer<'static>,
}

/// A directory with a default certificate (`localhost`), one for
/// [`API`] and one for [`WILDCARD`], their OCSP files, and a `front.toml`
/// that lists the latter two.
struct Site {
    dir: TempDir,
    leaves: Leaves,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let leaves = Leaves {
            default: write_cert(path, "default", &["localhost"]),
            api: write_cert(path, "api", &[API]),
            wildcard: write_cert(path, "wildcard", &[WILDCARD]),
        };
        std::fs::write(path.join("default.ocsp"), OCSP_DEFAULT).unwrap();
        std::fs::write(path.join("api.ocsp"), OCSP_API).unwrap();
        // Only handshakes are tested: the cluster is never dialled.
        let config = format!(
            r#"
            [[cluster]]
            name = "web"
            endpoints = ["127.0.0.1:1"]
            h2c = true

            [[route]]
            cluster = "web"

            [[certificate]]
            names = ["{API}"]
            cert = "api.pem"
            key = "api-key.pem"
            ocsp = "api.ocsp"

            [[certificate]]
            names = ["{WILDCARD}"]
            cert = "wildcard.pem"
            key = "wildcard-key.pem"
            "#
        );
        std::fs::write(path.join("front.toml"), config).unwrap();
        Site { dir, leaves }
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The flags of a front serving this site's certificates, and `extra`.
    fn flags(&self, extra: &[&str]) -> Vec<String> {
        let mut flags: Vec<String> = vec![
            "--config".into(),
            self.file("front.toml"),
            "--tls-listen".into(),
            "127.0.0.1:0".into(),
            "--tls-cert".into(),
            self.file("default.pem"),
            "--tls-key".into(),
            self.file("default-key.pem"),
        ];
        flags.extend(extra.iter().map(|flag| flag.to_string()));
        flags
    }
}

/// A front in-process, configured by `flags` as `main` would be; its TLS
/// listener's address and its reload handle.
async fn start_front(flags: &[String], stop: &CancellationToken) -> (SocketAddr, Reloader) {
    let (addr, reloader, _) = start_front_reloadable(flags, stop).await;
    (addr, reloader)
}

/// [`start_front`], with the handle that reloads its `--config` file too.
async fn start_front_reloadable(
    flags: &[String],
    stop: &CancellationToken,
) -> (SocketAddr, Reloader, h2hop_front::RoutingReload) {
    let argv = std::iter::once("h2hop-front".to_owned()).chain(flags.iter().cloned());
    let config = h2hop_front::args::Args::try_parse_from(argv)
        .unwrap()
        .config()
        .unwrap();
    let reloader = config.reloader();
    let routing_reload = config.routing_reload.clone();
    let tls = loopback().await.unwrap();
    let addr = tls.local_addr().unwrap();
    let listeners = h2hop_front::Listeners {
        plain: loopback().await.unwrap(),
        tls: Some(tls),
        admin: None,
        tcp: Vec::new(),
    };
    tokio::spawn(h2hop_front::run(config, listeners, stop.child_token()));
    (addr, reloader, routing_reload)
}

/// The certificate shown for each SNI name: the exact one, else the
/// wildcard for one label (RFC 6125 §6.4.3), else the default, which also
/// serves clients without SNI; names match whatever their case.
#[tokio::test]
async fn sni_picks_exact_then_wildcard_then_default() {
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let site = Site::new();
        let (addr, _) = start_front(&site.flags(&[]), &stop).await;
        let leaves = &site.leaves;
        let cases = [
            ("api.example.com", &leaves.api),
            ("API.Example.COM", &leaves.api),
            ("www.example.com", &leaves.wildcard),
            ("a.b.example.com", &leaves.default),
            ("example.com", &leaves.default),
            ("other.test", &leaves.default),
            ("localhost", &leaves.default),
        ];
        for (name, leaf) in cases {
            let seen = Client::sni(name).handshake(addr).await.unwrap();
            assert!(seen.leaf == *leaf, "{name}: another certificate");
        }
        let seen = Client::no_sni().handshake(addr).await.unwrap();
        assert!(seen.leaf == leaves.default, "no SNI: not the default");
    })
    .await;
}

/// `--tls-min-version 1.3` refuses a client that only speaks TLS 1.2; the
/// default (1.2) accepts it, and still prefers 1.3.
#[tokio::test]
async fn min_version_13_refuses_a_tls12_client_and_the_default_accepts_it() {
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let site = Site::new();
        let tls12_only = Client {
            versions: &[&rustls::version::TLS12],
            ..Client::sni("localhost")
        };
        let (default, _) = start_front(&site.flags(&[]), &stop).await;
        let seen = tls12_only.handshake(default).await.unwrap();
        assert_eq!(seen.version, ProtocolVersion::TLSv1_2);
        let seen = Client::sni("localhost").handshake(default).await.unwrap();
        assert_eq!(seen.version, ProtocolVersion::TLSv1_3);

        let (strict, _) = start_front(&site.flags(&["--tls-min-version", "1.3"]), &stop).await;
        let err = tls12_only.handshake(strict).await.unwrap_err();
        assert!(err.to_string().contains("ProtocolVersion"), "{err}");
        let seen = Client::sni(API).handshake(strict).await.unwrap();
        assert_eq!(seen.version, ProtocolVersion::TLSv1_3);
        assert!(seen.leaf == site.leaves.api);
    })
    .await;
}

/// `--tls-ciphers` is all the front offers: a client offering only a suite
/// left out fails, in TLS 1.3 and 1.2; one offering a listed suite gets it.
#[tokio::test]
async fn cipher_list_restricts_what_clients_negotiate() {
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let site = Site::new();
        let ciphers = "TLS_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256";
        let (addr, _) = start_front(&site.flags(&["--tls-ciphers", ciphers]), &stop).await;
        fn offering(suites: &[CipherSuite]) -> Client<'_> {
            Client {
                suites: Some(suites),
                ..Client::sni("localhost")
            }
        }
        let excluded = [
            &[CipherSuite::TLS13_AES_128_GCM_SHA256][..],
            &[CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256],
        ];
        for suite in excluded {
            let err = offering(suite).handshake(addr).await.unwrap_err();
            assert!(
                err.to_string().contains("HandshakeFailure"),
                "{suite:?}: {err}"
            );
        }
        let listed = [
            CipherSuite::TLS13_AES_256_GCM_SHA384,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ];
        for suite in listed {
            let seen = offering(&[suite]).handshake(addr).await;
            assert_eq!(seen.unwrap().suite, suite);
        }
        // A client offering everything gets TLS 1.3 with the one TLS 1.3
        // suite listed.
        let seen = Client::sni("localhost").handshake(addr).await.unwrap();
        assert_eq!(seen.suite, CipherSuite::TLS13_AES_256_GCM_SHA384);
    })
    .await;
}

/// A client asking for OCSP gets each certificate's own staple
/// (`--tls-ocsp` for the default, `ocsp` in a `[[certificate]]`), over
/// TLS 1.3 and 1.2; a certificate without one staples nothing.
#[tokio::test]
async fn ocsp_staples_reach_the_client() {
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let site = Site::new();
        let ocsp = site.file("default.ocsp");
        let (addr, _) = start_front(&site.flags(&["--tls-ocsp", &ocsp]), &stop).await;
        for versions in [TLS12_AND_13, &[&rustls::version::TLS12][..]] {
            for (name, staple) in [
                ("localhost", &OCSP_DEFAULT[..]),
                (API, &OCSP_API[..]),
                ("www.example.com", &[][..]),
            ] {
                let client = Client {
                    versions,
                    ..Client::sni(name)
                };
                let seen = client.handshake(addr).await.unwrap();
                assert_eq!(seen.ocsp, staple, "{name} over {:?}", seen.version);
            }
        }
    })
    .await;
}

/// What `openssl s_client -status` prints of a handshake with `addr`
/// asking for `name`, without spaces (its versions space `subject=` lines
/// differently).
async fn s_client_status(openssl: &Path, addr: SocketAddr, name: &str) -> String {
    let run = tokio::process::Command::new(openssl)
        .args(["s_client", "-status", "-connect", &addr.to_string()])
        .args(["-servername", name])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("openssl s_client still running after 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.replace(' ', "")
}

/// The same choices and staples seen by another TLS stack, the system
/// `openssl s_client` (skipped loudly without it, failed with
/// `H2HOP_REQUIRE_EXTERNAL=1`): the subject of the certificate for each
/// SNI name, and the staple's status or its absence.
#[tokio::test]
async fn openssl_sees_each_names_certificate_and_staple() {
    let Some(openssl) = h2hop_integration::process::find_program("openssl") else {
        let required = std::env::var("H2HOP_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "openssl is not installed and H2HOP_REQUIRE_EXTERNAL=1"
        );
        eprintln!("!!! SKIPPED: openssl is not installed (apt-get install openssl)");
        return;
    };
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let site = Site::new();
        let ocsp = site.file("default.ocsp");
        let (addr, _) = start_front(&site.flags(&["--tls-ocsp", &ocsp]), &stop).await;
        for (name, subject, staple) in [
            (
                "localhost",
                "CN=localhost",
                "OCSPResponseStatus:successful(0x0)",
            ),
            (
                API,
                "CN=api.example.com",
                "OCSPResponseStatus:trylater(0x3)",
            ),
            (
                "www.example.com",
                "CN=*.example.com",
                "OCSPresponse:noresponsesent",
            ),
            (
                "a.b.example.com",
                "CN=localhost",
                "OCSPResponseStatus:successful(0x0)",
            ),
        ] {
            let output = s_client_status(&openssl, addr, name).await;
            assert!(
                output.contains(&format!("subject={subject}")),
                "{name}: {output}"
            );
            assert!(output.contains(staple), "{name}: {output}");
        }
    })
    .await;
}

/// The reload handle re-reads every file: a replaced SNI certificate (and
/// its new staple) is what new handshakes see; a broken file anywhere
/// keeps the whole set that was in use.
#[tokio::test]
async fn reload_swaps_an_sni_certificate_and_a_broken_file_keeps_the_set() {
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let site = Site::new();
        let (addr, reloader) = start_front(&site.flags(&[]), &stop).await;
        assert_eq!(reloader.len(), 1, "one set for the TLS listener");
        let ok = ReloadReport {
            reloaded: 1,
            failed: 0,
        };

        let new_api = write_cert(site.dir.path(), "api", &[API]);
        std::fs::write(site.dir.path().join("api.ocsp"), OCSP_DEFAULT).unwrap();
        let seen = Client::sni(API).handshake(addr).await.unwrap();
        assert!(seen.leaf == site.leaves.api, "the old one until the reload");
        assert_eq!(reloader.reload(), ok);
        let seen = Client::sni(API).handshake(addr).await.unwrap();
        assert!(seen.leaf == new_api, "the new certificate after the reload");
        assert_eq!(seen.ocsp, OCSP_DEFAULT);

        // A wildcard certificate whose key is not its own, and a
        // certificate that no longer covers its configured name.
        write_cert(site.dir.path(), "stray", &["localhost"]);
        let wildcard_key = site.dir.path().join("wildcard-key.pem");
        std::fs::copy(site.dir.path().join("stray-key.pem"), &wildcard_key).unwrap();
        write_cert(site.dir.path(), "default", &["localhost"]);
        let failed = ReloadReport {
            reloaded: 0,
            failed: 1,
        };
        assert_eq!(reloader.reload(), failed);
        write_cert(site.dir.path(), "wildcard", &["other.example.com"]);
        assert_eq!(reloader.reload(), failed);
        for (name, leaf) in [
            (API, &new_api),
            ("www.example.com", &site.leaves.wildcard),
            ("localhost", &site.leaves.default),
        ] {
            let seen = Client::sni(name).handshake(addr).await.unwrap();
            assert!(seen.leaf == *leaf, "{name}: the set in use changed");
        }
    })
    .await;
}

/// Re-reading `--config` re-reads its `[[certificate]]` list: a table
/// added serves its name, one removed leaves its name to the default, and
/// a table that does not load changes nothing (nor the routing); a SIGHUP
/// after that reloads the files of the list now in use.
#[tokio::test]
async fn a_config_reload_takes_the_new_certificate_list() {
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let site = Site::new();
        let (addr, reloader, routing) = start_front_reloadable(&site.flags(&[]), &stop).await;
        let shop = write_cert(site.dir.path(), "shop", &["shop.test"]);
        let seen = Client::sni("shop.test").handshake(addr).await.unwrap();
        assert!(seen.leaf == site.leaves.default, "no table names it yet");

        // The wildcard table replaced by one for shop.test.
        let toml = site.dir.path().join("front.toml");
        let text = std::fs::read_to_string(&toml).unwrap();
        let (head, _wildcard) = text.rsplit_once("[[certificate]]").unwrap();
        let with_shop = format!(
            "{head}[[certificate]]\nnames = [\"shop.test\"]\ncert = \"shop.pem\"\nkey = \"shop-key.pem\"\n"
        );
        std::fs::write(&toml, &with_shop).unwrap();
        let summary = routing.reload().unwrap();
        assert_eq!(summary.certificates, 2);
        for (name, leaf) in [
            ("shop.test", &shop),
            (API, &site.leaves.api),
            ("www.example.com", &site.leaves.default),
        ] {
            let seen = Client::sni(name).handshake(addr).await.unwrap();
            assert!(seen.leaf == *leaf, "{name}: not the certificate of the new list");
        }

        // A table whose certificate does not cover its name: refused whole.
        let broken = with_shop.replace("names = [\"shop.test\"]", "names = [\"other.test\"]");
        std::fs::write(&toml, broken).unwrap();
        let err = routing.reload().unwrap_err();
        assert!(
            matches!(err, h2hop_front::ReloadError::ClientTls { .. }),
            "{err}"
        );
        let seen = Client::sni("shop.test").handshake(addr).await.unwrap();
        assert!(seen.leaf == shop, "the list in use changed");

        // SIGHUP's certificate reload now reads shop.pem, in use.
        let new_shop = write_cert(site.dir.path(), "shop", &["shop.test"]);
        assert_eq!(reloader.reload().failed, 0);
        let seen = Client::sni("shop.test").handshake(addr).await.unwrap();
        assert!(seen.leaf == new_shop, "the reload read the old list's files");
    })
    .await;
}

/// How long the binary may take to log what the test waits for.
const LOG_WAIT: Duration = Duration::from_secs(10);

/// The binary on a real SIGHUP: a replaced SNI certificate is served to
/// new handshakes and the reload is logged with its files; a broken file
/// is logged as a failure naming it and changes nothing.
#[tokio::test]
async fn binary_reloads_sni_certificates_on_sighup() {
    let bin = binaries::dir();
    within(async {
        let site = Site::new();
        let mut flags = site.flags(&["--tls-min-version", "1.3"]);
        flags.extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
        let mut front = Process::start(&bin.join("h2hop-front"), &flags)
            .await
            .unwrap();
        let addr = front.ready_addr("tls_listen").unwrap();
        let seen = Client::sni("www.example.com")
            .handshake(addr)
            .await
            .unwrap();
        assert!(seen.leaf == site.leaves.wildcard);

        let new_wildcard = write_cert(site.dir.path(), "wildcard", &[WILDCARD]);
        front.signal(Signal::Hup).unwrap();
        let reloaded = front
            .wait_for_line(&["certificates reloaded"], LOG_WAIT)
            .await
            .unwrap();
        assert!(reloaded.contains("wildcard.pem"), "{reloaded}");
        let seen = Client::sni("www.example.com")
            .handshake(addr)
            .await
            .unwrap();
        assert!(seen.leaf == new_wildcard, "not the new certificate");

        let key: PathBuf = site.dir.path().join("api-key.pem");
        std::fs::write(&key, "not a key").unwrap();
        front.signal(Signal::Hup).unwrap();
        let failed = front
            .wait_for_line(&["certificate reload failed"], LOG_WAIT)
            .await
            .unwrap();
        assert!(failed.contains("api-key.pem"), "{failed}");
        let seen = Client::sni(API).handshake(addr).await.unwrap();
        assert!(seen.leaf == site.leaves.api, "the set in use changed");

        front.signal(Signal::Term).unwrap();
        let status = front.wait(LOG_WAIT).await.unwrap();
        assert_eq!(status.code(), Some(0), "the front exited with {status}");
    })
    .await;
}
