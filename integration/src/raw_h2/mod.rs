//! Raw HTTP/2 for the abuse tests: frames written byte by byte with a
//! minimal HPACK encoder ([`hpack`]), so that a test can send what no
//! HTTP/2 library would (malformed field blocks, floods, bad
//! WINDOW_UPDATEs), the field lists of well-formed requests to start from
//! ([`fields`]), and a frame reader for the answers ([`connection`]).
//!
//! Used against the sidecar over h2c (`tests/bad_input_h2_*.rs`) and against
//! the front's client-facing TLS listener (`tests/client_h2_abuse.rs`,
//! `tests/client_h2_flow.rs`, `tests/bystander.rs`), through [`tls_h2`].

pub mod connection;
pub mod fields;
pub mod hpack;

pub use connection::{FrameReader, Raw, tls_h2, tls_h2_small_receive_buffer};
pub use hpack::{block, hpack_int, indexed, literal, literal_indexed, status};

/// Frame type DATA (RFC 9113 §6.1).
pub const DATA: u8 = 0x0;
/// HEADERS (RFC 9113 §6.2).
pub const HEADERS: u8 = 0x1;
/// RST_STREAM (RFC 9113 §6.4).
pub const RST_STREAM: u8 = 0x3;
/// SETTINGS (RFC 9113 §6.5).
pub const SETTINGS: u8 = 0x4;
/// PING (RFC 9113 §6.7).
pub const PING: u8 = 0x6;
/// GOAWAY (RFC 9113 §6.8).
pub const GOAWAY: u8 = 0x7;
/// WINDOW_UPDATE (RFC 9113 §6.9).
pub const WINDOW_UPDATE: u8 = 0x8;
/// CONTINUATION (RFC 9113 §6.10).
pub const CONTINUATION: u8 = 0x9;

/// Flag END_STREAM (DATA, HEADERS).
pub const END_STREAM: u8 = 0x1;
/// Flag ACK (SETTINGS, PING).
pub const ACK: u8 = 0x1;
/// Flag END_HEADERS (HEADERS, CONTINUATION).
pub const END_HEADERS: u8 = 0x4;

/// Error code NO_ERROR (RFC 9113 §7).
pub const NO_ERROR: u32 = 0x0;
/// PROTOCOL_ERROR.
pub const PROTOCOL_ERROR: u32 = 0x1;
/// FLOW_CONTROL_ERROR.
pub const FLOW_CONTROL_ERROR: u32 = 0x3;
/// REFUSED_STREAM.
pub const REFUSED_STREAM: u32 = 0x7;
/// CANCEL.
pub const CANCEL: u32 = 0x8;
/// COMPRESSION_ERROR.
pub const COMPRESSION_ERROR: u32 = 0x9;
/// ENHANCE_YOUR_CALM.
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

// ----- frames (RFC 9113 §4.1) -----

/// One frame: 9-byte head, then `payload`.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// SETTINGS with these (identifier, value) pairs (RFC 9113 §6.5.1).
pub fn settings(values: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in values {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

/// The ACK of the peer's SETTINGS.
pub fn settings_ack() -> Vec<u8> {
    frame(SETTINGS, ACK, 0, &[])
}

/// A PING (not an ACK) carrying `data`.
pub fn ping(data: u64) -> Vec<u8> {
    frame(PING, 0, 0, &data.to_be_bytes())
}

/// RST_STREAM on `stream` with `code`.
pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// WINDOW_UPDATE of `increment` on `stream` (0: the connection).
pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

/// One frame as read.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier (reserved bit cleared).
    pub stream: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

/// How the peer answered one raw stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A response HEADERS with a status from HPACK's static table.
    Status(u16),
    /// A response HEADERS whose `:status` is not a static-table entry
    /// (its first bytes).
    OtherHeaders(Vec<u8>),
    /// RST_STREAM with this error code.
    Reset(u32),
    /// GOAWAY with this error code.
    GoAway(u32),
    /// The connection ended without either.
    Closed,
}

impl Frame {
    /// The 32-bit error code at `at` in the payload (RST_STREAM: 0,
    /// GOAWAY: 4); 0 when the payload is too short.
    pub fn error_code(&self, at: usize) -> u32 {
        let bytes = self.payload.get(at..at + 4).unwrap_or(&[0; 4]);
        u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }

    /// A GOAWAY's debug data, as text.
    pub fn debug_data(&self) -> String {
        let data = self.payload.get(8..).unwrap_or_default();
        String::from_utf8_lossy(data).into_owned()
    }

    /// What this frame says about `stream`, if anything.
    pub fn answer_for(&self, stream: u32) -> Option<Answer> {
        match self.kind {
            GOAWAY => Some(Answer::GoAway(self.error_code(4))),
            RST_STREAM if self.stream == stream => Some(Answer::Reset(self.error_code(0))),
            HEADERS if self.stream == stream => Some(status(&self.payload)),
            _ => None,
        }
    }
}
