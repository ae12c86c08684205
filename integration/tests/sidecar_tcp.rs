//! The sidecar's TCP tunnels on their own: a raw `h2` client speaks for the
//! front and sends `CONNECT host:port` (RFC 9113 §8.5) to a sidecar whose
//! allow-list names loopback targets run by the test.
//!
//! What is checked: bytes unchanged both ways, half-close (END_STREAM ⇄
//! FIN), resets each way (CONNECT_ERROR for the target's), the allow-list
//! (403, its log line, no connection), dial failures (502), the idle
//! timeout, the metrics by target, the access line, and, over mutual TLS,
//! targets restricted to some fronts by certificate SAN.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Reason, RecvStream, SendStream};
use h2hop::metrics::Metrics;
use h2hop_certs::DevPki;
use h2hop_integration::h2_client::{h2_handshake, h2c_connect};
use h2hop_integration::harness::{closed_port, loopback, within};
use h2hop_integration::logs::Captured;
use h2hop_integration::wait::eventually;
use h2hop_sidecar::tcp_allow::{TcpAllowList, TcpAllowed};
use http::{Method, Request, Response, StatusCode};
use rand::RngCore as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, DropGuard};

/// A sidecar running in this test's runtime until dropped.
struct Sidecar {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    _stop: DropGuard,
}

/// Entries for `targets`, open to every front.
fn allow(targets: &[SocketAddr]) -> TcpAllowList {
    let entries = targets.iter().map(|target| TcpAllowed {
        target: target.to_string().parse().unwrap(),
        fronts: None,
    });
    TcpAllowList::new(entries.collect())
}

/// Starts an h2c sidecar allowing `allowed`, with `change` applied to its
/// config. Its app is a closed port: nothing here is for the app.
async fn sidecar(
    allowed: TcpAllowList,
    change: impl FnOnce(&mut h2hop_sidecar::Config),
) -> Sidecar {
    let mut config = h2hop_sidecar::Config::new(closed_port().await.unwrap().to_string(), None);
    config.tcp_allow = allowed;
    change(&mut config);
    start(config).await
}

async fn start(config: h2hop_sidecar::Config) -> Sidecar {
    let stop = CancellationToken::new();
    let metrics = config.metrics.clone();
    let listener = loopback().await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(h2hop_sidecar::run(
        config,
        listener.into(),
        stop.child_token(),
    ));
    Sidecar {
        addr,
        metrics,
        _stop: stop.drop_guard(),
    }
}

/// A target that echoes every byte until EOF, then closes its half.
async fn echo_target() -> SocketAddr {
    let listener = loopback().await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut io, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut reader, mut writer) = io.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
                let _ = writer.shutdown().await;
            });
        }
    });
    addr
}

/// `CONNECT target` (RFC 9113 §8.5: `:authority` only) on a new stream.
async fn connect(
    send: &SendRequest<Bytes>,
    target: &str,
) -> (Response<RecvStream>, SendStream<Bytes>) {
    let request = Request::builder()
        .method(Method::CONNECT)
        .uri(target)
        .body(())
        .unwrap();
    let mut ready = send.clone().ready().await.unwrap();
    let (response, stream) = ready.send_request(request, false).unwrap();
    (response.await.unwrap(), stream)
}

/// Everything up to END_STREAM, the window given back as it comes.
async fn read_to_end(recv: &mut RecvStream) -> Result<Vec<u8>, h2::Error> {
    let mut got = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk?;
        recv.flow_control().release_capacity(chunk.len()).unwrap();
        got.extend_from_slice(&chunk);
    }
    Ok(got)
}

/// Sends `bytes` within the stream's window, ending the stream if `end`.
async fn send_all(stream: &mut SendStream<Bytes>, mut bytes: Bytes, end: bool) {
    while !bytes.is_empty() {
        stream.reserve_capacity(bytes.len());
        let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx))
            .await
            .unwrap()
            .unwrap();
        let chunk = bytes.split_to(granted.min(bytes.len()));
        stream.send_data(chunk, false).unwrap();
    }
    if end {
        stream.send_data(Bytes::new(), true).unwrap();
    }
}

/// The value of the series starting with `series` in `metrics`' text.
fn value(metrics: &Metrics, series: &str) -> Option<f64> {
    let text = metrics.encode();
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// RFC 9113 §8.5: after the 200, DATA carries the TCP bytes unchanged both
/// ways: a short message, then 1 MiB of random bytes (hash checked), then
/// END_STREAM ⇄ FIN. The access line and the metrics name the target.
#[tokio::test]
async fn allowed_classic_connect_echoes_bytes_unchanged_both_ways() {
    let (logs, _guard) = Captured::install();
    within(async {
        let target = echo_target().await;
        let sidecar = sidecar(allow(&[target]), |_| {}).await;
        let send = h2c_connect(sidecar.addr).await.unwrap();
        let (response, mut stream) = connect(&send, &target.to_string()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut recv = response.into_body();

        let mut payload = vec![0u8; 1 << 20];
        rand::rng().fill_bytes(&mut payload);
        let mut sent = b"hello target\r\n".to_vec();
        sent.extend_from_slice(&payload);
        let reader = tokio::spawn(async move { read_to_end(&mut recv).await });
        send_all(
            &mut stream,
            Bytes::copy_from_slice(b"hello target\r\n"),
            false,
        )
        .await;
        send_all(&mut stream, Bytes::from(payload), true).await;
        let echoed = reader.await.unwrap().unwrap();
        assert_eq!(echoed.len(), sent.len());
        assert_eq!(sha256(&echoed), sha256(&sent), "bytes changed on the way");

        let line = logs
            .wait_for(&["h2hop::access", "kind=\"tcp\"", "close=\"done\""])
            .await;
        let len = sent.len();
        for field in [
            format!("authority=\"{target}\""),
            "protocol=\"connect\"".to_owned(),
            "status=200".to_owned(),
            format!("bytes_up={len}"),
            format!("bytes_down={len}"),
        ] {
            assert!(line.contains(&field), "{field} not in {line}");
        }
        let label = format!("target=\"{target}\"");
        let total = format!("h2hop_tcp_tunnels_total{{{label},result=\"clean\"}}");
        assert_eq!(value(&sidecar.metrics, &total), Some(1.0));
        let up = format!("h2hop_tcp_tunnel_bytes_total{{{label},direction=\"up\"}}");
        assert_eq!(value(&sidecar.metrics, &up), Some(len as f64));
        let down = format!("h2hop_tcp_tunnel_bytes_total{{{label},direction=\"down\"}}");
        assert_eq!(value(&sidecar.metrics, &down), Some(len as f64));
        let active = format!("h2hop_tcp_tunnels_active{{{label}}}");
        assert_eq!(value(&sidecar.metrics, &active), Some(0.0));
        assert_eq!(
            value(&sidecar.metrics, "h2hop_tcp_connect_seconds_count"),
            Some(1.0)
        );
    })
    .await;
}

/// A target off the allow-list gets 403, a warn line naming the target and
/// the front, the denied count, and no connection: the target's listener
/// has nothing to accept. An allowed port on another host, or another port
/// of an allowed host, is just as refused.
#[tokio::test]
async fn a_target_not_allowed_gets_403_a_warn_line_and_no_connection() {
    let (logs, _guard) = Captured::install();
    within(async {
        let denied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        denied.set_nonblocking(true).unwrap();
        let denied_addr = denied.local_addr().unwrap();
        let allowed = echo_target().await;
        let sidecar = sidecar(allow(&[allowed]), |_| {}).await;
        let send = h2c_connect(sidecar.addr).await.unwrap();
        let same_port_other_host = format!("localhost:{}", allowed.port());
        for target in [denied_addr.to_string(), same_port_other_host] {
            let (response, _stream) = connect(&send, &target).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{target}");
            let body = read_to_end(&mut response.into_body()).await.unwrap();
            assert!(!body.is_empty(), "a 403 says why in its body");
            let line = logs.wait_for(&["TCP tunnel denied", &target]).await;
            assert!(line.contains("WARN"), "{line}");
            assert!(line.contains("front=127.0.0.1:"), "{line}");
            assert!(line.contains("target not on the allow-list"), "{line}");
        }
        // The denial was decided before any dial: had the sidecar
        // connected, the connection would wait in the listener's backlog.
        let accepted = denied.accept();
        assert!(
            matches!(&accepted, Err(err) if err.kind() == ErrorKind::WouldBlock),
            "the denied target was dialled: {accepted:?}"
        );
        let line = logs
            .wait_for(&["h2hop::access", "kind=\"tcp\"", "status=403"])
            .await;
        assert!(line.contains(&denied_addr.to_string()), "{line}");
        // Targets on no entry (both above) are labelled "other": fronts
        // cannot grow the series set by asking for many targets.
        let series = "h2hop_tcp_tunnels_total{target=\"other\",result=\"denied\"}";
        assert_eq!(value(&sidecar.metrics, series), Some(2.0));
        let text = sidecar.metrics.encode();
        assert!(!text.contains(&denied_addr.to_string()), "{text}");
    })
    .await;
}

/// Half-close: the client ends its stream (END_STREAM), the target reads
/// EOF, and only then writes its answer and closes; the client still gets
/// all of the answer, then END_STREAM.
#[tokio::test]
async fn the_client_s_end_stream_is_the_target_s_eof_and_the_answer_still_arrives() {
    within(async {
        let listener = loopback().await.unwrap();
        let target = listener.local_addr().unwrap();
        let answer: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let expected = answer.clone();
        let target_side = tokio::spawn(async move {
            let (mut io, _) = listener.accept().await.unwrap();
            let mut asked = Vec::new();
            io.read_to_end(&mut asked).await.unwrap();
            io.write_all(&answer).await.unwrap();
            io.shutdown().await.unwrap();
            asked
        });
        let sidecar = sidecar(allow(&[target]), |_| {}).await;
        let send = h2c_connect(sidecar.addr).await.unwrap();
        let (response, mut stream) = connect(&send, &target.to_string()).await;
        assert_eq!(response.status(), StatusCode::OK);
        send_all(&mut stream, Bytes::from_static(b"question"), true).await;
        let mut recv = response.into_body();
        let got = read_to_end(&mut recv).await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the answer changed on the way");
        assert!(recv.is_end_stream());
        assert_eq!(target_side.await.unwrap(), b"question");
    })
    .await;
}

/// RFC 9113 §8.5: the target's TCP reset (SO_LINGER 0) resets the stream
/// with CONNECT_ERROR.
#[tokio::test]
async fn a_target_s_reset_is_connect_error_on_the_stream() {
    within(async {
        let listener = loopback().await.unwrap();
        let target = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut io, _) = listener.accept().await.unwrap();
            let mut first = [0u8; 4];
            io.read_exact(&mut first).await.unwrap();
            io.set_zero_linger().unwrap();
            drop(io);
        });
        let sidecar = sidecar(allow(&[target]), |_| {}).await;
        let send = h2c_connect(sidecar.addr).await.unwrap();
        let (response, mut stream) = connect(&send, &target.to_string()).await;
        assert_eq!(response.status(), StatusCode::OK);
        send_all(&mut stream, Bytes::from_static(b"ping"), false).await;
        let err = read_to_end(&mut response.into_body()).await.unwrap_err();
        assert_eq!(err.reason(), Some(Reason::CONNECT_ERROR), "{err}");
        let series = format!("h2hop_tcp_tunnels_total{{target=\"{target}\",result=\"reset\"}}");
        let counted = eventually(Duration::from_secs(5), || {
            value(&sidecar.metrics, &series) == Some(1.0)
        });
        assert!(counted.await, "{}", sidecar.metrics.encode());
    })
    .await;
}

/// The client's RST_STREAM resets the target's connection: the sidecar
/// closes it with SO_LINGER 0, so the target's read fails with
/// ECONNRESET, not EOF (which would read as a clean end of the request).
#[tokio::test]
async fn a_client_s_reset_is_a_tcp_reset_at_the_target() {
    within(async {
        let listener = loopback().await.unwrap();
        let target = listener.local_addr().unwrap();
        let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
        let target_side = tokio::spawn(async move {
            let (mut io, _) = listener.accept().await.unwrap();
            let mut first = [0u8; 4];
            io.read_exact(&mut first).await.unwrap();
            opened_tx.send(()).unwrap();
            let mut rest = [0u8; 16];
            io.read(&mut rest).await
        });
        let sidecar = sidecar(allow(&[target]), |_| {}).await;
        let send = h2c_connect(sidecar.addr).await.unwrap();
        let (response, mut stream) = connect(&send, &target.to_string()).await;
        assert_eq!(response.status(), StatusCode::OK);
        send_all(&mut stream, Bytes::from_static(b"ping"), false).await;
        opened_rx.await.unwrap();
        stream.send_reset(Reason::CANCEL);
        let read = target_side.await.unwrap();
        assert!(
            matches!(&read, Err(err) if err.kind() == ErrorKind::ConnectionReset),
            "the target saw {read:?}, not a reset"
        );
    })
    .await;
}

/// An allowed target that refuses connections: 502, counted as failed.
#[tokio::test]
async fn an_unreachable_target_gets_502() {
    within(async {
        let target = closed_port().await.unwrap();
        let sidecar = sidecar(allow(&[target]), |_| {}).await;
        let send = h2c_connect(sidecar.addr).await.unwrap();
        let (response, _stream) = connect(&send, &target.to_string()).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let series = format!("h2hop_tcp_tunnels_total{{target=\"{target}\",result=\"failed\"}}");
        assert_eq!(value(&sidecar.metrics, &series), Some(1.0));
    })
    .await;
}

/// A target whose listen queue is full: the SYNs of further connects go
/// unanswered, so a dial to it waits until it is given up. The returned
/// listener and connections hold the queue full.
async fn unresponsive_target() -> (SocketAddr, TcpListener, Vec<TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    loop {
        let connect = TcpStream::connect(addr);
        match tokio::time::timeout(Duration::from_millis(200), connect).await {
            Ok(Ok(io)) => held.push(io),
            Ok(Err(err)) => panic!("connect to the full queue failed: {err}"),
            Err(_) => return (addr, listener, held),
        }
        assert!(held.len() < 64, "the listen queue never filled");
    }
}

/// An allowed target that does not answer within `--connect-timeout`:
/// 504, counted as failed.
#[tokio::test]
async fn a_target_that_does_not_answer_in_time_gets_504() {
    within(async {
        let (target, _listener, _held) = unresponsive_target().await;
        let sidecar = sidecar(allow(&[target]), |config| {
            config.app.connect_timeout = Duration::from_millis(300);
        })
        .await;
        let send = h2c_connect(sidecar.addr).await.unwrap();
        let (response, _stream) = connect(&send, &target.to_string()).await;
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        let series = format!("h2hop_tcp_tunnels_total{{target=\"{target}\",result=\"failed\"}}");
        assert_eq!(value(&sidecar.metrics, &series), Some(1.0));
    })
    .await;
}

/// A stream the front resets while the target is being dialled cancels
/// the dial at once, not at the connect timeout (a minute here): the
/// attempt is counted as failed within seconds, and the tunnel limit's
/// place is free again for the next CONNECT.
#[tokio::test]
async fn a_reset_stream_cancels_the_dial() {
    within(async {
        let (slow, _listener, _held) = unresponsive_target().await;
        let echo = echo_target().await;
        let sidecar = sidecar(allow(&[slow, echo]), |config| {
            config.app.connect_timeout = Duration::from_secs(60);
            config.max_tunnels = 1;
        })
        .await;
        let send = h2c_connect(sidecar.addr).await.unwrap();
        let request = Request::builder()
            .method(Method::CONNECT)
            .uri(slow.to_string())
            .body(())
            .unwrap();
        let mut ready = send.clone().ready().await.unwrap();
        let (_response, mut stream) = ready.send_request(request, false).unwrap();
        // The dial has begun once the tunnel place is taken: a second
        // CONNECT meanwhile finds the limit of one reached.
        let (response, _other) = connect(&send, &echo.to_string()).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        stream.send_reset(Reason::CANCEL);
        let series = format!("h2hop_tcp_tunnels_total{{target=\"{slow}\",result=\"failed\"}}");
        let cancelled = eventually(Duration::from_secs(5), || {
            value(&sidecar.metrics, &series) == Some(1.0)
        });
        assert!(cancelled.await, "{}", sidecar.metrics.encode());
        let (response, _stream) = connect(&send, &echo.to_string()).await;
        assert_eq!(response.status(), StatusCode::OK);
    })
    .await;
}

/// A tunnel where nothing moves for `--tunnel-idle-timeout` is closed:
/// RST_STREAM(CANCEL) toward the front, and the target's connection ends.
#[tokio::test]
async fn an_idle_tcp_tunnel_is_closed() {
    let (logs, _guard) = Captured::install();
    within(async {
        let listener = loopback().await.unwrap();
        let target = listener.local_addr().unwrap();
        let target_side = tokio::spawn(async move {
            let (mut io, _) = listener.accept().await.unwrap();
            let mut rest = Vec::new();
            io.read_to_end(&mut rest).await.map(|_| rest)
        });
        let sidecar = sidecar(allow(&[target]), |config| {
            config.tunnel_idle_timeout = Duration::from_millis(300);
        })
        .await;
        let send = h2c_connect(sidecar.addr).await.unwrap();
        let (response, _stream) = connect(&send, &target.to_string()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let err = read_to_end(&mut response.into_body()).await.unwrap_err();
        assert_eq!(err.reason(), Some(Reason::CANCEL), "{err}");
        assert_eq!(target_side.await.unwrap().unwrap(), b"");
        logs.wait_for(&["h2hop::access", "kind=\"tcp\"", "close=\"idle\""])
            .await;
    })
    .await;
}

/// A CONNECT whose `:authority` is no `host:port` is the client's fault.
#[tokio::test]
async fn a_target_without_a_port_gets_400() {
    within(async {
        let sidecar = sidecar(TcpAllowList::default(), |_| {}).await;
        let send = h2c_connect(sidecar.addr).await.unwrap();
        let (response, _stream) = connect(&send, "db.internal").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    })
    .await;
}

/// The connect-tcp form: 200 with `capsule-protocol: ?1` for an allowed
/// target, then the bytes travel in capsules both ways (a DATA capsule
/// out, FINAL_DATA for the FIN, the echo back the same way); a target off
/// the list still gets 403.
#[tokio::test]
async fn the_connect_tcp_form_relays_capsules_to_an_allowed_target() {
    use h2hop::capsule::{self, Decoder, Event, Header, Kind};
    within(async {
        let target = echo_target().await;
        let sidecar = sidecar(allow(&[target]), |_| {}).await;
        let send = h2c_connect(sidecar.addr).await.unwrap();
        let request = |asked: &str| {
            let form = h2hop::tcp_connect::ConnectForm::ConnectTcp;
            h2hop::tcp_connect::request(form, &asked.parse().unwrap(), "sidecar.test").unwrap()
        };
        let mut ready = send.clone().ready().await.unwrap();
        let (denied, _stream) = ready.send_request(request("127.0.0.1:9"), false).unwrap();
        assert_eq!(denied.await.unwrap().status(), StatusCode::FORBIDDEN);

        let mut ready = send.clone().ready().await.unwrap();
        let (response, mut stream) = ready
            .send_request(request(&target.to_string()), false)
            .unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["capsule-protocol"], "?1");
        let mut wire = Header::new(Kind::Data, 5).unwrap().as_bytes().to_vec();
        wire.extend_from_slice(b"hello");
        wire.extend_from_slice(&capsule::EMPTY_FINAL_DATA);
        send_all(&mut stream, Bytes::from(wire), true).await;
        let mut echoed = Bytes::from(read_to_end(&mut response.into_body()).await.unwrap());
        let (mut decoder, mut events) = (Decoder::new(), Vec::new());
        while let Some(event) = decoder.decode(&mut echoed).unwrap() {
            events.push(event);
        }
        assert_eq!(decoder.finish(), Ok(()));
        let payload: Vec<u8> = events
            .iter()
            .filter_map(|event| match event {
                Event::Payload(bytes) => Some(bytes.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(payload, b"hello");
        assert_eq!(events.last(), Some(&Event::Final));
    })
    .await;
}

/// Over mutual TLS, a `[[tcp]]` entry with `fronts` lets in only fronts
/// whose certificate carries one of them: this front's URI SAN reaches
/// its target, another front's target is refused with a line naming the
/// SANs this front presented.
#[tokio::test]
async fn fronts_restrict_a_target_to_certificates_with_those_sans() {
    let (logs, _guard) = Captured::install();
    within(async {
        let ours = echo_target().await;
        let theirs = echo_target().await;
        let front_san = "spiffe://td/front".to_owned();
        let pki =
            DevPki::generate_with(&["localhost".to_owned()], std::slice::from_ref(&front_san))
                .unwrap();
        let tls =
            h2hop::tls::hop_server_config(pki.server_chain(), pki.server_key(), vec![pki.ca_der()])
                .unwrap();
        let app = closed_port().await.unwrap().to_string();
        let mut config = h2hop_sidecar::Config::new(app, Some(tls));
        let only = |san: &str| Some(h2hop::tls::identity::AllowedSans::new(&[san]).unwrap());
        config.tcp_allow = TcpAllowList::new(vec![
            TcpAllowed {
                target: ours.to_string().parse().unwrap(),
                fronts: only(&front_san),
            },
            TcpAllowed {
                target: theirs.to_string().parse().unwrap(),
                fronts: only("spiffe://td/other"),
            },
        ]);
        let sidecar = start(config).await;

        let client = h2hop::tls::hop_client_config(
            vec![pki.ca_der()],
            Some((pki.client_chain(), pki.client_key())),
        )
        .unwrap();
        let tcp = TcpStream::connect(sidecar.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .unwrap();
        let send = h2_handshake(tls).await.unwrap();

        let (response, mut stream) = connect(&send, &ours.to_string()).await;
        assert_eq!(response.status(), StatusCode::OK);
        send_all(&mut stream, Bytes::from_static(b"over mTLS"), true).await;
        let echoed = read_to_end(&mut response.into_body()).await.unwrap();
        assert_eq!(echoed, b"over mTLS");

        let (response, _stream) = connect(&send, &theirs.to_string()).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let line = logs
            .wait_for(&["TCP tunnel denied", &theirs.to_string()])
            .await;
        assert!(line.contains("target not allowed for this front"), "{line}");
        assert!(line.contains(&front_san), "the line names the SANs: {line}");
    })
    .await;
}

/// Over h2c there is no front identity: a target restricted to some
/// fronts is refused, while an open one in the same list is reached.
#[tokio::test]
async fn over_h2c_a_target_restricted_to_fronts_is_denied() {
    within(async {
        let restricted = echo_target().await;
        let open = echo_target().await;
        let mut allowed = vec![TcpAllowed {
            target: restricted.to_string().parse().unwrap(),
            fronts: Some(h2hop::tls::identity::AllowedSans::new(&["front.internal"]).unwrap()),
        }];
        allowed.extend(allow(&[open]).entries().iter().cloned());
        let sidecar = sidecar(TcpAllowList::new(allowed), |_| {}).await;
        let send = h2c_connect(sidecar.addr).await.unwrap();
        let (response, _stream) = connect(&send, &restricted.to_string()).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let (response, _stream) = connect(&send, &open.to_string()).await;
        assert_eq!(response.status(), StatusCode::OK);
    })
    .await;
}
