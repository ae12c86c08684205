//! A real gRPC stack (tonic, with hand-written prost messages: no protoc,
//! no build script) for the end-to-end tests: the test service `test.Echo`
//! ([`app::GrpcApp`], cleartext HTTP/2 on loopback, as a mesh app serves)
//! and its client ([`client::GrpcClient`], over h2c or TLS with ALPN `h2`).
//!
//! The service's methods, each a path of [`METHODS`]:
//! - `Unary`: an [`EchoMessage`] back as sent;
//! - `ServerStream`: [`StreamRequest::count`] messages, with
//!   [`StreamRequest::delay_ms`] before each, then status 0;
//! - `ClientStream`: the [`Sum`] and count of the [`Number`]s sent;
//! - `BidiStream`: each [`EchoMessage`] back as it comes;
//! - `Fail`: the status [`FailRequest`] names, with its message.

pub mod app;
pub mod cases;
pub mod client;

/// `/test.Echo/Unary`.
pub const UNARY: &str = "/test.Echo/Unary";
/// `/test.Echo/ServerStream`.
pub const SERVER_STREAM: &str = "/test.Echo/ServerStream";
/// `/test.Echo/ClientStream`.
pub const CLIENT_STREAM: &str = "/test.Echo/ClientStream";
/// `/test.Echo/BidiStream`.
pub const BIDI_STREAM: &str = "/test.Echo/BidiStream";
/// `/test.Echo/Fail`.
pub const FAIL: &str = "/test.Echo/Fail";
/// Every method of `test.Echo`.
pub const METHODS: [&str; 5] = [UNARY, SERVER_STREAM, CLIENT_STREAM, BIDI_STREAM, FAIL];

/// A text, echoed (and numbered, on a server stream).
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoMessage {
    /// What was said.
    #[prost(string, tag = "1")]
    pub text: String,
    /// The message's place in its stream, from 0.
    #[prost(uint32, tag = "2")]
    pub index: u32,
}

/// `ServerStream`'s request: how many messages, how far apart.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamRequest {
    /// The text each message carries.
    #[prost(string, tag = "1")]
    pub text: String,
    /// How many messages the server sends.
    #[prost(uint32, tag = "2")]
    pub count: u32,
    /// Milliseconds the server waits before each message.
    #[prost(uint32, tag = "3")]
    pub delay_ms: u32,
}

/// One number of a `ClientStream` call.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Number {
    /// The value.
    #[prost(uint64, tag = "1")]
    pub value: u64,
}

/// `ClientStream`'s answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sum {
    /// The sum of the values sent.
    #[prost(uint64, tag = "1")]
    pub total: u64,
    /// How many were sent.
    #[prost(uint32, tag = "2")]
    pub count: u32,
}

/// `Fail`'s request: the status to answer with.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FailRequest {
    /// A gRPC status code (`tonic::Code` as an integer).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The `grpc-message` to send with it.
    #[prost(string, tag = "2")]
    pub message: String,
}
