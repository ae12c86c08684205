//! Reading an admin listener (`--admin-listen`): `GET` one of its paths,
//! and one series' value from a `/metrics` text exposition. For the tests
//! of the metrics, of readiness and of the drain.

use std::net::SocketAddr;
use std::time::Duration;

use http::Method;

use crate::client::{body_bytes, full, http1_connect, request};
use crate::wait::eventually_async;

/// Status and body of `GET path` on the admin listener at `addr`.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut client = http1_connect(addr).await?;
    let response = client
        .send_request(request(Method::GET, addr, path, full(""))?)
        .await?;
    let status = response.status().as_u16();
    let body = body_bytes(response).await?;
    Ok((status, String::from_utf8(body.to_vec())?))
}

/// The value of `series` (its name and labels exactly as exposed, such as
/// `h2hop_tls_reloads_total{result="ok"}`) in `text`, if it is there.
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Scrapes `/metrics` at `addr` until `series` has `expected`, for up to
/// 5 s, and returns that exposition; the error holds a last one.
pub async fn wait_for_value(
    addr: SocketAddr,
    series: &str,
    expected: f64,
) -> anyhow::Result<String> {
    let seen = eventually_async(Duration::from_secs(5), || async move {
        let text = get(addr, "/metrics").await.ok()?.1;
        (value(&text, series) == Some(expected)).then_some(text)
    });
    match seen.await {
        Some(text) => Ok(text),
        None => {
            let last = get(addr, "/metrics").await.map(|(_, text)| text);
            anyhow::bail!("{series} never became {expected} at {addr}:\n{last:?}")
        }
    }
}
