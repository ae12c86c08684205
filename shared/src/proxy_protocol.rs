//! The PROXY protocol (HAProxy's `proxy-protocol.txt`, versions 1 and 2):
//! a load balancer that relays TCP writes one header before the client's
//! bytes, naming the client's address.
//!
//! Input: a freshly accepted [`TcpStream`]; output: the header it carried
//! ([`Header`]), or no header, or a [`ProxyError`]. Called by the front's
//! listener before TLS or HTTP. [`v2_header`] writes a version 2 header;
//! the sidecar sends one to the app.
//!
//! Written by hand rather than with the `ppp` crate: `ppp` parses a buffer
//! it is given, but the hard part here is taking exactly the header's bytes
//! off the socket and not one more (what follows is the TLS handshake or
//! the HTTP request, read by someone else). Version 1 is found with
//! `MSG_PEEK` (the line's end is not known before it is seen), version 2
//! from its fixed 16 bytes, which hold the length of the rest. Parsing the
//! two formats is about 150 lines here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// The 12 bytes every version 2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// What every version 1 header starts with.
pub const V1_SIGNATURE: &[u8] = b"PROXY ";
/// A version 1 line, CRLF included, is at most 107 bytes (the spec's
/// worst case, `PROXY TCP6` with two full IPv6 addresses).
pub const V1_MAX_LEN: usize = 107;
/// The longest version 2 address block (addresses and TLVs) accepted.
/// The format allows 65535; 4096 leaves room for every TLV load balancers
/// are known to send (AWS, GCP, HAProxy's SSL ones) and bounds the memory
/// a header costs.
pub const V2_MAX_ADDRESS_LEN: usize = 4096;

/// A peer whose first bytes are only part of a signature is peeked at
/// again after this pause (see [`starts_with_signature`]).
const PARTIAL_PAUSE: Duration = Duration::from_millis(5);

/// Which version the header was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text line.
    V1,
    /// The binary header.
    V2,
}

/// A header read off a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Which format it was in.
    pub version: Version,
    /// The client and the address it connected to; `None` for a v2 LOCAL
    /// command (the balancer's own health check), a v1 `UNKNOWN`, or an
    /// address family with no IP address (`AF_UNSPEC`, `AF_UNIX`): the
    /// connection's own peer address stands.
    pub addresses: Option<Addresses>,
}

/// The addresses a header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// The client.
    pub source: SocketAddr,
    /// The address the client connected to, at the balancer.
    pub destination: SocketAddr,
}

impl Header {
    /// The client's address: the carried source, else `peer` (the socket's).
    /// An IPv4-mapped IPv6 source is given as the IPv4 address it is, so
    /// that limits and logs see one client under one address.
    pub fn client(&self, peer: SocketAddr) -> SocketAddr {
        self.addresses.map_or(peer, |addresses| {
            let source = addresses.source;
            SocketAddr::new(source.ip().to_canonical(), source.port())
        })
    }
}

/// Why a header is refused. Each closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The connection ended inside the header.
    #[error("connection closed inside the PROXY header")]
    Truncated,
    /// The first bytes are no PROXY signature.
    #[error("no PROXY protocol signature")]
    BadSignature,
    /// A version 1 line longer than 107 bytes without its CRLF.
    #[error("PROXY v1 line longer than 107 bytes")]
    TooLong,
    /// A version 1 line that is not `PROXY TCP4|TCP6 src dst sport dport`
    /// or `PROXY UNKNOWN`.
    #[error("malformed PROXY v1 line: {0}")]
    BadLine(&'static str),
    /// A version 2 header whose version nibble is not 2.
    #[error("PROXY v2 header with version {0} (want 2)")]
    BadVersion(u8),
    /// A version 2 command neither LOCAL (0) nor PROXY (1).
    #[error("PROXY v2 header with unknown command {0}")]
    BadCommand(u8),
    /// A version 2 address family or transport that is not defined.
    #[error("PROXY v2 header with unknown address family/transport byte {0:#04x}")]
    BadFamily(u8),
    /// A version 2 address block shorter than its family's addresses.
    #[error("PROXY v2 address block of {len} bytes, too short for its family ({need})")]
    ShortAddresses {
        /// The block's length as the header gives it.
        len: usize,
        /// What the family needs.
        need: usize,
    },
    /// A version 2 address block longer than [`V2_MAX_ADDRESS_LEN`].
    #[error("PROXY v2 address block of {0} bytes, more than 4096")]
    V2TooLong(usize),
    /// No header within the bound.
    #[error("no complete PROXY header within {0:?}")]
    Timeout(Duration),
    /// The socket failed.
    #[error("reading the PROXY header failed")]
    Io(#[from] std::io::Error),
}

/// Whether the first bytes of `stream` are a PROXY signature (v1 or v2),
/// consuming nothing. Waits for the first byte, and for more as long as
/// what came is only the start of a signature. `Ok(false)` at end of
/// stream, which the next reader will see too.
pub async fn starts_with_signature(stream: &TcpStream) -> std::io::Result<bool> {
    let mut first = [0u8; V2_SIGNATURE.len()];
    loop {
        let seen = stream.peek(&mut first).await?;
        let seen = &first[..seen];
        let v1 = prefix_match(seen, V1_SIGNATURE);
        let v2 = prefix_match(seen, &V2_SIGNATURE);
        match (v1, v2) {
            (Match::Whole, _) | (_, Match::Whole) => return Ok(true),
            (Match::No, Match::No) => return Ok(false),
            _ if seen.is_empty() => return Ok(false),
            // Only a start of a signature so far: peek returns the same
            // bytes until more arrive, so pause instead of spinning. A
            // balancer writes its header in one segment; this is for
            // clients typing by hand, bounded by the caller's timeout.
            _ => tokio::time::sleep(PARTIAL_PAUSE).await,
        }
    }
}

enum Match {
    No,
    Partial,
    Whole,
}

fn prefix_match(seen: &[u8], signature: &[u8]) -> Match {
    let common = seen.len().min(signature.len());
    if seen[..common] != signature[..common] {
        Match::No
    } else if common == signature.len() {
        Match::Whole
    } else {
        Match::Partial
    }
}

/// Reads one PROXY header (v1 or v2) off `stream`, exactly its bytes,
/// within `bound`. The caller knows one is there or must be.
pub async fn read_header(stream: &mut TcpStream, bound: Duration) -> Result<Header, ProxyError> {
    tokio::time::timeout(bound, read_header_unbounded(stream))
        .await
        .map_err(|_| ProxyError::Timeout(bound))?
}

async fn read_header_unbounded(stream: &mut TcpStream) -> Result<Header, ProxyError> {
    let mut fixed = [0u8; 16];
    // Six bytes tell v1 from v2 and neither signature from the other;
    // both headers are longer, so this never reads past one.
    read_exact(stream, &mut fixed[..V1_SIGNATURE.len()]).await?;
    if fixed[..V1_SIGNATURE.len()] == *V1_SIGNATURE {
        return read_v1(stream).await;
    }
    if fixed[..V1_SIGNATURE.len()] != V2_SIGNATURE[..V1_SIGNATURE.len()] {
        return Err(ProxyError::BadSignature);
    }
    read_exact(stream, &mut fixed[V1_SIGNATURE.len()..]).await?;
    if fixed[..V2_SIGNATURE.len()] != V2_SIGNATURE {
        return Err(ProxyError::BadSignature);
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > V2_MAX_ADDRESS_LEN {
        return Err(ProxyError::V2TooLong(len));
    }
    let mut block = vec![0u8; len];
    read_exact(stream, &mut block).await?;
    parse_v2(fixed[12], fixed[13], &block)
}

async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), ProxyError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => Err(ProxyError::Truncated),
        Err(err) => Err(ProxyError::Io(err)),
    }
}

/// The rest of a v1 line, `PROXY ` already read: peeks for the CRLF and
/// takes bytes off the socket only up to it. Bytes peeked without a CRLF
/// are taken too (they are all header), so the next peek waits for new
/// ones instead of returning the same.
async fn read_v1(stream: &mut TcpStream) -> Result<Header, ProxyError> {
    let mut line = [0u8; V1_MAX_LEN];
    line[..V1_SIGNATURE.len()].copy_from_slice(V1_SIGNATURE);
    let mut len = V1_SIGNATURE.len();
    loop {
        if len == V1_MAX_LEN {
            return Err(ProxyError::TooLong);
        }
        let peeked = stream.peek(&mut line[len..]).await?;
        if peeked == 0 {
            return Err(ProxyError::Truncated);
        }
        // A CR at the end of what was read before may pair with an LF now.
        let from = len.saturating_sub(1);
        let end = line[from..len + peeked]
            .windows(2)
            .position(|pair| pair == b"\r\n")
            .map(|at| from + at + 2);
        let take = end.map_or(peeked, |end| end - len);
        read_exact(stream, &mut line[len..len + take]).await?;
        len += take;
        if let Some(end) = end {
            return parse_v1(&line[..end]);
        }
    }
}

/// Parses a whole v1 line, CRLF included.
pub fn parse_v1(line: &[u8]) -> Result<Header, ProxyError> {
    let text = line
        .strip_suffix(b"\r\n")
        .ok_or(ProxyError::BadLine("no CRLF"))?;
    let text = std::str::from_utf8(text).map_err(|_| ProxyError::BadLine("not ASCII"))?;
    let rest = text
        .strip_prefix("PROXY ")
        .ok_or(ProxyError::BadSignature)?;
    let mut fields = rest.split(' ');
    let family = fields.next().unwrap_or_default();
    // "UNKNOWN": the receiver ignores the rest of the line and keeps the
    // connection's own address.
    if family == "UNKNOWN" {
        return Ok(Header {
            version: Version::V1,
            addresses: None,
        });
    }
    let v6 = match family {
        "TCP4" => false,
        "TCP6" => true,
        _ => return Err(ProxyError::BadLine("family is not TCP4, TCP6 or UNKNOWN")),
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(ProxyError::BadLine("want four fields after the family"));
    };
    let address = |text: &str| -> Result<IpAddr, ProxyError> {
        let ip = if v6 {
            text.parse::<Ipv6Addr>().map(IpAddr::V6)
        } else {
            text.parse::<Ipv4Addr>().map(IpAddr::V4)
        };
        ip.map_err(|_| ProxyError::BadLine("address does not match the family"))
    };
    let port = |text: &str| -> Result<u16, ProxyError> {
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        let leading_zero = text.len() > 1 && text.starts_with('0');
        match text.parse() {
            Ok(port) if digits && !leading_zero => Ok(port),
            _ => Err(ProxyError::BadLine("port is not a number 0 to 65535")),
        }
    };
    Ok(Header {
        version: Version::V1,
        addresses: Some(Addresses {
            source: SocketAddr::new(address(src)?, port(sport)?),
            destination: SocketAddr::new(address(dst)?, port(dport)?),
        }),
    })
}

/// Parses a v2 header's version/command byte, family/transport byte and
/// address block (TLVs after the addresses are skipped).
pub fn parse_v2(version_command: u8, family: u8, block: &[u8]) -> Result<Header, ProxyError> {
    if version_command >> 4 != 2 {
        return Err(ProxyError::BadVersion(version_command >> 4));
    }
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        command => return Err(ProxyError::BadCommand(command)),
    };
    // High nibble: 0 AF_UNSPEC, 1 AF_INET, 2 AF_INET6, 3 AF_UNIX; low
    // nibble: 0 UNSPEC, 1 STREAM, 2 DGRAM.
    if family >> 4 > 3 || family & 0x0f > 2 {
        return Err(ProxyError::BadFamily(family));
    }
    let unspecified = Header {
        version: Version::V2,
        addresses: None,
    };
    // LOCAL: the balancer speaks for itself; the block is ignored.
    if local {
        return Ok(unspecified);
    }
    let need = match family >> 4 {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => return Ok(unspecified),
    };
    if block.len() < need {
        return Err(ProxyError::ShortAddresses {
            len: block.len(),
            need,
        });
    }
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    let addresses = match family >> 4 {
        1 => {
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    block[at],
                    block[at + 1],
                    block[at + 2],
                    block[at + 3],
                ))
            };
            Some(Addresses {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            })
        }
        2 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            Some(Addresses {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            })
        }
        // AF_UNIX: paths, no IP address to stand for the client.
        _ => None,
    };
    Ok(Header {
        version: Version::V2,
        addresses,
    })
}

/// A version 2 header: the PROXY command over TCP with `addresses`, or the
/// LOCAL command without. An IPv4 address beside an IPv6 one is written
/// IPv4-mapped, both as IPv6.
pub fn v2_header(addresses: Option<Addresses>) -> Vec<u8> {
    let mut header = Vec::with_capacity(16 + 36);
    header.extend_from_slice(&V2_SIGNATURE);
    let Some(Addresses {
        source,
        destination,
    }) = addresses
    else {
        header.extend_from_slice(&[0x20, 0x00, 0, 0]);
        return header;
    };
    let (src, dst) = (source.ip().to_canonical(), destination.ip().to_canonical());
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            header.extend_from_slice(&[0x21, 0x11, 0, 12]);
            header.extend_from_slice(&src.octets());
            header.extend_from_slice(&dst.octets());
        }
        (src, dst) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(ip) => ip.to_ipv6_mapped(),
                IpAddr::V6(ip) => ip,
            };
            header.extend_from_slice(&[0x21, 0x21, 0, 36]);
            header.extend_from_slice(&v6(src).octets());
            header.extend_from_slice(&v6(dst).octets());
        }
    }
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&destination.port().to_be_bytes());
    header
}

#[cfg(test)]
#[path = "proxy_protocol_tests.rs"]
mod tests;
