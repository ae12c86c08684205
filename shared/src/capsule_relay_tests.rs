//! The capsule relay against a real h2 peer over an in-memory connection,
//! with its TCP side on loopback.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::tunnel;
use crate::capsule::{self, Decoder, Event, Header, Kind};
use crate::relay::{Close, Timeouts, TunnelEnd};

const TIMEOUTS: Timeouts = Timeouts {
    idle: Duration::from_secs(30),
    fin: Duration::from_secs(30),
};

/// A tunnel under test: the relay's task, the TCP peer (the app or the
/// client), and the stream's far end (the other side of the hop).
struct Rig {
    relay: JoinHandle<TunnelEnd>,
    app: TcpStream,
    send: SendStream<Bytes>,
    recv: RecvStream,
}

/// The relay runs on the server side of an h2 connection over
/// `tokio::io::duplex`; the test speaks capsules from the client side.
async fn rig() -> Rig {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let server = tokio::spawn(async move {
        let mut conn = h2::server::handshake(server_io).await.unwrap();
        let (request, mut respond) = conn.accept().await.unwrap().unwrap();
        let send = respond
            .send_response(http::Response::new(()), false)
            .unwrap();
        // The connection runs on for the tunnel's life.
        tokio::spawn(async move { while conn.accept().await.is_some() {} });
        (send, request.into_body())
    });
    let (client, conn) = h2::client::handshake(client_io).await.unwrap();
    tokio::spawn(conn);
    let request = http::Request::post("https://sidecar/").body(()).unwrap();
    let (response, send) = client
        .ready()
        .await
        .unwrap()
        .send_request(request, false)
        .unwrap();
    let (relay_send, relay_recv) = server.await.unwrap();
    let recv = response.await.unwrap().into_body();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (io, _) = listener.accept().await.unwrap();
    let relay = tokio::spawn(tunnel(io, relay_send, relay_recv, TIMEOUTS));
    Rig {
        relay,
        app,
        send,
        recv,
    }
}

fn capsule(kind: Kind, value: &[u8]) -> Vec<u8> {
    let mut wire = Header::new(kind, value.len() as u64)
        .unwrap()
        .as_bytes()
        .to_vec();
    wire.extend_from_slice(value);
    wire
}

/// What the far end received: every DATA byte, the payload they carry,
/// whether FINAL_DATA came, and how the stream ended (`Ok` at END_STREAM,
/// the reset's reason otherwise).
struct Received {
    wire: usize,
    payload: Vec<u8>,
    fin: bool,
    end: Result<(), Option<Reason>>,
}

async fn receive_all(recv: &mut RecvStream) -> Received {
    let mut decoder = Decoder::new();
    let mut received = Received {
        wire: 0,
        payload: Vec::new(),
        fin: false,
        end: Ok(()),
    };
    while let Some(chunk) = recv.data().await {
        let mut chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                received.end = Err(err.reason());
                return received;
            }
        };
        received.wire += chunk.len();
        let _ = recv.flow_control().release_capacity(chunk.len());
        while let Some(event) = decoder.decode(&mut chunk).unwrap() {
            match event {
                Event::Payload(bytes) => received.payload.extend_from_slice(&bytes),
                Event::Final => received.fin = true,
                Event::Skipped(_) => {}
            }
        }
    }
    assert_eq!(decoder.finish().is_ok(), received.fin);
    received
}

/// Bounds a test step in time.
async fn within<T>(step: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), step)
        .await
        .expect("step timed out")
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

#[tokio::test]
async fn bytes_and_fin_cross_both_ways_and_a_half_closed_client_still_gets_the_answer() {
    let Rig {
        relay,
        mut app,
        mut send,
        mut recv,
    } = rig().await;
    // Larger than the 64 KiB default windows both ways.
    let up = pattern(300_000, 1);
    let down = pattern(200_000, 7);
    // The TCP side writes everything and shuts its write side first.
    within(app.write_all(&up)).await.unwrap();
    within(app.shutdown()).await.unwrap();
    let received = within(receive_all(&mut recv)).await;
    assert_eq!(received.payload.len(), up.len());
    assert!(received.payload == up, "payload changed on the way");
    assert!(received.fin, "TCP FIN became FINAL_DATA");
    assert_eq!(received.end, Ok(()));
    // Then the answer comes, after the FIN: the half-closed side reads it.
    let mut wire = capsule(Kind::Data, &down[..100_000]);
    wire.extend(capsule(Kind::FinalData, &down[100_000..]));
    send.send_data(Bytes::from(wire), true).unwrap();
    let mut answer = Vec::new();
    within(app.read_to_end(&mut answer)).await.unwrap();
    assert!(answer == down, "answer changed on the way");
    let end = within(relay).await.unwrap();
    assert_eq!(
        end,
        TunnelEnd {
            to_stream: up.len() as u64,
            to_tcp: down.len() as u64,
            close: Close::Clean,
        }
    );
}

#[tokio::test]
async fn unknown_capsules_are_skipped_and_headers_split_across_frames_are_joined() {
    let Rig {
        relay,
        mut app,
        mut send,
        mut recv,
    } = rig().await;
    let mut wire = capsule(Kind::Other(0x17), b"not for TCP");
    wire.extend(capsule(Kind::Data, b"hello, "));
    wire.extend(capsule(Kind::Other(capsule::VARINT_MAX), b""));
    wire.extend(capsule(Kind::Data, &[b'x'; 300]));
    wire.extend(capsule(Kind::FinalData, b"!"));
    // One DATA frame per few bytes, cutting every header somewhere.
    for piece in wire.chunks(3) {
        send.send_data(Bytes::copy_from_slice(piece), false)
            .unwrap();
    }
    send.send_data(Bytes::new(), true).unwrap();
    let mut got = Vec::new();
    within(app.read_to_end(&mut got)).await.unwrap();
    let mut expected = b"hello, ".to_vec();
    expected.extend([b'x'; 300]);
    expected.push(b'!');
    assert_eq!(got, expected);
    drop(app);
    let received = within(receive_all(&mut recv)).await;
    assert!(received.fin);
    assert_eq!(within(relay).await.unwrap().close, Close::Clean);
}

#[tokio::test]
async fn a_stream_ending_without_final_data_resets_the_tcp_connection_and_the_stream() {
    let Rig {
        relay,
        mut app,
        mut send,
        mut recv,
    } = rig().await;
    let wire = capsule(Kind::Data, b"partial");
    send.send_data(Bytes::from(wire), true).unwrap();
    let mut got = [0; 7];
    within(app.read_exact(&mut got)).await.unwrap();
    assert_eq!(&got, b"partial");
    let err = within(app.read(&mut [0; 16])).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    let received = within(receive_all(&mut recv)).await;
    assert_eq!(received.end, Err(Some(Reason::CONNECT_ERROR)));
    assert_eq!(within(relay).await.unwrap().close, Close::StreamReset);
}

#[tokio::test]
async fn a_stream_ending_inside_a_capsule_is_malformed() {
    let Rig {
        relay,
        mut app,
        mut send,
        mut recv,
    } = rig().await;
    let wire = capsule(Kind::Data, b"abcdefghij");
    send.send_data(Bytes::copy_from_slice(&wire[..8]), true)
        .unwrap();
    let mut got = [0; 3];
    within(app.read_exact(&mut got)).await.unwrap();
    assert_eq!(&got, b"abc");
    let err = within(app.read(&mut [0; 16])).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    let received = within(receive_all(&mut recv)).await;
    assert_eq!(received.end, Err(Some(Reason::PROTOCOL_ERROR)));
    assert_eq!(within(relay).await.unwrap().close, Close::StreamReset);
}

#[tokio::test]
async fn a_payload_capsule_after_final_data_is_malformed() {
    let Rig {
        relay,
        app: _app,
        mut send,
        mut recv,
    } = rig().await;
    let mut wire = capsule(Kind::FinalData, b"");
    wire.extend(capsule(Kind::Data, b"late"));
    send.send_data(Bytes::from(wire), false).unwrap();
    let received = within(receive_all(&mut recv)).await;
    assert_eq!(received.end, Err(Some(Reason::PROTOCOL_ERROR)));
    let end = within(relay).await.unwrap();
    assert_eq!((end.close, end.to_tcp), (Close::StreamReset, 0));
}

#[tokio::test]
async fn a_stream_reset_resets_the_tcp_connection() {
    let Rig {
        relay,
        mut app,
        mut send,
        recv: _recv,
    } = rig().await;
    send.send_data(Bytes::from(capsule(Kind::Data, b"abc")), false)
        .unwrap();
    let mut got = [0; 3];
    within(app.read_exact(&mut got)).await.unwrap();
    send.send_reset(Reason::CANCEL);
    let err = within(app.read(&mut [0; 16])).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(within(relay).await.unwrap().close, Close::StreamReset);
}

#[tokio::test]
async fn a_tcp_reset_becomes_rst_stream_connect_error_after_the_bytes_before_it() {
    let Rig {
        relay,
        mut app,
        send: _send,
        mut recv,
    } = rig().await;
    within(app.write_all(b"last words")).await.unwrap();
    // Wait until the relay has read them, so the RST comes after.
    let mut chunk = within(recv.data()).await.unwrap().unwrap();
    let mut decoder = Decoder::new();
    let event = decoder.decode(&mut chunk).unwrap();
    assert_eq!(
        event,
        Some(Event::Payload(Bytes::from_static(b"last words")))
    );
    app.set_zero_linger().unwrap();
    drop(app);
    let received = within(receive_all(&mut recv)).await;
    assert_eq!(received.end, Err(Some(Reason::CONNECT_ERROR)));
    assert!(!received.fin);
    assert_eq!(within(relay).await.unwrap().close, Close::TcpReset);
}

#[tokio::test(start_paused = true)]
async fn a_quiet_tunnel_is_closed_at_the_idle_timeout_with_cancel() {
    let Rig {
        relay,
        app: _app,
        send: _send,
        mut recv,
    } = rig().await;
    let received = receive_all(&mut recv).await;
    assert_eq!(received.end, Err(Some(Reason::CANCEL)));
    let end = relay.await.unwrap();
    assert_eq!(end.close, Close::Idle);
}

#[tokio::test]
async fn one_mib_of_bulk_writes_costs_little_framing_on_the_hop() {
    let Rig {
        relay,
        mut app,
        mut send,
        mut recv,
    } = rig().await;
    let up = pattern(1 << 20, 3);
    let writer = tokio::spawn(async move {
        app.write_all(&up).await.unwrap();
        app.shutdown().await.unwrap();
        app
    });
    let received = within(receive_all(&mut recv)).await;
    assert_eq!(received.payload.len(), 1 << 20);
    let overhead = received.wire - received.payload.len();
    // At least one DATA header and the empty FINAL_DATA; at most a 6-byte
    // header per 1 KiB read, far more reads than loopback ever splits into.
    assert!(
        overhead >= 6 + capsule::EMPTY_FINAL_DATA.len(),
        "{overhead}"
    );
    assert!(overhead <= 6 * 1024 + 5, "{overhead}");
    send.send_data(Bytes::from_static(&capsule::EMPTY_FINAL_DATA), true)
        .unwrap();
    let _app = within(writer).await.unwrap();
    assert_eq!(within(relay).await.unwrap().close, Close::Clean);
}
