//! What the fuzz targets share: hyper-like parsing of an HTTP/1.1 request
//! head, structured field input for the fuzzer, and the invariant checks.
//!
//! The oracles here are written from the RFCs, not taken from h2hop's own
//! constants, so a target compares h2hop against an independent reading:
//! RFC 9110 §7.6.1 (hop-by-hop fields), RFC 9113 §8.2 (HTTP/2 fields) and
//! RFC 9112 (what an HTTP/1.1 head may contain).

use arbitrary::Arbitrary;
use http::header::{CONNECTION, CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use http::header::{TRANSFER_ENCODING, UPGRADE};
use http::{Method, Request, Response, Uri, Version};

/// Fields that are hop-by-hop whether or not `Connection` names them
/// (RFC 9110 §7.6.1; RFC 9113 §8.2.2 forbids them on HTTP/2).
pub const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// The prefix of the fields only h2hop-front may set.
pub const RESERVED_PREFIX: &str = "h2hop-";

/// The RFC 6455 §1.3 sample key, a valid `Sec-WebSocket-Key`.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// As many fields as hyper's HTTP/1.1 server reads by default.
const MAX_FIELDS: usize = 100;

/// Parses `bytes` as one HTTP/1.1 request head the way hyper 1.x's server
/// does before h2hop-front sees it (`proto::h1::role::Server::parse`):
/// httparse, a method and a target that parse, one `Content-Length` that is
/// all digits (repeats equal, and dropped), `Transfer-Encoding` only on
/// HTTP/1.1 and ending in `chunked`, and a `Content-Length` beside it
/// dropped. `None` is what hyper answers with 400.
pub fn parse_h1_request(bytes: &[u8]) -> Option<Request<()>> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut parsed = httparse::Request::new(&mut fields);
    let httparse::Status::Complete(_) = parsed.parse(bytes).ok()? else {
        return None;
    };
    let method = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    let uri = Uri::try_from(parsed.path?).ok()?;
    let version = match parsed.version? {
        1 => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    let mut headers = HeaderMap::new();
    let mut length: Option<u64> = None;
    let (mut saw_length, mut te, mut chunked) = (false, false, false);
    for field in parsed.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        // httparse and http accept the same value bytes.
        let value = HeaderValue::from_bytes(field.value).ok()?;
        if name == TRANSFER_ENCODING {
            if version != Version::HTTP_11 {
                return None;
            }
            te = true;
            if saw_length && length.take().is_some() {
                headers.remove(CONTENT_LENGTH);
            }
            chunked = last_coding_is_chunked(&value);
        } else if name == CONTENT_LENGTH {
            saw_length = true;
            if te {
                continue;
            }
            let this = digits(value.as_bytes())?;
            match length {
                Some(first) if first != this => return None,
                Some(_) => continue,
                None => length = Some(this),
            }
        }
        headers.append(name, value);
    }
    if te && !chunked {
        return None;
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Some(request)
}

/// hyper's `is_chunked_`: the last transfer coding is `chunked`.
fn last_coding_is_chunked(value: &HeaderValue) -> bool {
    value
        .to_str()
        .ok()
        .and_then(|text| text.rsplit(',').next())
        .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"))
}

/// A decimal number without sign, as hyper reads `Content-Length`.
pub fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The elements of every `name` field, split on commas and trimmed of
/// spaces and tabs, empty ones left out (RFC 9110 §5.6.1), read from the
/// raw bytes: a value that is not all text still has its elements.
pub fn list_elements<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Vec<&'a [u8]> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .map(trim_blanks)
        .filter(|element| !element.is_empty())
        .collect()
}

/// True when some element of a `name` field is `token`, in any case.
pub fn lists_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    list_elements(headers, name)
        .iter()
        .any(|element| element.eq_ignore_ascii_case(token.as_bytes()))
}

fn trim_blanks(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// The fields `Connection` names (RFC 9110 §7.6.1): each element that is a
/// field name.
pub fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    list_elements(headers, &CONNECTION)
        .into_iter()
        .filter_map(|element| HeaderName::from_bytes(element).ok())
        .collect()
}

/// True for a field that must not cross a hop: always hop-by-hop, or named
/// in `named` (the sender's `Connection`).
pub fn is_hop_by_hop(name: &HeaderName, named: &[HeaderName]) -> bool {
    HOP_BY_HOP.contains(&name.as_str()) || named.contains(name)
}

/// Asserts that no field in `headers` is hop-by-hop for a sender whose
/// `Connection` named `named`, except the names in `set_here`, which the
/// translation sets itself.
pub fn assert_no_hop_by_hop(headers: &HeaderMap, named: &[HeaderName], set_here: &[&str]) {
    for name in headers.keys() {
        if set_here.contains(&name.as_str()) {
            continue;
        }
        assert!(
            !is_hop_by_hop(name, named),
            "hop-by-hop field {name} survived: {headers:?}"
        );
    }
}

/// Asserts that no field name or value holds CR, LF or NUL, and that every
/// name is a lower-case token (RFC 9110 §5.1, §5.5; RFC 9113 §8.2.1).
pub fn assert_clean(headers: &HeaderMap) {
    for (name, value) in headers {
        let name_bytes = name.as_str().as_bytes();
        assert!(
            !name_bytes.is_empty() && name_bytes.iter().all(|&b| is_token_byte(b)),
            "field name {name:?} is not a token"
        );
        assert!(
            !name_bytes.iter().any(u8::is_ascii_uppercase),
            "field name {name:?} is not lower case"
        );
        assert!(
            !value
                .as_bytes()
                .iter()
                .any(|b| matches!(b, b'\r' | b'\n' | 0)),
            "field {name} has CR, LF or NUL in {value:?}"
        );
    }
}

/// RFC 9110 §5.6.2 `tchar`.
pub fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// True when a value starts or ends with SP or HTAB.
pub fn has_surrounding_blank(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    matches!(bytes.first(), Some(b' ' | b'\t')) || matches!(bytes.last(), Some(b' ' | b'\t'))
}

/// Asserts that every field of `original` that `dropped` does not name
/// reaches `produced` with all its values, in order: translation loses
/// nothing end to end.
pub fn assert_kept(
    original: &HeaderMap,
    produced: &HeaderMap,
    dropped: impl Fn(&HeaderName) -> bool,
) {
    for name in original.keys() {
        if dropped(name) {
            continue;
        }
        let want: Vec<&HeaderValue> = original.get_all(name).iter().collect();
        let got: Vec<&HeaderValue> = produced.get_all(name).iter().collect();
        assert_eq!(got, want, "end-to-end field {name} was not kept");
    }
}

/// How many `name` fields `headers` has.
pub fn count(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> usize {
    headers.get_all(name).iter().count()
}

/// The HTTP/1.1 bytes of a request head, as hyper's client writes them.
pub fn render_request(request: &Request<()>) -> Vec<u8> {
    let mut wire = Vec::new();
    wire.extend_from_slice(request.method().as_str().as_bytes());
    wire.push(b' ');
    wire.extend_from_slice(request.uri().to_string().as_bytes());
    wire.extend_from_slice(b" HTTP/1.1\r\n");
    render_fields(request.headers(), &mut wire);
    wire
}

/// The HTTP/1.1 bytes of a response head.
pub fn render_response(response: &Response<()>) -> Vec<u8> {
    let mut wire = format!("HTTP/1.1 {}\r\n", response.status()).into_bytes();
    render_fields(response.headers(), &mut wire);
    wire
}

fn render_fields(headers: &HeaderMap, wire: &mut Vec<u8>) {
    for (name, value) in headers {
        wire.extend_from_slice(name.as_str().as_bytes());
        wire.extend_from_slice(b": ");
        wire.extend_from_slice(value.as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"\r\n");
}

/// Asserts that the request, written as HTTP/1.1, reads back as exactly one
/// head with the same method, target and fields: nothing in it can split
/// the message or smuggle a field.
pub fn assert_request_reads_back(request: &Request<()>) {
    let wire = render_request(request);
    let mut fields = vec![httparse::EMPTY_HEADER; request.headers().len() + 1];
    let mut parsed = httparse::Request::new(&mut fields);
    let status = parsed.parse(&wire);
    assert_eq!(
        status,
        Ok(httparse::Status::Complete(wire.len())),
        "request does not read back: {:?}",
        String::from_utf8_lossy(&wire)
    );
    assert_eq!(parsed.method, Some(request.method().as_str()));
    assert_eq!(parsed.path, Some(request.uri().to_string().as_str()));
    assert_fields_read_back(parsed.headers, request.headers());
}

/// Asserts that the response, written as HTTP/1.1, reads back as exactly
/// one head with the same status and fields.
pub fn assert_response_reads_back(response: &Response<()>) {
    let wire = render_response(response);
    let mut fields = vec![httparse::EMPTY_HEADER; response.headers().len() + 1];
    let mut parsed = httparse::Response::new(&mut fields);
    let status = parsed.parse(&wire);
    assert_eq!(
        status,
        Ok(httparse::Status::Complete(wire.len())),
        "response does not read back: {:?}",
        String::from_utf8_lossy(&wire)
    );
    assert_eq!(parsed.code, Some(response.status().as_u16()));
    assert_fields_read_back(parsed.headers, response.headers());
}

/// Same fields in the same order; HTTP/1.1 drops a value's surrounding
/// blanks (RFC 9112 §5), so those are compared without them.
fn assert_fields_read_back(parsed: &[httparse::Header<'_>], headers: &HeaderMap) {
    assert_eq!(parsed.len(), headers.len(), "field count changed");
    for (field, (name, value)) in parsed.iter().zip(headers) {
        assert_eq!(field.name, name.as_str());
        assert_eq!(field.value, trim_blanks(value.as_bytes()), "field {name}");
    }
}

/// Field names that matter to h2hop, for the fuzzer to pick.
const NAMES: [&str; 26] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    "cookie",
    "set-cookie",
    "origin",
    "sec-websocket-key",
    "sec-websocket-accept",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "h2hop-upgrade-method",
    "h2hop-upgrade-body-length",
    "h2hop-other",
    "x-h2hop",
    "x-foo",
    "x-bar",
    "http2-settings",
    "trailer",
    "expect",
];

/// Field values that matter to h2hop, for the fuzzer to pick.
const VALUES: [&str; 34] = [
    "upgrade",
    "Upgrade",
    "keep-alive",
    "close",
    "websocket",
    "WebSocket",
    "my-proto",
    "h2c",
    "trailers",
    "chunked",
    "gzip, chunked",
    "13",
    "8",
    "0",
    "5",
    "100000",
    "GET",
    "POST",
    "CONNECT",
    SAMPLE_KEY,
    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
    "x-foo",
    "X-Bar",
    "h2hop-upgrade-method",
    "Content-Length",
    "Host",
    " padded ",
    "a\tb",
    "",
    "example.com",
    "example.com:8080",
    "user@example.com",
    "chat, superchat",
    "\u{e9}",
];

/// A field name: one of [`NAMES`] (upper-cased if asked) or raw bytes.
#[derive(Arbitrary, Debug)]
pub enum NameInput {
    /// An index into the known names.
    Known(u8, bool),
    /// Anything; fields whose name is not a token are left out.
    Raw(Vec<u8>),
}

/// A field value: one of [`VALUES`], a list of known words, or raw bytes.
#[derive(Arbitrary, Debug)]
pub enum ValueInput {
    /// An index into the known values.
    Known(u8),
    /// A comma-separated list of known names and values.
    List(Vec<u8>),
    /// Anything; fields whose value cannot be a field value are left out.
    Raw(Vec<u8>),
}

/// One field as the fuzzer builds it.
#[derive(Arbitrary, Debug)]
pub struct FieldInput {
    /// The name.
    pub name: NameInput,
    /// The value.
    pub value: ValueInput,
}

fn pick<'a>(list: &[&'a str], index: u8) -> &'a str {
    list[usize::from(index) % list.len()]
}

impl NameInput {
    /// The name, if it is one.
    pub fn name(&self) -> Option<HeaderName> {
        match self {
            NameInput::Known(index, upper) => {
                let name = pick(&NAMES, *index);
                let name = if *upper {
                    name.to_ascii_uppercase()
                } else {
                    name.to_owned()
                };
                HeaderName::from_bytes(name.as_bytes()).ok()
            }
            NameInput::Raw(bytes) => HeaderName::from_bytes(bytes).ok(),
        }
    }
}

impl ValueInput {
    /// The value, if it is one.
    pub fn value(&self) -> Option<HeaderValue> {
        match self {
            ValueInput::Known(index) => HeaderValue::from_str(pick(&VALUES, *index)).ok(),
            ValueInput::List(indices) => {
                let words: Vec<&str> = indices
                    .iter()
                    .map(|&index| match index % 2 {
                        0 => pick(&NAMES, index / 2),
                        _ => pick(&VALUES, index / 2),
                    })
                    .collect();
                HeaderValue::from_str(&words.join(", ")).ok()
            }
            ValueInput::Raw(bytes) => HeaderValue::from_bytes(bytes).ok(),
        }
    }
}

/// The fields, in order, leaving out those that are not valid.
pub fn header_map(fields: &[FieldInput]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for field in fields {
        if let (Some(name), Some(value)) = (field.name.name(), field.value.value()) {
            headers.append(name, value);
        }
    }
    headers
}

/// A short text: one of `known` or any string.
#[derive(Arbitrary, Debug)]
pub enum TextInput {
    /// An index into the caller's known texts.
    Known(u8),
    /// Anything.
    Raw(String),
}

impl TextInput {
    /// The text, with `known` as the vocabulary.
    pub fn text<'a>(&'a self, known: &[&'a str]) -> &'a str {
        match self {
            TextInput::Known(index) => pick(known, *index),
            TextInput::Raw(text) => text,
        }
    }
}

/// True when a field with this name is h2hop's own.
pub fn is_reserved(name: &HeaderName) -> bool {
    name.as_str().starts_with(RESERVED_PREFIX)
}

/// The `Upgrade` and `Connection` fields of a 101: exactly one each, the
/// one naming `protocol` exactly and the other listing `upgrade` (RFC 9110
/// §7.8; RFC 6455 §4.2.2).
pub fn assert_switching_fields(headers: &HeaderMap, protocol: &str) {
    assert_eq!(count(headers, UPGRADE), 1, "101 needs one Upgrade");
    assert_eq!(
        headers.get(UPGRADE).map(HeaderValue::as_bytes),
        Some(protocol.as_bytes())
    );
    assert_eq!(count(headers, CONNECTION), 1, "101 needs one Connection");
    assert!(
        lists_token(headers, &CONNECTION, "upgrade"),
        "101 without Connection: upgrade"
    );
}
