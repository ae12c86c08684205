//! End-to-end support for h2hop: the in-process test app behind the sidecar
//! and the test clients in front of the front.

pub mod app;
pub mod bench;
pub mod client;
pub mod harness;
