//! End-to-end support for h2hop: the in-process test app behind the sidecar,
//! the test clients in front of the front, a gRPC app and client
//! ([`grpc`], tonic), and nghttpx as either half for
//! the interoperability tests, and log capture; for the abuse tests, bad
//! HTTP/1.1 requests written by hand, raw HTTP/2 frames, bystander clients
//! and the front as a child process; for the fault tests, a pseudo-random
//! stream that shows a lost or reordered byte; for the TCP tunnel tests,
//! real services (redis, PostgreSQL, sshd) and their clients
//! ([`services`]) and scripted targets ([`tcp_peer`]). Child processes of every
//! kind run under [`process::Process`] (their CPU and memory read by
//! [`procstat`]), and a test waits for a condition with
//! [`wait::eventually`].

pub mod app;
pub mod bad_input_h1;
pub mod binaries;
pub mod bystander;
pub mod client;
pub mod front_process;
pub mod grpc;
pub mod h2_client;
pub mod h2_tap;
pub mod h2c_app;
pub mod haproxy;
pub mod harness;
pub mod interop;
pub mod logs;
pub mod noise;
pub mod process;
pub mod procstat;
pub mod raw_h2;
pub mod routed;
pub mod scrape;
pub mod scratch;
pub mod services;
pub mod tcp_peer;
pub mod wait;
