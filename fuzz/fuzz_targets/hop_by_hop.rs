//! Any list of fields through `h2hop::translate::hop_by_hop::HopByHop` and
//! `h2hop::upgrade::is_reserved`, and the list readers beside them.
//!
//! Invariants of `HopByHop`, against a reading of RFC 9110 §7.6.1 written
//! here: it names every always-hop-by-hop field and every field that any
//! `Connection` line names, and no other; so a copy that leaves out what it
//! names (as the translations make) keeps every other field with all its
//! values in order, adds nothing, and copying twice is copying once.
//! `is_reserved` holds for the `h2hop-…` fields and no other. `tokens` yields
//! trimmed, non-empty elements without commas, and `has_token`,
//! `wants_trailers`, `is_chunked`, `offers_upgrade` and
//! `is_always_hop_by_hop` agree with them and with the RFC's list.

#![no_main]

use h2hop::translate::hop_by_hop;
use h2hop::upgrade;
use h2hop_fuzz::{
    FieldInput, HOP_BY_HOP, assert_kept, connection_named, count, header_map, is_hop_by_hop,
    is_reserved,
};
use http::HeaderMap;
use http::header::{CONNECTION, HeaderName, TE, TRANSFER_ENCODING, UPGRADE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|fields: Vec<FieldInput>| {
    let original = header_map(&fields);
    check_strip(&original);
    check_reserved(&original);
    check_readers(&original);
});

/// `headers` without what `HopByHop` names, as the translations copy them.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut copied = HeaderMap::new();
    hop_by_hop::copy_end_to_end(headers, &[], &mut copied);
    copied
}

fn check_strip(original: &HeaderMap) {
    let named = connection_named(original);
    let stripped = end_to_end(original);
    for name in stripped.keys() {
        assert!(
            !is_hop_by_hop(name, &named),
            "{name} survived; Connection named {named:?}"
        );
    }
    assert_kept(original, &stripped, |name: &HeaderName| {
        is_hop_by_hop(name, &named)
    });
    let kept: usize = original
        .keys()
        .filter(|name| !is_hop_by_hop(name, &named))
        .map(|name| count(original, name))
        .sum();
    assert_eq!(stripped.len(), kept, "the copy added fields");
    assert_eq!(end_to_end(&stripped), stripped, "copying is not idempotent");
    let hop = hop_by_hop::HopByHop::of(original);
    for name in original.keys() {
        assert_eq!(
            hop.contains(name),
            is_hop_by_hop(name, &named),
            "HopByHop disagrees on {name}; Connection named {named:?}"
        );
    }
}

fn check_reserved(original: &HeaderMap) {
    for name in original.keys() {
        assert_eq!(upgrade::is_reserved(name), is_reserved(name), "{name}");
    }
}

fn check_readers(headers: &HeaderMap) {
    for name in [CONNECTION, UPGRADE, TE, TRANSFER_ENCODING] {
        let tokens: Vec<&str> = hop_by_hop::tokens(headers, &name).collect();
        for token in &tokens {
            assert!(!token.is_empty() && !token.contains(','), "{token:?}");
            assert_eq!(
                token.trim_matches([' ', '\t']),
                *token,
                "{token:?} not trimmed"
            );
        }
        for probe in ["upgrade", "trailers", "chunked", "x-foo"] {
            let listed = tokens.iter().any(|token| token.eq_ignore_ascii_case(probe));
            assert_eq!(hop_by_hop::has_token(headers, &name, probe), listed);
        }
    }
    let trailers = hop_by_hop::tokens(headers, &TE).any(|t| t.eq_ignore_ascii_case("trailers"));
    assert_eq!(hop_by_hop::wants_trailers(headers), trailers);
    assert_eq!(
        hop_by_hop::is_chunked(headers),
        headers.contains_key(TRANSFER_ENCODING)
    );
    assert_eq!(
        hop_by_hop::offers_upgrade(headers),
        headers.contains_key(UPGRADE)
    );
    for name in headers.keys() {
        let listed = HOP_BY_HOP.contains(&name.as_str());
        assert_eq!(hop_by_hop::is_always_hop_by_hop(name), listed, "{name}");
    }
}
