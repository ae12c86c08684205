//! HPACK (RFC 7541) for raw HTTP/2: field blocks encoded as literals,
//! with or without indexing, and indexed references, never Huffman-coded,
//! so that the bytes on the wire are exactly the ones given; and the
//! response `:status` read back.

use super::Answer;

/// An HPACK integer with a `prefix`-bit prefix, `flags` in the first
/// byte's high bits (RFC 7541 §5.1).
pub fn hpack_int(out: &mut Vec<u8>, prefix: u32, flags: u8, mut value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// A string literal without Huffman coding (RFC 7541 §5.2).
fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    hpack_int(out, 7, 0, bytes.len());
    out.extend_from_slice(bytes);
}

/// Literal field without indexing, new name, no Huffman (RFC 7541
/// §6.2.2): the bytes go on the wire exactly as given, so a field an
/// HTTP/2 library would refuse to encode can be sent.
pub fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    string(out, name);
    string(out, value);
}

/// Literal field with incremental indexing, new name (RFC 7541 §6.2.1):
/// the field also becomes entry 62, the newest of the peer's dynamic
/// table (§2.3.3).
pub fn literal_indexed(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x40);
    string(out, name);
    string(out, value);
}

/// Indexed field (RFC 7541 §6.1): one byte for index 62, whatever the
/// size of the entry it names.
pub fn indexed(out: &mut Vec<u8>, index: usize) {
    hpack_int(out, 7, 0x80, index);
}

/// A field block of literals, in order.
pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        literal(&mut out, name.as_bytes(), value.as_bytes());
    }
    out
}

/// `:status` from the first field of a response block: a static-table
/// index (RFC 7541 Appendix A, entries 8 to 14), or a literal whose name
/// is one of those entries (§6.2), its value plain or Huffman-coded
/// (§5.2; digits only, as a status is).
pub fn status(block: &[u8]) -> Answer {
    const STATIC: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
    let other = || Answer::OtherHeaders(block.iter().take(8).copied().collect());
    // Dynamic table size updates come first (RFC 7541 §4.2, §6.3):
    // `001` and a 5-bit-prefix integer.
    let mut block = block;
    while let Some(&first) = block.first()
        && first & 0xe0 == 0x20
    {
        let continued = block[1..].iter().take_while(|byte| **byte & 0x80 != 0);
        let len = if first & 0x1f == 0x1f {
            2 + continued.count()
        } else {
            1
        };
        block = block.get(len..).unwrap_or_default();
    }
    let Some(&first) = block.first() else {
        return other();
    };
    if first & 0x80 != 0 {
        return match usize::from(first & 0x7f) {
            index @ 8..=14 => Answer::Status(STATIC[index - 8]),
            _ => other(),
        };
    }
    // With incremental indexing: a 6-bit name index; without indexing or
    // never indexed: a 4-bit one.
    let name = if first & 0x40 != 0 {
        first & 0x3f
    } else {
        first & 0x0f
    };
    let value = match (name, block.get(1)) {
        (8..=14, Some(&len)) if len & 0x7f < 0x7f => block.get(2..2 + usize::from(len & 0x7f)),
        _ => None,
    };
    let digits = value.and_then(|value| {
        if block[1] & 0x80 != 0 {
            huffman_digits(value)
        } else {
            String::from_utf8(value.to_vec()).ok()
        }
    });
    match digits.and_then(|digits| digits.parse().ok()) {
        Some(code) => Answer::Status(code),
        None => other(),
    }
}

/// Decodes a Huffman-coded string of digits (RFC 7541 Appendix B: `0` to
/// `2` are 5-bit codes `00000` to `00010`, `3` to `9` 6-bit codes `011001`
/// to `011111`), padding of up to 7 one-bits at the end; `None` for
/// anything else.
fn huffman_digits(coded: &[u8]) -> Option<String> {
    let bits: Vec<u8> = coded
        .iter()
        .flat_map(|byte| (0..8).rev().map(move |bit| (byte >> bit) & 1))
        .collect();
    let code = |at: usize, len: usize| {
        let bits = bits.get(at..at + len)?;
        Some(bits.iter().fold(0u8, |code, bit| (code << 1) | bit))
    };
    let (mut at, mut out) = (0, String::new());
    while at < bits.len() {
        if bits.len() - at < 8 && bits[at..].iter().all(|bit| *bit == 1) {
            break;
        }
        match (code(at, 5), code(at, 6)) {
            (Some(five @ 0..=2), _) => {
                out.push(char::from(b'0' + five));
                at += 5;
            }
            (_, Some(six @ 0b011001..=0b011111)) => {
                out.push(char::from(b'3' + six - 0b011001));
                at += 6;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reads_static_entries_and_literals() {
        // RFC 7541 §C.6.1: `:status 302` with incremental indexing,
        // Huffman-coded: 0x48 0x82 0x64 0x02.
        assert_eq!(status(&[0x48, 0x82, 0x64, 0x02]), Answer::Status(302));
        // §C.5.1: the same field without Huffman coding.
        assert_eq!(status(&[0x48, 0x03, b'3', b'0', b'2']), Answer::Status(302));
        // Static entry 8 is `:status 200`, 13 is `:status 404`.
        assert_eq!(status(&[0x88]), Answer::Status(200));
        assert_eq!(status(&[0x8d]), Answer::Status(404));
        // Entry 2 (`:method GET`) is no status.
        assert!(matches!(status(&[0x82]), Answer::OtherHeaders(_)));
        // After a dynamic table size update to 0 (§6.3).
        assert_eq!(status(&[0x20, 0x88]), Answer::Status(200));
    }

    #[test]
    fn literal_is_written_byte_for_byte() {
        // RFC 7541 §6.2.2 with a new name: 0x00, then name and value as
        // plain string literals (§5.2), each after its length.
        let mut out = Vec::new();
        literal(&mut out, b":path", b"/sample/path");
        assert_eq!(
            out,
            [&[0x00, 0x05][..], b":path", &[0x0c], b"/sample/path"].concat()
        );
        // §C.1.2: 1337 with a 5-bit prefix is 31, 154, 10.
        let mut int = Vec::new();
        hpack_int(&mut int, 5, 0, 1337);
        assert_eq!(int, [31, 154, 10]);
    }
}
