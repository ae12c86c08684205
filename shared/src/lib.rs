//! Code both h2hop binaries call.
//!
//! - [`translate`]: request and response heads across the hop, hop-by-hop hygiene.
//! - [`upgrade`]: the Upgrade allow-list, and the fields that carry an
//!   upgrade's method and body across the hop.
//! - [`websocket`]: the RFC 6455 key and accept each HTTP/1.1 leg computes.
//! - [`relay`]: tunnels and bodies across an HTTP/2 stream, bounded by flow control.
//! - [`tcp_connect`]: the two forms a TCP tunnel is asked for in, and its target.
//! - [`capsule`]: the capsules (RFC 9297) the `connect-tcp` form carries
//!   TCP payload in; [`capsule_relay`]: a TCP connection ⇄ a stream of them.
//! - [`runtime`]: the tokio runtime sized by `--workers`; [`host_port`]:
//!   the `host:port` addresses the flags name; [`networks`]: the source
//!   networks trust is given to; [`proxy_protocol`]: the PROXY protocol
//!   header a load balancer puts before a client's bytes.
//! - [`tls`]: rustls configurations for the mutually authenticated hop, the
//!   front identities a sidecar accepts, and certificate reloads.
//! - [`accept`]: the accept loop both listeners run; [`drain`]: graceful
//!   shutdown of what they spawned; [`limit`]: counted limits.
//! - [`metrics`] and [`admin`]: Prometheus metrics, health and readiness.
//! - [`access`]: the access log, one line per tunnel or request when it ends.
//! - [`error_answer`]: the body of an error answer and its request id;
//!   [`request_identity`]: `X-Request-Id` and W3C Trace Context.
//! - [`telemetry`]: tracing set-up shared by the binaries' `main`, writing
//!   through [`batch_writer`].

pub mod accept;
pub mod access;
pub mod activity;
pub mod admin;
pub mod batch_writer;
pub mod capsule;
pub mod capsule_relay;
pub mod drain;
pub mod error_answer;
pub mod grpc;
pub mod h2_settings;
pub mod host_port;
pub mod limit;
pub mod line_budget;
pub mod metrics;
pub mod networks;
pub mod proxy_protocol;
pub mod relay;
pub mod request_identity;
pub mod runtime;
pub mod signals;
pub mod tcp_connect;
pub mod telemetry;
pub mod tls;
pub mod translate;
pub mod upgrade;
pub mod websocket;

#[cfg(test)]
mod captured;
