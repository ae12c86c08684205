//! Plain requests through the pair: keep-alive HTTP/1.1 connections
//! (hyper's client connection) sending small GETs one at a time. Called by
//! the bench binary through [`super`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::{FAILURE_PAUSE, MAX_SAMPLES, micros, nearest_rank, rate, timed};

/// The app's fixed-size plain route (see [`h2hop_integration::app::TestApp`]).
const PLAIN_PATH: &str = "/bytes/64";
/// Length of the [`PLAIN_PATH`] body.
const PLAIN_LEN: usize = 64;

/// Result of [`plain`]: `GET /bytes/64` on keep-alive connections.
#[derive(Debug, Clone, PartialEq)]
pub struct Plain {
    /// Requests answered with 200 and the 64-byte body.
    pub requests: u64,
    /// Requests that failed at any step (the connection is then replaced).
    pub failures: u64,
    /// From the start until the last connection stopped.
    pub seconds: f64,
    /// Median request latency; NaN when no request succeeded.
    pub p50_us: f64,
    /// 99th percentile request latency; NaN when no request succeeded.
    pub p99_us: f64,
}

impl Plain {
    /// Successful requests per second.
    pub fn per_s(&self) -> f64 {
        rate(self.requests as f64, self.seconds)
    }
}

/// What one [`plain`] connection worker measured.
#[derive(Default)]
struct Tally {
    samples: Vec<u32>,
    requests: u64,
    failures: u64,
}

/// `connections` keep-alive HTTP/1.1 connections, each in its own task
/// sending `GET /bytes/64` one request at a time until `duration` has
/// passed. Each response must be 200 with a 64-byte body; latency is from
/// send to the end of the body. Failures are counted and the worker goes on.
pub async fn plain(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Plain> {
    ensure!(connections > 0, "plain needs at least one connection");
    let host = HeaderValue::try_from(addr.to_string())?;
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..connections {
        let cap = MAX_SAMPLES / connections;
        tasks.spawn(plain_worker(addr, host.clone(), start + duration, cap));
    }
    let mut total = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        let mut tally = joined.context("plain worker panicked")?;
        total.samples.append(&mut tally.samples);
        total.requests += tally.requests;
        total.failures += tally.failures;
    }
    let seconds = start.elapsed().as_secs_f64();
    total.samples.sort_unstable();
    let at = |per_mille| nearest_rank(&total.samples, per_mille).map_or(f64::NAN, f64::from);
    Ok(Plain {
        requests: total.requests,
        failures: total.failures,
        seconds,
        p50_us: at(500),
        p99_us: at(990),
    })
}

/// One [`plain`] connection, keeping at most `cap` samples; reconnects
/// after a failure.
async fn plain_worker(addr: SocketAddr, host: HeaderValue, deadline: Instant, cap: usize) -> Tally {
    let mut tally = Tally::default();
    let mut conn = None;
    while Instant::now() < deadline {
        match timed(get_small(&mut conn, addr, &host)).await {
            Ok(elapsed) => {
                if tally.samples.len() < cap {
                    tally.samples.push(micros(elapsed));
                }
                tally.requests += 1;
            }
            Err(err) => {
                tally.failures += 1;
                // The connection may be half way through a response.
                conn = None;
                tracing::debug!(error = %format!("{err:#}"), "plain request failed");
                tokio::time::sleep(FAILURE_PAUSE).await;
            }
        }
    }
    tally
}

/// One `GET /bytes/64` on `conn` (opened first if absent or closed),
/// checked; returns the time from send to the end of the body.
async fn get_small(
    conn: &mut Option<SendRequest<Empty<Bytes>>>,
    addr: SocketAddr,
    host: &HeaderValue,
) -> anyhow::Result<Duration> {
    let sender = match conn.take().filter(|sender| !sender.is_closed()) {
        Some(open) => conn.insert(open),
        None => conn.insert(connect_http1(addr).await?),
    };
    sender.ready().await?;
    let request = Request::get(PLAIN_PATH)
        .header(http::header::HOST, host.clone())
        .body(Empty::new())?;
    let sent_at = Instant::now();
    let response = sender.send_request(request).await?;
    let status = response.status();
    ensure!(status == StatusCode::OK, "status {status}");
    let body = response.into_body().collect().await?.to_bytes();
    let elapsed = sent_at.elapsed();
    ensure!(body.len() == PLAIN_LEN, "body of {} bytes", body.len());
    Ok(elapsed)
}

/// A keep-alive HTTP/1.1 client connection with `TCP_NODELAY`; its
/// connection task ends when the sender is dropped.
async fn connect_http1(addr: SocketAddr) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(err) = conn.await {
            tracing::debug!(error = %err, "bench client connection ended with error");
        }
    });
    Ok(sender)
}
