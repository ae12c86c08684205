//! The HTTP/2 settings of the hop (both ends, front and sidecar) and of
//! the front toward its clients: flow-control windows, frame size, and how
//! many reset streams are remembered. The relay's memory bound per stream
//! ([`crate::relay`]) is [`STREAM_WINDOW`].

/// HTTP/2 receive window per stream, set on both ends of the hop: the most
/// one tunnel direction can hold in flight (RFC 9113 §6.9.2).
pub const STREAM_WINDOW: u32 = 1024 * 1024;

/// HTTP/2 receive window of each connection on the hop, shared by all its
/// streams: the largest a window may be (2^31 − 1, RFC 9113 §6.9.1).
///
/// A stream never holds more than [`STREAM_WINDOW`], so memory stays
/// bounded per stream, while the connection's window only has to outlast
/// every stream stalled at once. A smaller one (16 MiB, before) let 17
/// clients that stopped reading pin all of it, and every other tunnel and
/// request on that shared connection stopped both ways (RFC 9113 §5.2.2:
/// a receiver that stops releasing connection-level credit stalls all
/// streams). nghttpx uses the same value toward its backends.
pub const CONNECTION_WINDOW: u32 = (1 << 31) - 1;

/// HTTP/2 receive window of a client's connection to the front. A client
/// owns it alone, so a stalled stream there only slows that client; the
/// front holds at most this much of one client's uploads.
pub const CLIENT_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// Locally reset streams each end of the hop remembers (h2 forgets the
/// oldest past this, default 50): frames already in flight for a stream
/// we reset are then dropped quietly, not answered with a reset of their
/// own, which h2 counts toward its limit on self-made resets.
pub const REMEMBERED_RESETS: usize = 10_000;

/// Largest frame payload each end of the hop accepts (SETTINGS_MAX_FRAME_SIZE,
/// RFC 9113 §6.5.2): a relay read of up to 64 KiB goes out as one
/// DATA frame instead of four of the default 16 KiB.
pub const MAX_FRAME_SIZE: u32 = 64 * 1024;

/// The HTTP/2 client settings of a connection many clients' streams share
/// (the front's to a sidecar, the sidecar's to an h2c app): no push, the
/// windows and frame size above, and resets of our own without a lifetime
/// limit. Each client's reset resets a stream here, and h2's default
/// limit, counted over the connection's whole life, would one day end the
/// shared connection for every client (GOAWAY ENHANCE_YOUR_CALM); the peer
/// is trusted, and frames for reset streams are dropped quietly while
/// [`REMEMBERED_RESETS`] of them are remembered.
pub fn shared_client() -> h2::client::Builder {
    let mut builder = h2::client::Builder::new();
    builder
        .enable_push(false)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_concurrent_reset_streams(REMEMBERED_RESETS)
        .max_local_error_reset_streams(None);
    builder
}
