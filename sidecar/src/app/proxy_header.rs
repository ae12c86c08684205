//! `--app-proxy-protocol`: a PROXY protocol v2 header at the start of each
//! connection to the app, naming the client the request came from.
//!
//! Input: the request about to be sent (its `X-Forwarded-For`) and the app
//! config; output: a connection to the app whose first bytes are the
//! header. Called by [`crate::app::App`] for tunnels and plain requests
//! when [`AppConfig::proxy_protocol`] is on.
//!
//! The client is the address the front settled on (the sidecar trusts its
//! front: mutual TLS): the front's own `h2hop-client` field where it sends
//! one (behind trusted proxies the client is not the last hop), else the
//! rightmost `X-Forwarded-For` entry. Without either (or one that is not an
//! address), the header carries the LOCAL command, and the app keeps the
//! sidecar's own address. `X-Forwarded-For` has no port, so the source port is 0; the
//! destination is the app's address as dialed.

use std::net::{IpAddr, SocketAddr};

use h2hop::proxy_protocol::{Addresses, v2_header};
use h2hop::request_identity::ClientAddress;
use http::{HeaderMap, Request};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::dial::{AppConfig, dial};
use crate::error::{AppStep, Error};

/// The client address of the request: the front's `h2hop-client` field
/// (kept as a [`ClientAddress`] extension by the translation, which drops
/// the field), else what the rightmost `X-Forwarded-For` entry names, if it
/// is one (`192.0.2.7`, `2001:db8::7`, `[2001:db8::7]`, or either with a
/// port).
pub(crate) fn client_of<B>(request: &Request<B>) -> Option<IpAddr> {
    if let Some(ClientAddress(settled)) = request.extensions().get() {
        return Some(*settled);
    }
    forwarded_for(request.headers())
}

/// What the rightmost `X-Forwarded-For` entry names, if it is an address.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
    let bare = entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(entry);
    bare.parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

/// A new connection to the app that starts with a v2 header for `client`
/// (LOCAL when `None`); the write is bounded by the connect timeout.
pub(crate) async fn dial_with_header(
    config: &AppConfig,
    client: Option<IpAddr>,
) -> Result<TcpStream, Error> {
    let mut stream = dial(config).await?;
    let addresses = match (client, stream.peer_addr()) {
        (Some(client), Ok(app)) => Some(Addresses {
            source: SocketAddr::new(client, 0),
            destination: app,
        }),
        _ => None,
    };
    let header = v2_header(addresses);
    let bound = config.connect_timeout;
    match timeout(bound, stream.write_all(&header)).await {
        Ok(Ok(())) => Ok(stream),
        Ok(Err(source)) => Err(Error::ConnectApp {
            addr: config.addr.clone(),
            source,
        }),
        Err(_) => Err(Error::AppTimeout {
            step: AppStep::Connect,
            addr: config.addr.clone(),
            after: bound,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            if let Ok(value) = value.parse() {
                headers.append("x-forwarded-for", value);
            }
        }
        headers
    }

    #[test]
    fn the_rightmost_entry_is_the_client() {
        let ip = |text: &str| text.parse::<IpAddr>().ok();
        let cases = [
            (&["203.0.113.1, 192.0.2.7"][..], ip("192.0.2.7")),
            (
                &["203.0.113.1", "198.51.100.2,2001:db8::7"],
                ip("2001:db8::7"),
            ),
            (&["[2001:db8::8]"], ip("2001:db8::8")),
            (&["[2001:db8::9]:443"], ip("2001:db8::9")),
            (&["192.0.2.7:80"], ip("192.0.2.7")),
            (&["192.0.2.7, unknown"], None),
            (&[], None),
        ];
        for (values, expected) in cases {
            assert_eq!(forwarded_for(&with_xff(values)), expected, "{values:?}");
        }
    }

    #[test]
    fn the_fronts_settled_client_wins_over_forwarded_for() {
        let mut request = Request::new(());
        *request.headers_mut() = with_xff(&["198.51.100.9, 192.0.2.7"]);
        assert_eq!(client_of(&request), "192.0.2.7".parse().ok());
        let settled = ClientAddress("198.51.100.9".parse().unwrap_or(IpAddr::from([0; 4])));
        request.extensions_mut().insert(settled);
        assert_eq!(client_of(&request), Some(settled.0));
    }
}
