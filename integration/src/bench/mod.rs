//! `h2hop-bench`: the same workloads through direct, h2hop and peer proxy
//! pairs, on loopback, in one run, so that ratios can be compared.
//!
//! - [`systems`]: starts each system under test as child processes
//!   (app, and the proxies in front of it) and says where clients connect;
//! - [`workloads`]: the load generator: throughput, latency, idle memory,
//!   handshakes, plain requests;
//! - [`procstat`]: CPU time and memory of the proxy processes, from `/proc`;
//! - [`report`]: medians over rounds, ratios to direct, a Markdown table and
//!   an SVG chart.

pub mod procstat;
pub mod report;
pub mod systems;
pub mod workloads;

use std::net::SocketAddr;

/// A system under test, running: where clients connect, and which
/// processes are the proxies whose CPU and memory count.
#[derive(Debug, Clone)]
pub struct Target {
    /// Short name for tables: `direct`, `h2hop-h2c`, `h2hop-mtls`, `nghttpx`, `haproxy`.
    pub name: String,
    /// Where the load generator connects (HTTP/1.1, WebSocket).
    pub addr: SocketAddr,
    /// Process ids of the proxies (front and sidecar); empty for direct.
    pub proxy_pids: Vec<u32>,
}
