//! A TCP forwarder between an HTTP/2 client (the front) and its server
//! (a sidecar) that counts the client's connections, sees each one end,
//! and reads the frames the client sends, for the GOAWAY it closes with.
//!
//! Input: a listener the client dials and the server's address. Output:
//! [`Tapped`], read by the tests (the config reload tests: which cluster
//! kept its connection, and which one's connection closed, and how).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// HTTP/2 frame type GOAWAY (RFC 9113 §6.8).
const GOAWAY: u8 = 0x7;

/// The client connection preface (RFC 9113 §3.4).
const PREFACE_LEN: usize = 24;

/// What the forwarder saw of the client's connections.
#[derive(Debug, Default)]
pub struct Tapped {
    accepted: AtomicUsize,
    open: AtomicUsize,
    goaways: Mutex<Vec<u32>>,
}

impl Tapped {
    /// Connections the client opened.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Of those, still open (both directions not yet ended).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// The error code of each GOAWAY the client sent, in order.
    pub fn goaways(&self) -> Vec<u32> {
        self.goaways
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Accepts on `listener` and relays each connection to `target` until
/// `stop`, recording into `tapped`.
pub async fn forward(
    listener: TcpListener,
    target: SocketAddr,
    tapped: Arc<Tapped>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((inbound, _)) = accepted else { continue };
        tapped.accepted.fetch_add(1, Ordering::SeqCst);
        tapped.open.fetch_add(1, Ordering::SeqCst);
        let tapped = tapped.clone();
        tokio::spawn(async move {
            if let Ok(outbound) = TcpStream::connect(target).await {
                relay(inbound, outbound, &tapped).await;
            }
            tapped.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Both directions until each ends; the client's bytes are read as frames.
async fn relay(client: TcpStream, server: TcpStream, tapped: &Tapped) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let up = async {
        let mut frames = Frames::default();
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = from_client.read(&mut buf).await {
            frames.feed(&buf[..n], tapped);
            if to_server.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_server.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::join!(up, down);
}

/// The client's side of an HTTP/2 connection, frame by frame: the
/// preface, then frames of a 9-byte header and a payload (RFC 9113 §4.1).
#[derive(Default)]
struct Frames {
    buffer: Vec<u8>,
    past_preface: bool,
}

impl Frames {
    fn feed(&mut self, bytes: &[u8], tapped: &Tapped) {
        self.buffer.extend_from_slice(bytes);
        if !self.past_preface {
            if self.buffer.len() < PREFACE_LEN {
                return;
            }
            self.buffer.drain(..PREFACE_LEN);
            self.past_preface = true;
        }
        while let [l0, l1, l2, kind, ..] = self.buffer[..] {
            let length = u32::from_be_bytes([0, l0, l1, l2]) as usize;
            let end = 9 + length;
            if self.buffer.len() < end {
                return;
            }
            // GOAWAY's payload: last stream id, then the error code.
            if let (GOAWAY, Some(&[c0, c1, c2, c3])) = (kind, self.buffer.get(13..17)) {
                let code = u32::from_be_bytes([c0, c1, c2, c3]);
                let mut goaways = tapped.goaways.lock();
                goaways
                    .as_mut()
                    .unwrap_or_else(|poisoned| poisoned.get_mut())
                    .push(code);
            }
            self.buffer.drain(..end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames split anywhere are read whole; GOAWAY's code is kept.
    #[test]
    fn goaway_is_found_across_reads() {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // SETTINGS, empty.
        bytes.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
        // GOAWAY: last stream 3, code 0x2 (INTERNAL_ERROR).
        bytes.extend_from_slice(&[0, 0, 8, GOAWAY, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 2]);
        let tapped = Tapped::default();
        let mut frames = Frames::default();
        for chunk in bytes.chunks(5) {
            frames.feed(chunk, &tapped);
        }
        assert_eq!(tapped.goaways(), [2]);
    }
}
