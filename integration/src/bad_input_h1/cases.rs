//! The tables of bad HTTP/1.1 requests, one per family: request lines,
//! field names and values, framing (Content-Length, Transfer-Encoding),
//! chunking, oversized heads and WebSocket handshakes. Each
//! `tests/bad_input_h1_*.rs` file runs its family's table, and
//! `tests/bad_input_h1_open_tunnel.rs` runs them all at once.

use super::{Case, Expect, MAX_HEAD, case};

/// RFC 6455 §1.3 sample key: a valid 16-byte nonce.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// RFC 9112 §3 (request line), §3.2 (target forms), §2.2: a request line
/// that is not `method SP target SP HTTP/1.x`, an unusable target or a
/// version hyper does not speak gets 400 and never reaches the app. (The
/// HTTP/2 preface starts h2c: `tests/plain_h2c.rs`.)
pub fn request_line_cases() -> Vec<Case> {
    let bad = Expect::Status(400);
    let line = |l: &str| format!("{l}\r\nHost: app.test\r\n\r\n").into_bytes();
    vec![
        case("two spaces", line("GET  /a HTTP/1.1"), bad),
        case("no version", line("GET /a"), bad),
        case("HTTP/1.2", line("GET /a HTTP/1.2"), bad),
        case("HTTP/2.0 request line", line("GET /a HTTP/2.0"), bad),
        case("lower-case version", line("GET /a http/1.1"), bad),
        case("token after version", line("GET /a HTTP/1.1 x"), bad),
        case("tabs as separators", line("GET\t/a\tHTTP/1.1"), bad),
        case("leading space", line(" GET /a HTTP/1.1"), bad),
        case("NUL in method", line("G\0T /a HTTP/1.1"), bad),
        case("non-token method", line("G(T /a HTTP/1.1"), bad),
        case("DEL in target", line("GET /a\x7f HTTP/1.1"), bad),
        case("NUL in target", line("GET /a\0b HTTP/1.1"), bad),
        case(
            "byte 0xff in target",
            [b"GET /a\xffb HTTP/1.1\r\nHost: app.test\r\n\r\n".as_slice()].concat(),
            bad,
        ),
        case(
            "broken absolute form",
            line("GET http://[::1/ HTTP/1.1"),
            bad,
        ),
        // RFC 9112 §3.2.3: authority form is for CONNECT only.
        case(
            "authority form on GET",
            line("GET app.test:80 HTTP/1.1"),
            bad,
        ),
        // RFC 9112 §3.2.4: asterisk form is for OPTIONS only.
        case("asterisk form on GET", line("GET * HTTP/1.1"), bad),
    ]
}

/// RFC 9112 §5.1, §5.2, §2.2 (N50), §3.2 (N51), RFC 9110 §5.5 and S4:
/// whitespace before the colon, obs-fold, bare CR, NUL, DEL and non-token
/// bytes in names or values, a missing, repeated or invalid Host: 400, and
/// nothing reaches the app. A bare LF that smuggles a second Host line is a
/// repeated Host.
pub fn field_cases() -> Vec<Case> {
    let bad = Expect::Status(400);
    let fields = |f: &[u8]| [b"GET /a HTTP/1.1\r\n".as_slice(), f, b"\r\n"].concat();
    vec![
        case(
            "space before colon in Host",
            fields(b"Host : app.test\r\n"),
            bad,
        ),
        case(
            "space before colon",
            fields(b"Host: app.test\r\nX-A : b\r\n"),
            bad,
        ),
        case(
            "obs-fold with SP",
            fields(b"Host: app.test\r\nX-A: b\r\n c\r\n"),
            bad,
        ),
        case(
            "obs-fold with HTAB",
            fields(b"Host: app.test\r\nX-A: b\r\n\tc\r\n"),
            bad,
        ),
        case(
            "bare CR in a value",
            fields(b"Host: app.test\r\nX-A: b\rc\r\n"),
            bad,
        ),
        case(
            "bare CR ending a line",
            fields(b"Host: app.test\rX-A: b\r\n"),
            bad,
        ),
        case(
            "NUL in a value",
            fields(b"Host: app.test\r\nX-A: b\0c\r\n"),
            bad,
        ),
        case(
            "DEL in a value",
            fields(b"Host: app.test\r\nX-A: b\x7fc\r\n"),
            bad,
        ),
        case(
            "NUL in a name",
            fields(b"Host: app.test\r\nX\0A: b\r\n"),
            bad,
        ),
        case(
            "space in a name",
            fields(b"Host: app.test\r\nX A: b\r\n"),
            bad,
        ),
        case(
            "line without colon",
            fields(b"Host: app.test\r\nXA\r\n"),
            bad,
        ),
        case("empty name", fields(b"Host: app.test\r\n: b\r\n"), bad),
        case(
            "non-token name",
            fields(b"Host: app.test\r\nX(A): b\r\n"),
            bad,
        ),
        case(
            "byte 0xff in a name",
            fields(b"Host: app.test\r\nX\xffA: b\r\n"),
            bad,
        ),
        case(
            "bare LF smuggling a second Host",
            fields(b"Host: app.test\r\nX-A: b\nHost: evil.test\r\n"),
            bad,
        ),
        case("missing Host", fields(b"X-A: b\r\n"), bad),
        case(
            "repeated Host",
            fields(b"Host: app.test\r\nHost: evil.test\r\n"),
            bad,
        ),
        case(
            "repeated identical Host",
            fields(b"Host: app.test\r\nHost: app.test\r\n"),
            bad,
        ),
        case("Host list", fields(b"Host: app.test, evil.test\r\n"), bad),
        case("space in Host", fields(b"Host: app test\r\n"), bad),
        case("path in Host", fields(b"Host: app.test/x\r\n"), bad),
        case("empty Host", fields(b"Host:\r\n"), bad),
        // RFC 9110 §7.2: Host = uri-host [ ":" port ]; RFC 9112 §3.2: an
        // invalid Host value gets 400.
        case("userinfo in Host", fields(b"Host: u@app.test\r\n"), bad),
    ]
}

/// A request hidden behind the first one in the smuggling cases.
pub const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n";

/// RFC 9112 §6.1, §6.3 (N49), RFC 9110 §8.6: Content-Length values that
/// disagree or are not one decimal number, a Transfer-Encoding whose final
/// coding is not chunked, and Transfer-Encoding in HTTP/1.0 get 400 and a
/// close; a request hidden behind them never reaches the app.
pub fn framing_cases() -> Vec<Case> {
    let bad = Expect::StatusThenClose(400);
    let post = |fields: &str, body: &str| {
        format!("POST /echo HTTP/1.1\r\nHost: app.test\r\n{fields}\r\n{body}").into_bytes()
    };
    let chunked = format!("5\r\nhello\r\n0\r\n\r\n{SMUGGLED}");
    let hello = format!("hello{SMUGGLED}");
    vec![
        case(
            "two Content-Length values",
            post("Content-Length: 5\r\nContent-Length: 6\r\n", &hello),
            bad,
        ),
        case(
            "Content-Length list",
            post("Content-Length: 5, 6\r\n", &hello),
            bad,
        ),
        case(
            "negative Content-Length",
            post("Content-Length: -1\r\n", &hello),
            bad,
        ),
        case(
            "signed Content-Length",
            post("Content-Length: +5\r\n", &hello),
            bad,
        ),
        case(
            "hex Content-Length",
            post("Content-Length: 0x5\r\n", &hello),
            bad,
        ),
        case(
            "Content-Length over u64",
            post("Content-Length: 99999999999999999999999\r\n", &hello),
            bad,
        ),
        case(
            "Transfer-Encoding: chunked, identity",
            post("Transfer-Encoding: chunked, identity\r\n", &chunked),
            bad,
        ),
        case(
            "Transfer-Encoding: identity",
            post("Transfer-Encoding: identity\r\n", &hello),
            bad,
        ),
        case(
            "Transfer-Encoding: gzip",
            post("Transfer-Encoding: gzip\r\n", &hello),
            bad,
        ),
        case(
            "chunked then identity on two lines",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
                &chunked,
            ),
            bad,
        ),
        case(
            "Transfer-Encoding: xchunked",
            post("Transfer-Encoding: xchunked\r\n", &chunked),
            bad,
        ),
        case(
            "Transfer-Encoding in HTTP/1.0",
            format!(
                "POST /echo HTTP/1.0\r\nHost: app.test\r\n\
                 Transfer-Encoding: chunked\r\n\r\n{chunked}"
            ),
            bad,
        ),
    ]
}

/// RFC 9112 §7.1: a chunk size that is not hex, overflows, is negative or
/// `0x`-prefixed, chunk data not followed by CRLF, and bare LF in the chunk
/// framing are the client's error: 400 (never a 2xx, never a 502 blaming
/// the sidecar), and the connection closes.
pub fn chunk_cases() -> Vec<Case> {
    let bad = Expect::StatusThenClose(400);
    let post = |body: &str| {
        format!(
            "POST /echo HTTP/1.1\r\nHost: app.test\r\n\
             Transfer-Encoding: chunked\r\n\r\n{body}"
        )
        .into_bytes()
    };
    vec![
        case("chunk size zz", post("zz\r\nhello\r\n0\r\n\r\n"), bad),
        case("negative chunk size", post("-5\r\nhello\r\n0\r\n\r\n"), bad),
        case("chunk size 0x5", post("0x5\r\nhello\r\n0\r\n\r\n"), bad),
        case(
            "chunk size over u64",
            post("fffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
            bad,
        ),
        case(
            "chunk data without CRLF",
            post("5\r\nhelloXX0\r\n\r\n"),
            bad,
        ),
        case(
            "chunk size larger than the data",
            post("9\r\nhello\r\n0\r\n\r\n"),
            bad,
        ),
        case("bare LF in chunk framing", post("5\nhello\n0\n\n"), bad),
    ]
}

/// A head over `--max-header-size`: one huge field, too many fields
/// (hyper's limit is 100), or a huge target: 431 and a close, and nothing
/// reaches the app.
pub fn oversized_cases() -> Vec<Case> {
    let too_large = Expect::StatusThenClose(431);
    let big = "a".repeat(MAX_HEAD + 2000);
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    vec![
        case(
            "one field over the limit",
            format!("GET /a HTTP/1.1\r\nHost: app.test\r\nX-Big: {big}\r\n\r\n"),
            too_large,
        ),
        case(
            "150 fields",
            format!("GET /a HTTP/1.1\r\nHost: app.test\r\n{many}\r\n"),
            too_large,
        ),
        case(
            "target over the limit",
            format!("GET /{big} HTTP/1.1\r\nHost: app.test\r\n\r\n"),
            too_large,
        ),
    ]
}

/// A WebSocket handshake with `fields` replacing or adding to the valid
/// ones (an empty value drops the field), on `method` and `version`.
pub fn handshake(method: &str, version: &str, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut all = vec![
        ("Host", "app.test"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
    ];
    for (name, value) in fields {
        if let Some(slot) = all.iter_mut().find(|(n, _)| n == name) {
            slot.1 = value;
        } else {
            all.push((name, value));
        }
    }
    let mut head = format!("{method} /ws HTTP/{version}\r\n");
    for (name, value) in all.iter().filter(|(_, value)| !value.is_empty()) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// RFC 6455 §4.1, §4.2.1 (N38, N39, N40, N47): a handshake without Host,
/// without a key, with a key that is not 16 bytes in base64, with two keys,
/// without a version, with a body, or on another method than GET: 400 from
/// the front. §4.4 (N41): another version (or two): 426. None reaches the
/// app.
pub fn handshake_cases() -> Vec<Case> {
    let bad = Expect::Status(400);
    let get = |fields: &[(&str, &str)]| handshake("GET", "1.1", fields);
    let mut two_keys = handshake("GET", "1.1", &[]);
    two_keys.truncate(two_keys.len() - 2);
    two_keys.extend_from_slice(b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n");
    vec![
        case("no Host", get(&[("Host", "")]), bad),
        case("no key", get(&[("Sec-WebSocket-Key", "")]), bad),
        case("short key", get(&[("Sec-WebSocket-Key", "short")]), bad),
        // Base64 of 15 bytes, not 16 (RFC 6455 §4.1, item 7).
        case(
            "15-byte key",
            get(&[("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA")]),
            bad,
        ),
        case("two keys", two_keys, bad),
        case("no version", get(&[("Sec-WebSocket-Version", "")]), bad),
        case(
            "version 12",
            get(&[("Sec-WebSocket-Version", "12")]),
            Expect::Status(426),
        ),
        case(
            "versions 13 and 8",
            get(&[("Sec-WebSocket-Version", "13, 8")]),
            Expect::Status(426),
        ),
        case(
            "POST",
            handshake("POST", "1.1", &[("Content-Length", "0")]),
            bad,
        ),
        case("CONNECT", handshake("CONNECT", "1.1", &[]), bad),
        case(
            "Content-Length body",
            [get(&[("Content-Length", "5")]), b"hello".to_vec()].concat(),
            bad,
        ),
        case(
            "chunked body",
            [
                get(&[("Transfer-Encoding", "chunked")]),
                b"5\r\nhello\r\n0\r\n\r\n".to_vec(),
            ]
            .concat(),
            bad,
        ),
    ]
}
