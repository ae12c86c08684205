//! An app that speaks h2c (HTTP/2 with prior knowledge), built on the raw
//! `h2` server, for sidecars run with `--app-protocol h2c`. It records
//! what it received (fields, trailers, extended CONNECTs, resets) so that
//! tests can check what reached it.
//!
//! By `:path`:
//! - `/echo`: `200` at once, every DATA chunk sent back within flow
//!   control, then trailers `x-echo-bytes: N` and `grpc-status: 0`;
//! - `/hang`: never answers; records the reset that ends the stream;
//! - `/refuse`: resets the stream with REFUSED_STREAM;
//! - anything else: `200` with the body `hello`.
//!
//! An extended CONNECT (only possible with
//! [`H2cAppOptions::extended_connect`]) is answered `200` and its bytes
//! are echoed until the client ends its half, then the app ends its own.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, Request, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The app's switches.
#[derive(Debug, Clone, Copy, Default)]
pub struct H2cAppOptions {
    /// Send SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441 §3).
    pub extended_connect: bool,
}

/// What the app received.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Each request's `:path` and fields, in arrival order.
    pub requests: Vec<(String, HeaderMap)>,
    /// Each request's trailers, with its `:path`.
    pub trailers: Vec<(String, HeaderMap)>,
    /// Each extended CONNECT's `:protocol`.
    pub protocols: Vec<String>,
    /// Each reset the app received, with the stream's `:path`.
    pub resets: Vec<(String, Reason)>,
}

/// A running h2c app; stops when dropped.
pub struct H2cApp {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    stop: CancellationToken,
}

impl Drop for H2cApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl H2cApp {
    /// Starts the app on a loopback port.
    pub async fn spawn(options: H2cAppOptions) -> anyhow::Result<Self> {
        let listener = crate::harness::loopback().await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, options, seen.clone(), stop.clone()));
        Ok(Self { addr, seen, stop })
    }

    /// What the app received so far.
    pub fn seen(&self) -> Seen {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits up to `bound` for a reset of a stream on `path`.
    pub async fn reset_on(&self, path: &str, bound: Duration) -> Option<Reason> {
        let waiting = async {
            loop {
                let found = self
                    .seen()
                    .resets
                    .iter()
                    .find(|(seen, _)| seen == path)
                    .map(|(_, reason)| *reason);
                if let Some(reason) = found {
                    return reason;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(bound, waiting).await.ok()
    }
}

async fn serve(
    listener: TcpListener,
    options: H2cAppOptions,
    seen: Arc<Mutex<Seen>>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let Ok((tcp, _)) = accepted else { return };
        let (seen, stop) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            let mut builder = h2::server::Builder::new();
            if options.extended_connect {
                builder.enable_connect_protocol();
            }
            let Ok(mut connection) = builder.handshake::<_, Bytes>(tcp).await else {
                return;
            };
            loop {
                let accepted = tokio::select! {
                    accepted = connection.accept() => accepted,
                    () = stop.cancelled() => return,
                };
                let Some(Ok((request, respond))) = accepted else {
                    return;
                };
                tokio::spawn(stream(request, respond, seen.clone()));
            }
        });
    }
}

fn record(seen: &Mutex<Seen>, change: impl FnOnce(&mut Seen)) {
    change(&mut seen.lock().unwrap_or_else(PoisonError::into_inner));
}

async fn stream(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    seen: Arc<Mutex<Seen>>,
) {
    let path = request.uri().path().to_owned();
    let protocol = request
        .extensions()
        .get::<h2::ext::Protocol>()
        .map(|protocol| protocol.as_str().to_owned());
    record(&seen, |seen| {
        seen.requests
            .push((path.clone(), request.headers().clone()));
        if let Some(protocol) = &protocol {
            seen.protocols.push(protocol.clone());
        }
    });
    let recv = request.into_body();
    let reset = match (protocol, path.as_str()) {
        (Some(_), _) => echo(recv, &mut respond, &seen, &path, false).await,
        (None, "/echo") => echo(recv, &mut respond, &seen, &path, true).await,
        (None, "/hang") => {
            let _recv = recv;
            std::future::poll_fn(|cx| respond.poll_reset(cx)).await.ok()
        }
        (None, "/refuse") => {
            respond.send_reset(Reason::REFUSED_STREAM);
            None
        }
        (None, _) => {
            if let Ok(mut send) = respond.send_response(Response::new(()), false) {
                let _ = send.send_data(Bytes::from_static(b"hello"), true);
            }
            None
        }
    };
    if let Some(reason) = reset {
        record(&seen, |seen| seen.resets.push((path, reason)));
    }
}

/// Answers `200` and sends every chunk back; with `trailers`, ends with
/// trailers, else with an empty END_STREAM. Returns the reset that cut
/// it short, if one did.
async fn echo(
    mut recv: RecvStream,
    respond: &mut SendResponse<Bytes>,
    seen: &Mutex<Seen>,
    path: &str,
    trailers: bool,
) -> Option<Reason> {
    let mut send: SendStream<Bytes> = respond.send_response(Response::new(()), false).ok()?;
    let mut echoed = 0_u64;
    loop {
        match recv.data().await {
            Some(Ok(chunk)) => {
                let len = chunk.len();
                if h2hop::relay::send_data(&mut send, chunk, &mut echoed)
                    .await
                    .is_err()
                {
                    return std::future::poll_fn(|cx| send.poll_reset(cx)).await.ok();
                }
                let _ = recv.flow_control().release_capacity(len);
            }
            Some(Err(err)) => return err.reason(),
            None => break,
        }
    }
    match recv.trailers().await {
        Ok(Some(received)) => {
            record(seen, |seen| seen.trailers.push((path.to_owned(), received)));
        }
        Ok(None) => {}
        Err(err) => return err.reason(),
    }
    if trailers {
        let mut fields = HeaderMap::new();
        fields.insert("x-echo-bytes", HeaderValue::from(echoed));
        fields.insert("grpc-status", HeaderValue::from_static("0"));
        let _ = send.send_trailers(fields);
    } else {
        let _ = send.send_data(Bytes::new(), true);
    }
    None
}
