//! Any bytes, as a PROXY protocol header: the first byte picks the reader,
//! `h2hop::proxy_protocol::parse_v1` (the rest as a v1 line) or
//! `parse_v2` (the next two bytes as the version/command and family bytes,
//! the rest as the address block).
//!
//! Invariants: parsing never panics and is deterministic; an accepted v1
//! line starts with `PROXY ` and ends with CRLF, and its two addresses are
//! of one family; an accepted v2 header has version 2 and command LOCAL or
//! PROXY, and only the PROXY command over AF_INET or AF_INET6 carries
//! addresses; carried addresses survive `v2_header` and back (IPv4-mapped
//! ones as IPv4).

#![no_main]

use h2hop::proxy_protocol::{Header, parse_v1, parse_v2, v2_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector & 1 == 0 {
        check_v1(rest);
    } else if let [version_command, family, block @ ..] = rest {
        check_v2(*version_command, *family, block);
    }
});

fn check_v1(line: &[u8]) {
    let parsed = parse_v1(line);
    assert_eq!(format!("{parsed:?}"), format!("{:?}", parse_v1(line)));
    let Ok(header) = parsed else { return };
    assert!(line.starts_with(b"PROXY ") && line.ends_with(b"\r\n"));
    if let Some(addresses) = header.addresses {
        assert_eq!(
            addresses.source.is_ipv4(),
            addresses.destination.is_ipv4(),
            "mixed families in {line:?}"
        );
        round_trip(header);
    }
}

fn check_v2(version_command: u8, family: u8, block: &[u8]) {
    let parsed = parse_v2(version_command, family, block);
    assert_eq!(
        format!("{parsed:?}"),
        format!("{:?}", parse_v2(version_command, family, block))
    );
    let Ok(header) = parsed else { return };
    assert_eq!(version_command >> 4, 2);
    assert!(version_command & 0x0f <= 1);
    if header.addresses.is_some() {
        assert_eq!(version_command & 0x0f, 1, "LOCAL with addresses");
        assert!(
            matches!(family >> 4, 1 | 2),
            "addresses from family {family:#x}"
        );
        round_trip(header);
    }
}

/// The addresses written as a v2 header and read back are the same, up
/// to IPv4-mapped IPv6 (the writer sends those as IPv4 where it can).
fn round_trip(header: Header) {
    let written = v2_header(header.addresses);
    let back = parse_v2(written[12], written[13], &written[16..]).expect("our own header parses");
    let canonical = |header: Header| {
        header.addresses.map(|addresses| {
            [addresses.source, addresses.destination]
                .map(|addr| (addr.ip().to_canonical(), addr.port()))
        })
    };
    assert_eq!(canonical(back), canonical(header));
}
