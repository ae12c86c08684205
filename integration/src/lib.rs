//! End-to-end support for h2hop: the in-process test app behind the sidecar,
//! the test clients in front of the front, and nghttpx as either half for
//! the interoperability tests, and log capture; for the abuse tests, raw
//! HTTP/2 frames, bystander clients and the front as a child process. Child
//! processes of every kind run under [`process::Process`], and a test
//! waits for a condition with [`wait::eventually`].

pub mod app;
pub mod binaries;
pub mod bystander;
pub mod client;
pub mod front_process;
pub mod h2_client;
pub mod harness;
pub mod interop;
pub mod logs;
pub mod process;
pub mod raw_h2;
pub mod scratch;
pub mod wait;
