//! The gRPC length-prefixed message (gRPC over HTTP/2, "Length-Prefixed-
//! Message"): one byte of compressed flag (0 here), four bytes of length in
//! network order, then the message. The bench's gRPC app and its clients
//! both frame and unframe with it.
//!
//! Also the fixed parts of a unary call the bench makes: its path, its
//! content type and its payload.

use bytes::{BufMut as _, Bytes, BytesMut};

/// The method every bench call names (`/{service}/{method}`).
pub const CALL_PATH: &str = "/h2hop.bench.Echo/Call";
/// The content type of a gRPC request and response.
pub const CONTENT_TYPE: &str = "application/grpc";
/// The message of every bench call: small, like most unary requests.
pub const PAYLOAD: &[u8] = b"h2hop bench: one unary gRPC call";
/// Length of the prefix before each message.
pub const PREFIX_LEN: usize = 5;

/// `message` with its uncompressed length prefix; `None` past 4 GiB.
pub fn frame(message: &[u8]) -> Option<Bytes> {
    let len = u32::try_from(message.len()).ok()?;
    let mut out = BytesMut::with_capacity(PREFIX_LEN + message.len());
    out.put_u8(0);
    out.put_u32(len);
    out.put_slice(message);
    Some(out.freeze())
}

/// Why a body is not exactly one uncompressed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer than five bytes.
    ShortPrefix,
    /// The compressed flag is set; the bench never compresses.
    Compressed,
    /// The body's length after the prefix is not the one the prefix says.
    WrongLength {
        /// What the prefix says.
        declared: u32,
        /// What follows the prefix.
        actual: usize,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::ShortPrefix => write!(f, "body shorter than the 5-byte prefix"),
            FrameError::Compressed => write!(f, "compressed flag set"),
            FrameError::WrongLength { declared, actual } => {
                write!(f, "prefix says {declared} bytes, {actual} follow")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// The one message in `body`, which must hold exactly one uncompressed
/// length-prefixed message.
pub fn unframe(body: &[u8]) -> Result<&[u8], FrameError> {
    let (prefix, message) = body
        .split_first_chunk::<PREFIX_LEN>()
        .ok_or(FrameError::ShortPrefix)?;
    if prefix[0] != 0 {
        return Err(FrameError::Compressed);
    }
    let declared = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
    if usize::try_from(declared).ok() != Some(message.len()) {
        return Err(FrameError::WrongLength {
            declared,
            actual: message.len(),
        });
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_puts_a_zero_flag_and_a_big_endian_length_first() {
        let framed = frame(b"abc").unwrap();
        assert_eq!(&framed[..], b"\0\0\0\0\x03abc");
    }

    #[test]
    fn unframe_returns_what_frame_wrapped() {
        let framed = frame(PAYLOAD).unwrap();
        assert_eq!(unframe(&framed), Ok(PAYLOAD));
        assert_eq!(unframe(b"\0\0\0\0\0"), Ok(&b""[..]));
    }

    #[test]
    fn unframe_rejects_short_compressed_and_mislengthed_bodies() {
        assert_eq!(unframe(b"\0\0\0"), Err(FrameError::ShortPrefix));
        assert_eq!(unframe(b"\x01\0\0\0\x01a"), Err(FrameError::Compressed));
        assert_eq!(
            unframe(b"\0\0\0\0\x02a"),
            Err(FrameError::WrongLength {
                declared: 2,
                actual: 1
            })
        );
        // Two messages in one body are not one unary request.
        assert!(unframe(b"\0\0\0\0\x01a\0\0\0\0\x01b").is_err());
    }
}
