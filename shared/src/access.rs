//! Access log: one structured line per tunnel or plain request, when it ends.
//!
//! The stage that accepts a request makes an [`Entry`]; whoever holds the
//! request last (a relay task, or the response body hyper writes) fills in
//! the outcome, and the entry writes its line when it is dropped, so a
//! request that ends in any way, aborted ones included, logs exactly once.
//! Lines are `info` events with the target [`TARGET`], formatted like every
//! other line (`--log-format text|json`). In the text format at the info
//! level, the binaries' default, a line skips `tracing` and is written
//! straight to the log writer ([`write_directly`]), as the same text
//! without span context: through `tracing` it cost a sixth of a plain
//! GET's instructions at the front.

use std::cell::OnceCell;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use bytes::Buf as _;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use crate::batch_writer::BatchWriter;
use crate::line_budget::{LineBudget, Verdict};
use crate::relay;
use crate::request_identity::RequestIdentity;
use crate::telemetry::text;

/// The `tracing` target of access lines, to filter or route them.
pub const TARGET: &str = "h2hop::access";

/// Where access lines go when they skip `tracing`; unset, they are events.
static DIRECT: OnceLock<BatchWriter> = OnceLock::new();

/// Has every access line from now on written straight to `writer`, in the
/// text format, rather than sent through `tracing`. For
/// [`crate::telemetry::init`], when the text format is written at the info
/// level: the line is the same but for the span context tracing would
/// print before the target (a front's `conn{peer=...}`, which the line's
/// own `peer` field carries anyway). Only the first call has an effect.
pub(crate) fn write_directly(writer: BatchWriter) {
    let _ = DIRECT.set(writer);
}

/// What kind of exchange a line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An upgrade, tunnelled or refused.
    Tunnel,
    /// A plain request.
    Request,
    /// A TCP tunnel: a `[[tcp]]` listener's connection at the front, a
    /// CONNECT to an allowed target at the sidecar. `authority` is the
    /// target.
    Tcp,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Tunnel => "tunnel",
            Kind::Request => "request",
            Kind::Tcp => "tcp",
        }
    }
}

/// How an exchange ended: the line's `close` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The response (body and all) was delivered; or a tunnel ended with
    /// FIN / END_STREAM both ways.
    Done,
    /// Cut short before its end: the client left, the far side reset the
    /// stream, or a shutdown's drain period ran out.
    Aborted,
    /// A tunnel's TCP peer reset the connection.
    TcpReset,
    /// A tunnel's HTTP/2 stream was reset by the peer.
    StreamReset,
    /// A tunnel was closed after its idle timeout.
    Idle,
    /// A tunnel's far side had ended, and its near side (the client, at the
    /// front) did not end its half within the fin timeout.
    FinTimeout,
}

impl Close {
    fn as_str(self) -> &'static str {
        match self {
            Close::Done => "done",
            Close::Aborted => "aborted",
            Close::TcpReset => "tcp_reset",
            Close::StreamReset => "stream_reset",
            Close::Idle => "idle",
            Close::FinTimeout => "fin_timeout",
        }
    }
}

impl From<relay::Close> for Close {
    fn from(close: relay::Close) -> Self {
        match close {
            relay::Close::Clean => Close::Done,
            relay::Close::TcpReset => Close::TcpReset,
            relay::Close::StreamReset => Close::StreamReset,
            relay::Close::Idle => Close::Idle,
            relay::Close::FinTimeout => Close::FinTimeout,
        }
    }
}

/// Byte counts that a body in another task adds to.
#[derive(Debug, Default)]
pub struct ByteCounts {
    up: AtomicU64,
    down: AtomicU64,
}

/// One exchange's line, written when the entry is dropped. A tunnel keeps
/// its entry for its whole life, so it is kept small: one allocation for
/// the authority and path, and shared counters only once a body in another
/// task asks for them.
#[derive(Debug)]
pub struct Entry {
    kind: Kind,
    /// The client (at the front) or the front (at the sidecar).
    peer: SocketAddr,
    route: Option<Arc<str>>,
    /// The authority, then the path.
    target: Box<str>,
    authority_len: usize,
    protocol: Option<Box<str>>,
    status: u16,
    close: Close,
    started: Instant,
    up: u64,
    down: u64,
    shared: OnceCell<Arc<ByteCounts>>,
    /// The settled client, request id and trace id; boxed, as most of an
    /// entry's life does not need them close.
    identity: Option<Box<RequestIdentity>>,
    /// Kept until the line is written: whatever must live exactly as long
    /// as the exchange (a connection's count of what it has in flight).
    held: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl Entry {
    /// A new entry for an exchange with `peer` (the client at the front,
    /// the front at the sidecar); its clock starts now. Until told otherwise
    /// it logs status 0 (no answer was given) and [`Close::Aborted`].
    pub fn new(kind: Kind, peer: SocketAddr, authority: &str, path: &str) -> Self {
        Self {
            kind,
            peer,
            route: None,
            target: [authority, path].concat().into(),
            authority_len: authority.len(),
            protocol: None,
            status: 0,
            close: Close::Aborted,
            started: Instant::now(),
            up: 0,
            down: 0,
            shared: OnceCell::new(),
            identity: None,
            held: None,
        }
    }

    /// Keeps `thing` until the line is written, that is for as long as the
    /// exchange lasts (a tunnel's whole life).
    pub fn hold(&mut self, thing: impl std::any::Any + Send + Sync) {
        self.held = Some(Box::new(thing));
    }

    /// Who and which request: the line's `client`, `request_id` and
    /// `trace_id` (each `-` until this is called).
    pub fn identity(&mut self, identity: RequestIdentity) {
        self.identity = Some(Box::new(identity));
    }

    /// The request id of [`Entry::identity`], if one was given.
    pub fn request_id(&self) -> Option<&str> {
        self.identity.as_ref()?.request_id.as_deref()
    }

    /// Names the route (on the front: the cluster it went to).
    pub fn route(&mut self, route: Arc<str>) {
        self.route = Some(route);
    }

    /// Names the Upgrade protocol of a tunnel.
    pub fn protocol(&mut self, protocol: &str) {
        self.protocol = Some(protocol.into());
    }

    /// The status answered (for a tunnel: the status the far side chose,
    /// 101 or 200 when it opened).
    pub fn status(&mut self, status: http::StatusCode) {
        self.status = status.as_u16();
    }

    /// How it ended.
    pub fn close(&mut self, close: Close) {
        self.close = close;
    }

    /// Adds to the bytes moved toward the app (`up`) and the client (`down`).
    pub fn add_bytes(&mut self, up: u64, down: u64) {
        self.up += up;
        self.down += down;
    }

    /// Counts for a body that moves in another task ([`Counted`]); they
    /// add to [`Entry::add_bytes`]'s.
    pub fn bytes(&self) -> Arc<ByteCounts> {
        self.shared.get_or_init(Arc::default).clone()
    }

    /// Bytes up and down, from both kinds of counting.
    fn totals(&self) -> (u64, u64) {
        let (up, down) = self.shared.get().map_or((0, 0), |shared| {
            (
                shared.up.load(Ordering::Relaxed),
                shared.down.load(Ordering::Relaxed),
            )
        });
        (self.up + up, self.down + down)
    }
}

impl Entry {
    /// Appends the line [`Entry`]'s drop writes in the text format, as
    /// `tracing` with [`text::Fields`] would at the info level with no span
    /// entered (a unit test holds the two to the same text).
    fn push_line(&self, out: &mut String, micros: u64, bytes_up: u64, bytes_down: u64) {
        let (authority, path) = self.target.split_at(self.authority_len);
        text::push_now(out);
        out.push_str("  INFO ");
        out.push_str(TARGET);
        out.push_str(": access kind=\"");
        out.push_str(self.kind.as_str());
        out.push_str("\" peer=");
        push_addr(out, self.peer);
        let identity = self.identity.as_deref();
        out.push_str(" client=");
        match identity.and_then(|identity| identity.client) {
            Some(client) => {
                let _ = write!(out, "{client}");
            }
            None => out.push('-'),
        }
        out.push_str(" request_id=");
        let request_id = identity.map_or("-", RequestIdentity::request_id_text);
        let _ = text::write_quoted(out, request_id);
        out.push_str(" trace_id=");
        match identity.and_then(|identity| identity.trace_id) {
            Some(trace_id) => {
                let _ = write!(out, "{trace_id}");
            }
            None => out.push('-'),
        }
        for (name, value) in [
            (" route=", self.route.as_deref().unwrap_or("-")),
            (" authority=", authority),
            (" path=", path),
            (" protocol=", self.protocol.as_deref().unwrap_or("-")),
        ] {
            out.push_str(name);
            let _ = text::write_quoted(out, value);
        }
        let mut number = itoa::Buffer::new();
        out.push_str(" status=");
        out.push_str(number.format(self.status));
        out.push_str(" duration_ms=");
        push_millis(out, micros);
        out.push_str(" bytes_up=");
        out.push_str(number.format(bytes_up));
        out.push_str(" bytes_down=");
        out.push_str(number.format(bytes_down));
        out.push_str(" close=\"");
        out.push_str(self.close.as_str());
        out.push_str("\"\n");
    }

    /// Sends the line through `tracing`.
    fn emit(&self, micros: u64, bytes_up: u64, bytes_down: u64) {
        let (authority, path) = self.target.split_at(self.authority_len);
        let identity = self.identity.as_deref();
        tracing::info!(
            target: TARGET,
            kind = self.kind.as_str(),
            peer = %self.peer,
            client = %identity.map_or_else(|| "-".to_owned(), RequestIdentity::client_text),
            request_id = identity.map_or("-", RequestIdentity::request_id_text),
            trace_id = %identity.map_or_else(|| "-".to_owned(), RequestIdentity::trace_id_text),
            route = self.route.as_deref().unwrap_or("-"),
            authority,
            path,
            protocol = self.protocol.as_deref().unwrap_or("-"),
            status = self.status,
            // Whole microseconds, so that the line shows `3.58`, not
            // `3.5796370000000004`.
            duration_ms = micros as f64 / 1e3,
            bytes_up,
            bytes_down,
            close = self.close.as_str(),
            "access"
        );
    }
}

/// Access lines per second of exchanges that ended before any answer (a
/// client's reset, mostly); past it they are counted, and the count is
/// written with the next one that fits.
const UNANSWERED_LINES_PER_SECOND: u32 = 100;

static UNANSWERED_LINES: LineBudget = LineBudget::new(UNANSWERED_LINES_PER_SECOND);

/// Whether an unanswered exchange's line may be written now; says first
/// how many were left out before it.
fn unanswered_line_fits() -> bool {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    let second = START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs();
    match UNANSWERED_LINES.take(second) {
        Verdict::LeaveOut => false,
        Verdict::Write { left_out_before: 0 } => true,
        Verdict::Write { left_out_before } => {
            tracing::warn!(
                target: TARGET,
                left_out = left_out_before,
                per_second = UNANSWERED_LINES_PER_SECOND,
                "access lines of exchanges ended before any answer were left out"
            );
            true
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if self.status == 0 && self.close == Close::Aborted && !unanswered_line_fits() {
            return;
        }
        let (bytes_up, bytes_down) = self.totals();
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match DIRECT.get() {
            Some(writer) => {
                let mut line = String::with_capacity(256);
                self.push_line(&mut line, micros, bytes_up, bytes_down);
                writer.append(line.as_bytes());
            }
            None => self.emit(micros, bytes_up, bytes_down),
        }
    }
}

/// Appends `addr` as its `Display` writes it; an IPv4 address by hand,
/// which costs a tenth of the formatting machinery's price.
fn push_addr(out: &mut String, addr: SocketAddr) {
    let SocketAddr::V4(v4) = addr else {
        let _ = write!(out, "{addr}");
        return;
    };
    let mut number = itoa::Buffer::new();
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(number.format(octet));
    }
    out.push(':');
    out.push_str(number.format(v4.port()));
}

/// Appends `micros` as milliseconds the way `f64`'s `Debug` writes
/// `micros as f64 / 1e3`: `3.58`, `12.0`, `0.007`.
fn push_millis(out: &mut String, micros: u64) {
    let mut number = itoa::Buffer::new();
    out.push_str(number.format(micros / 1000));
    out.push('.');
    let fraction = micros % 1000;
    if fraction == 0 {
        out.push('0');
        return;
    }
    let mut digits = String::with_capacity(3);
    text::push_padded(&mut digits, fraction, 3);
    out.push_str(digits.trim_end_matches('0'));
}

/// Which way a [`Counted`] body moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Toward the app.
    Up,
    /// Toward the client.
    Down,
}

/// A body that adds the length of its data to an entry's counts.
#[derive(Debug)]
pub struct Counted<B> {
    body: B,
    bytes: Arc<ByteCounts>,
    direction: Direction,
}

impl<B> Counted<B> {
    /// Counts `body`'s data into `bytes`, as moving `direction`.
    pub fn new(body: B, bytes: Arc<ByteCounts>, direction: Direction) -> Self {
        Self {
            body,
            bytes,
            direction,
        }
    }
}

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        if let Some(Ok(frame)) = &frame {
            let len = frame.data_ref().map_or(0, |data| data.remaining() as u64);
            let counter = match self.direction {
                Direction::Up => &self.bytes.up,
                Direction::Down => &self.bytes.down,
            };
            counter.fetch_add(len, Ordering::Relaxed);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body that owns its exchange's [`Entry`]: it counts what it
/// delivers toward the client and logs when hyper drops it, as
/// [`Close::Done`] if it reached its end and [`Close::Aborted`] if not.
/// Without an entry (a tunnel's 101, whose relay logs) it only passes
/// frames on.
#[derive(Debug)]
pub struct Logged<B> {
    body: B,
    entry: Option<Entry>,
    delivered: u64,
    // A response's Content-Length: HTTP/1.1 writers stop polling once that
    // much went out, so reaching it is the end.
    length: Option<u64>,
}

impl<B: Body> Logged<B> {
    /// Wraps `body`, which is `length` bytes long if that is known;
    /// `entry` already carries the status.
    pub fn new(body: B, mut entry: Option<Entry>, length: Option<u64>) -> Self {
        if let Some(entry) = &mut entry
            && (body.is_end_stream() || length == Some(0))
        {
            entry.close(Close::Done);
        }
        Self {
            body,
            entry,
            delivered: 0,
            length,
        }
    }
}

impl<B: Body + Unpin> Body for Logged<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        if let Some(entry) = &mut this.entry {
            match &frame {
                Some(Ok(frame)) => {
                    let len = frame.data_ref().map_or(0, |data| data.remaining() as u64);
                    entry.add_bytes(0, len);
                    this.delivered += len;
                    if this.body.is_end_stream() || this.length == Some(this.delivered) {
                        entry.close(Close::Done);
                    }
                }
                Some(Err(_)) => entry.close(Close::Aborted),
                None => entry.close(Close::Done),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::captured::Captured;
    use http_body_util::{BodyExt as _, Full, StreamBody};
    use tracing_subscriber::layer::SubscriberExt as _;

    const PEER: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4000);

    #[test]
    fn milliseconds_are_written_as_f64_debug_writes_them() {
        let mut micros: Vec<u64> = (0..20_000).collect();
        micros.extend([
            999_999,
            1_000_000,
            3_580_000,
            5_002_030_000,
            86_400_000_000_123,
        ]);
        micros.extend((0..2_000).map(|n| n * 7_919_113));
        for micros in micros {
            let mut ours = String::new();
            push_millis(&mut ours, micros);
            assert_eq!(ours, format!("{:?}", micros as f64 / 1e3), "{micros} µs");
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for addr in [
            "127.0.0.1:4000",
            "10.255.0.9:65535",
            "0.0.0.0:0",
            "[::1]:443",
            "[fe80::1%2]:80",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut ours = String::new();
            push_addr(&mut ours, addr);
            assert_eq!(ours, addr.to_string());
        }
    }

    /// A written line without its timestamp (the two clocks differ).
    fn after_timestamp(line: &str) -> &str {
        line.split_once(' ').expect("a timestamp").1
    }

    #[test]
    fn the_direct_line_is_the_tracing_line() {
        let mut entry = Entry::new(Kind::Tunnel, PEER, "chat.example:8443", "/ws?a=\"b\"");
        entry.route(Arc::from("chat"));
        entry.protocol("websocket");
        entry.status(http::StatusCode::SWITCHING_PROTOCOLS);
        entry.add_bytes(5830, 120_334);
        entry.close(Close::Done);

        let mut direct = String::new();
        entry.push_line(&mut direct, 73_004_200, 5830, 120_334);

        let buffer = Captured::default();
        let sink = buffer.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .fmt_fields(text::Fields)
            .with_timer(text::Clock)
            .with_writer(move || sink.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || entry.emit(73_004_200, 5830, 120_334));
        let traced = buffer.text();

        assert_eq!(after_timestamp(&direct), after_timestamp(&traced));
        assert_eq!(
            after_timestamp(&direct),
            " INFO h2hop::access: access kind=\"tunnel\" peer=127.0.0.1:4000 client=- \
             request_id=\"-\" trace_id=- route=\"chat\" \
             authority=\"chat.example:8443\" path=\"/ws?a=\\\"b\\\"\" protocol=\"websocket\" \
             status=101 duration_ms=73004.2 bytes_up=5830 bytes_down=120334 close=\"done\"\n"
        );
        // Both start with a timestamp of the same shape.
        assert_eq!(direct.find(' '), traced.find(' '));
    }

    /// With a client, request id and trace id, the two lines still agree.
    #[test]
    fn the_direct_line_with_identity_is_the_tracing_line() {
        let mut entry = Entry::new(Kind::Request, PEER, "a", "/");
        let mut headers = http::HeaderMap::new();
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert("traceparent", http::HeaderValue::from_static(traceparent));
        headers.insert("x-request-id", http::HeaderValue::from_static("id-7"));
        let mut identity = RequestIdentity::from_headers(&headers);
        identity.client = Some("2001:db8::7".parse().unwrap());
        entry.identity(identity);
        entry.status(http::StatusCode::OK);
        let mut direct = String::new();
        entry.push_line(&mut direct, 1000, 0, 0);
        let buffer = Captured::default();
        let sink = buffer.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .fmt_fields(text::Fields)
            .with_timer(text::Clock)
            .with_writer(move || sink.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || entry.emit(1000, 0, 0));
        assert_eq!(after_timestamp(&direct), after_timestamp(&buffer.text()));
        assert!(
            direct.contains(
                " client=2001:db8::7 request_id=\"id-7\" \
                 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 "
            ),
            "{direct}"
        );
    }

    #[tokio::test]
    async fn counted_adds_data_lengths() {
        let entry = Entry::new(Kind::Request, PEER, "a", "/");
        let body = Full::new(bytes::Bytes::from_static(b"hello"));
        let counted = Counted::new(body, entry.bytes(), Direction::Up);
        let collected = counted.collect().await.unwrap().to_bytes();
        assert_eq!(collected, "hello");
        assert_eq!(entry.totals(), (5, 0));
    }

    #[test]
    fn direct_and_shared_counts_add_up() {
        let mut entry = Entry::new(Kind::Tunnel, PEER, "host:1", "/ws");
        entry.add_bytes(3, 4);
        assert_eq!(entry.totals(), (3, 4));
        entry.bytes().down.fetch_add(10, Ordering::Relaxed);
        assert_eq!(entry.totals(), (3, 14));
        let (authority, path) = entry.target.split_at(entry.authority_len);
        assert_eq!((authority, path), ("host:1", "/ws"));
    }

    #[tokio::test]
    async fn logged_is_done_only_at_the_end_of_the_body() {
        let chunks = vec![
            Ok::<_, std::convert::Infallible>(Frame::data(bytes::Bytes::from_static(b"ab"))),
            Ok(Frame::data(bytes::Bytes::from_static(b"cde"))),
        ];
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        let entry = Entry::new(Kind::Request, PEER, "a", "/");
        let mut logged = Logged::new(body, Some(entry), None);
        let first = logged.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "ab");
        let close = |logged: &Logged<_>| logged.entry.as_ref().unwrap().close;
        assert_eq!(close(&logged), Close::Aborted, "not at the end yet");
        let _ = logged.frame().await.unwrap().unwrap();
        assert!(logged.frame().await.is_none());
        assert_eq!(close(&logged), Close::Done);
        assert_eq!(logged.entry.as_ref().unwrap().totals(), (0, 5));
    }

    #[tokio::test]
    async fn logged_is_done_once_the_content_length_went_out() {
        let chunks = vec![
            Ok::<_, std::convert::Infallible>(Frame::data(bytes::Bytes::from_static(b"ab"))),
            Ok(Frame::data(bytes::Bytes::from_static(b"cde"))),
        ];
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        let entry = Entry::new(Kind::Request, PEER, "a", "/");
        let mut logged = Logged::new(body, Some(entry), Some(5));
        let _ = logged.frame().await.unwrap().unwrap();
        assert_eq!(logged.entry.as_ref().unwrap().close, Close::Aborted);
        let _ = logged.frame().await.unwrap().unwrap();
        // Not polled to its end, as hyper does with a Content-Length.
        assert_eq!(logged.entry.unwrap().close, Close::Done);
    }

    #[test]
    fn an_empty_body_is_done_at_once() {
        let entry = Entry::new(Kind::Request, PEER, "a", "/");
        let logged = Logged::new(Full::new(bytes::Bytes::new()), Some(entry), None);
        assert_eq!(logged.entry.unwrap().close, Close::Done);
    }
}
