//! End-to-end support for h2hop: the in-process test app behind the sidecar,
//! the test clients in front of the front, and nghttpx as either half for
//! the interoperability tests, and log capture.

pub mod app;
pub mod bench;
pub mod client;
pub mod h2_client;
pub mod harness;
pub mod interop;
pub mod logs;
