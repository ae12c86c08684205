//! The HAProxy pair (Debian `haproxy`, 2.6): one HAProxy as the front
//! (HTTP/1.1 in, `server ... proto h2` toward the sidecar) and a second as
//! the sidecar (`bind ... proto h2` in, HTTP/1.1 to the app).
//!
//! HAProxy 2.4 and later speak RFC 8441 on HTTP/2 connections in both
//! directions: its H2 multiplexer turns an incoming extended CONNECT into
//! an HTTP/1.1-style upgrade internally, and an outgoing upgrade into an
//! extended CONNECT when the server advertised
//! `SETTINGS_ENABLE_CONNECT_PROTOCOL`.
//!
//! For gRPC every hop is HTTP/2 with prior knowledge: the front's `bind`
//! and the sidecar's `server` toward the app get `proto h2` too, and the
//! sidecar shares its app connections as the front does (`http-reuse
//! always`).
//!
//! With [`Hop::Mtls`] (the `haproxy-mtls` system) the middle hop is HTTP/2
//! over TLS: the front's `server` gets `ssl crt ... verify required alpn
//! h2` and the sidecar's `bind` `ssl crt ... verify required alpn h2`, so
//! each side verifies the other's certificate ([`super::hop_pki`]).
//!
//! Input: the app address, the traffic, the middle hop, the worker count
//! and a scratch directory.
//! Output: a [`Plan`] for [`super::start`].

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;
use h2hop_integration::process::{find_program, free_port};
use h2hop_integration::scratch::Scratch;

use super::hop_pki::{self, HopPki, SIDECAR_NAME};
use super::{Evidence, Hop, Plan, Traffic};

/// A sidecar log line that shows a WebSocket arriving over HTTP/2. HAProxy
/// logs the extended CONNECT as the internal `GET` upgrade it became, so
/// the line reads `GET /ws HTTP/2.0 101 upgrade=websocket`: an HTTP/2
/// request may not carry `Upgrade` (RFC 9113 §8.2.2), so a WebSocket over
/// HTTP/2 can only have come as an RFC 8441 CONNECT.
const CONNECT_MARKS: &[&str] = &[" HTTP/2.0 ", "upgrade=websocket"];

/// [`CONNECT_MARKS`] over TLS, with the CN of the client certificate the
/// sidecar verified.
const MTLS_MARKS: &[&str] = &[
    " HTTP/2.0 ",
    "upgrade=websocket",
    "tls=TLSv1.",
    "client=h2hop-front",
];

/// The end of the common log format, and what the sidecar of
/// [`Hop::Mtls`] logs there too: TLS version and cipher toward the front,
/// and the CN of its client certificate.
const LOG_FORMAT_END: &str = r#"ws-version=%[capture.req.hdr(1)]""#;
const MTLS_LOG_FORMAT_END: &str =
    r#"ws-version=%[capture.req.hdr(1)] tls=%sslv cipher=%sslc client=%[ssl_c_s_dn(cn)]""#;

/// Settings both processes share: `nbthread`, the log to stdout (which
/// [`super::spawn`] sends to a file), a log line per request as
/// soon as the response head is known (`option logasap`: a tunnel would
/// otherwise show only when it ends), and a tunnel timeout long enough for
/// the idle hold. `option http-buffer-request` stays off (the default).
/// `tune.h2.max-concurrent-streams` matches h2hop-sidecar's `--max-streams`
/// default instead of HAProxy's 100. HAProxy wants two descriptors per
/// `maxconn` and by default refuses to start when it cannot raise the
/// limit that far; `no strict-limits` makes that a warning, since a
/// front needs about one descriptor per tunnel and a sidecar one per app
/// connection.
const COMMON: &str = r#"global
    nbthread {workers}
    maxconn 100000
    no strict-limits
    tune.h2.max-concurrent-streams 1000
    log stdout format raw local0

defaults
    mode http
    log global
    option dontlognull
    option logasap
    log-format "%ci:%cp %ft %b/%s %HM %HU %HV %ST upgrade=%[capture.req.hdr(0)] ws-version=%[capture.req.hdr(1)]"
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
"#;

/// The front: HTTP/1.1 in, HTTP/2 with prior knowledge out. `http-reuse
/// always` lets every tunnel share the HTTP/2 connection; without it HAProxy
/// opens one connection per client connection.
const FRONT: &str = r#"
frontend fe
    bind {listen}{client_proto}
    capture request header upgrade len 32
    capture request header sec-websocket-version len 8
    default_backend sc

backend sc
    http-reuse always
    server s1 {sidecar} proto h2{server_tls}
"#;

/// The sidecar: HTTP/2 with prior knowledge in, HTTP/1.1 to the app (for
/// gRPC, `{app_options}` makes it HTTP/2 with prior knowledge).
const SIDECAR: &str = r#"
frontend fe
    bind {listen} proto h2{bind_tls}
    capture request header upgrade len 32
    capture request header sec-websocket-version len 8
    default_backend app

backend app{app_options}
"#;

/// The sidecar's app server for [`Traffic::Http1`].
const APP_HTTP1: &str = "
    server a {app}";
/// The sidecar's app server for [`Traffic::Grpc`]: HTTP/2, shared.
const APP_H2: &str = "
    http-reuse always
    server a {app} proto h2";

/// Picks ports, writes `front.cfg` and `sidecar.cfg`, and builds
/// `haproxy -db -f CFG` for each (`-db`: foreground, no daemon).
pub(super) fn plan(
    app: SocketAddr,
    traffic: Traffic,
    hop: Hop,
    workers: usize,
    scratch: &Scratch,
) -> anyhow::Result<Plan> {
    let program = find_program("haproxy").context("haproxy is not installed")?;
    let sidecar_addr = free_port()?;
    let front_addr = free_port()?;
    let (client_proto, app_options) = match traffic {
        Traffic::Http1 => ("", APP_HTTP1),
        Traffic::Grpc => (" proto h2", APP_H2),
    };
    let common = COMMON.replace("{workers}", &workers.to_string());

    let (bind_tls, server_tls, marks) = match hop {
        Hop::H2c => (String::new(), String::new(), CONNECT_MARKS),
        Hop::Mtls => {
            let (bind, server) = tls_options(&hop_pki::write(scratch)?);
            (bind, server, MTLS_MARKS)
        }
    };
    let sidecar_common = match hop {
        Hop::H2c => common.clone(),
        Hop::Mtls => common.replace(LOG_FORMAT_END, MTLS_LOG_FORMAT_END),
    };
    let sidecar_cfg = sidecar_common
        + &SIDECAR
            .replace("{bind_tls}", &bind_tls)
            .replace("{app_options}", app_options)
            .replace("{listen}", &sidecar_addr.to_string())
            .replace("{app}", &app.to_string());
    let front_cfg = common
        + &FRONT
            .replace("{server_tls}", &server_tls)
            .replace("{client_proto}", client_proto)
            .replace("{listen}", &front_addr.to_string())
            .replace("{sidecar}", &sidecar_addr.to_string());

    let sidecar = command(&program, &scratch.write("sidecar.cfg", &sidecar_cfg)?);
    let front = command(&program, &scratch.write("front.cfg", &front_cfg)?);
    Ok(Plan {
        sidecar,
        sidecar_addr,
        front,
        front_addr,
        evidence: (traffic == Traffic::Http1).then(|| Evidence {
            log: scratch.path("sidecar.out.log"),
            marks,
        }),
    })
}

/// The sidecar's `bind` and the front's `server` options of the mTLS hop:
/// each presents its certificate and requires the other's from the CA;
/// ALPN `h2`; the front checks the name `localhost` (and sends it as SNI).
fn tls_options(pki: &HopPki) -> (String, String) {
    let bind = format!(
        " ssl crt {} ca-file {} verify required alpn h2",
        pki.server_combined.display(),
        pki.ca.display()
    );
    let server = format!(
        " ssl crt {} ca-file {} verify required verifyhost {SIDECAR_NAME} sni str({SIDECAR_NAME}) alpn h2",
        pki.client_combined.display(),
        pki.ca.display()
    );
    (bind, server)
}

/// The TCP relay's two processes (see [`super::Kind::TcpRelay`]): the same
/// global settings, but `mode tcp` with no log line, and the client side's
/// timeouts long enough for the idle hold.
const TCP_RELAY: &str = r#"global
    nbthread {workers}
    maxconn 100000
    no strict-limits

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

listen relay
    bind {listen}
    server next {next}
"#;

/// Picks ports, writes `front.cfg` and `sidecar.cfg` for the TCP relay
/// (front → sidecar → app, one TCP connection per client connection at
/// each hop) and builds `haproxy -db -f CFG` for each.
pub(super) fn plan_tcp_relay(
    app: SocketAddr,
    workers: usize,
    scratch: &Scratch,
) -> anyhow::Result<Plan> {
    let program = find_program("haproxy").context("haproxy is not installed")?;
    let sidecar_addr = free_port()?;
    let front_addr = free_port()?;
    let config = |listen: SocketAddr, next: SocketAddr| {
        TCP_RELAY
            .replace("{workers}", &workers.to_string())
            .replace("{listen}", &listen.to_string())
            .replace("{next}", &next.to_string())
    };
    let sidecar = command(
        &program,
        &scratch.write("sidecar.cfg", &config(sidecar_addr, app))?,
    );
    let front = command(
        &program,
        &scratch.write("front.cfg", &config(front_addr, sidecar_addr))?,
    );
    Ok(Plan {
        sidecar,
        sidecar_addr,
        front,
        front_addr,
        evidence: None,
    })
}

/// `haproxy -db -f CFG`.
fn command(program: &Path, cfg: &Path) -> Command {
    let mut command = Command::new(program);
    command.arg("-db").arg("-f").arg(cfg);
    command
}
