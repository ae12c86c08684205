//! An HTTP/2 client of the front's TLS listener, as a browser connects:
//! TLS trusting the pair's CA with ALPN `h2`, then the `h2` crate's client;
//! or of its plain listener with prior knowledge (h2c), as a mesh gRPC
//! client connects.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use h2::client::SendRequest;
use http::{Method, Request};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::harness::Pair;

/// A TLS connection to the front trusting the pair's CA, offering `alpn`.
pub async fn tls_connect(pair: &Pair, alpn: &[&[u8]]) -> anyhow::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pair.pki.ca_der())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|name| name.to_vec()).collect();
    let addr: SocketAddr = pair
        .front_tls
        .context("the pair has no client TLS listener")?;
    let tcp = TcpStream::connect(addr).await?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    Ok(tls)
}

/// An HTTP/2 connection over TLS whose SETTINGS from the front are in
/// effect (the front sends them before it can ACK our PING). The
/// connection runs in a task of its own until it ends.
pub async fn h2_connect(pair: &Pair) -> anyhow::Result<SendRequest<Bytes>> {
    h2_over(tls_connect(pair, &[b"h2"]).await?).await
}

/// HTTP/2 over `tls`, which must have chosen ALPN `h2`, with the front's
/// SETTINGS in effect, as [`h2_connect`]; the connection runs in a task of
/// its own.
pub async fn h2_over(tls: TlsStream<TcpStream>) -> anyhow::Result<SendRequest<Bytes>> {
    anyhow::ensure!(
        tls.get_ref().1.alpn_protocol() == Some(&b"h2"[..]),
        "the front did not choose h2"
    );
    h2_handshake(tls).await
}

/// Cleartext HTTP/2 with prior knowledge (RFC 9113 §3.3) to `addr` (the
/// front's plain listener), with the server's SETTINGS in effect, as
/// [`h2_connect`].
pub async fn h2c_connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Bytes>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    h2_handshake(tcp).await
}

/// The `h2` client's handshake over `io`, then a PING answered, so that
/// the server's SETTINGS are in effect; the connection runs in a task of
/// its own until it ends.
pub async fn h2_handshake<T>(io: T) -> anyhow::Result<SendRequest<Bytes>>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (send, mut connection) = h2::client::handshake(io).await?;
    let mut ping_pong = connection.ping_pong().context("PING handle taken")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    ping_pong.ping(h2::Ping::opaque()).await?;
    Ok(send)
}

/// An RFC 8441 extended CONNECT for `protocol` on `path`, as a browser
/// opens a WebSocket on HTTP/2 (with `Origin` and version 13).
pub fn extended_connect(protocol: &str, path: &str) -> anyhow::Result<Request<()>> {
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("https://localhost{path}"))
        .header("sec-websocket-version", "13")
        .header("origin", "https://localhost")
        .body(())?;
    request
        .extensions_mut()
        .insert(h2::ext::Protocol::from(protocol));
    Ok(request)
}
