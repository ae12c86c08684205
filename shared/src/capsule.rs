//! The capsules of the `connect-tcp` form: their encoding and an
//! incremental decoder.
//!
//! A stream of the templated TCP form (see [`crate::tcp_connect`]) carries
//! a sequence of capsules (RFC 9297 §3.2): Type, Length, then Length bytes
//! of Value, Type and Length being QUIC variable-length integers (RFC 9000
//! §16). TCP payload travels in DATA capsules; a FINAL_DATA capsule carries
//! the last of it and stands for the sender's FIN (Template-Driven HTTP
//! CONNECT Proxying for TCP, §3).
//!
//! - [`Header`]: a capsule's Type and Length, encoded, for the sender to
//!   put in front of its payload.
//! - [`Decoder`]: DATA frames in, [`Event`]s out: payload slices (shared
//!   with the frame, no copy), the FIN, skipped capsules. A capsule's value
//!   is handed on as it arrives, never gathered whole, so memory stays
//!   bounded by the frames h2 holds whatever a Length says.
//!
//! The capsule relay ([`crate::capsule_relay`]) is the caller.

use bytes::{Buf, Bytes};

/// The largest value a QUIC variable-length integer holds (RFC 9000 §16).
pub const VARINT_MAX: u64 = (1 << 62) - 1;

/// The DATA capsule type. The draft leaves the final value to IANA and
/// names this one for testing ("DATA-08").
pub const DATA: u64 = 0x2028_d7f0;

/// The FINAL_DATA capsule type, the draft's value for testing
/// ("FINAL_DATA-08").
pub const FINAL_DATA: u64 = 0x2028_d7f1;

/// An empty FINAL_DATA capsule: the FIN with no payload.
pub const EMPTY_FINAL_DATA: [u8; 5] = [0xa0, 0x28, 0xd7, 0xf1, 0x00];

/// The longest encoded header: two 8-byte integers.
pub const MAX_HEADER: usize = 16;

/// What a capsule is, by its Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// TCP payload.
    Data,
    /// The last TCP payload, then the sender's FIN.
    FinalData,
    /// Any other type: skipped by a receiver that does not know it
    /// (RFC 9297 §3.2).
    Other(u64),
}

impl Kind {
    /// The kind a Type names.
    pub fn of(code: u64) -> Kind {
        match code {
            DATA => Kind::Data,
            FINAL_DATA => Kind::FinalData,
            other => Kind::Other(other),
        }
    }

    /// The Type on the wire.
    pub fn code(self) -> u64 {
        match self {
            Kind::Data => DATA,
            Kind::FinalData => FINAL_DATA,
            Kind::Other(code) => code,
        }
    }

    /// Whether the value is TCP payload.
    fn carries_payload(self) -> bool {
        matches!(self, Kind::Data | Kind::FinalData)
    }
}

/// Bytes a value takes as a variable-length integer, `None` past
/// [`VARINT_MAX`]. Always the shortest form.
pub fn varint_len(value: u64) -> Option<usize> {
    match value {
        0..=0x3f => Some(1),
        0x40..=0x3fff => Some(2),
        0x4000..=0x3fff_ffff => Some(4),
        0x4000_0000..=VARINT_MAX => Some(8),
        _ => None,
    }
}

/// Writes `value` at the start of `out` and returns the bytes written;
/// `None` past [`VARINT_MAX`] or when `out` is too short.
pub fn put_varint(value: u64, out: &mut [u8]) -> Option<usize> {
    let len = varint_len(value)?;
    let out = out.get_mut(..len)?;
    out.copy_from_slice(&value.to_be_bytes()[8 - len..]);
    // The two high bits of the first byte give the length: 1, 2, 4, 8.
    out[0] |= (len.trailing_zeros() as u8) << 6;
    Some(len)
}

/// The integer at the start of `bytes` and its length; `None` when
/// `bytes` ends before it does.
pub fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let len = 1usize << (first >> 6);
    let encoded = bytes.get(..len)?;
    let value = encoded[1..]
        .iter()
        .fold(u64::from(first & 0x3f), |value, byte| {
            (value << 8) | u64::from(*byte)
        });
    Some((value, len))
}

/// A capsule's Type and Length, encoded; the value follows it on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; MAX_HEADER],
    len: u8,
}

impl Header {
    /// The header of a capsule of `kind` whose value is `length` bytes;
    /// `None` when either is past [`VARINT_MAX`].
    pub fn new(kind: Kind, length: u64) -> Option<Header> {
        let mut bytes = [0; MAX_HEADER];
        let type_len = put_varint(kind.code(), &mut bytes)?;
        let length_len = put_varint(length, &mut bytes[type_len..])?;
        let len = u8::try_from(type_len + length_len).ok()?;
        Some(Header { bytes, len })
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// What a [`Decoder`] found next in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// TCP payload: some or all of a DATA or FINAL_DATA capsule's value.
    Payload(Bytes),
    /// A FINAL_DATA capsule ended: the sender's FIN.
    Final,
    /// A capsule of this unknown Type was skipped, value and all.
    Skipped(u64),
}

/// Why a capsule stream is no valid `connect-tcp` content. Each one aborts
/// the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CapsuleError {
    /// DATA or FINAL_DATA after FINAL_DATA, which the draft forbids (§3).
    #[error("a payload capsule after FINAL_DATA")]
    AfterFinal,
    /// The stream ended inside a capsule (RFC 9297 §3.3).
    #[error("the stream ended inside a capsule")]
    Truncated,
    /// The stream ended between capsules but without FINAL_DATA: the
    /// sender's TCP connection did not end cleanly (draft §3.4).
    #[error("the stream ended without FINAL_DATA")]
    NoFinal,
}

/// Where the decoder is in the capsule stream.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading a header; `partial` holds its first `filled` bytes when it
    /// is split across frames.
    Header {
        partial: [u8; MAX_HEADER],
        filled: u8,
    },
    /// Inside a value with `remaining` bytes still to come.
    Value { kind: Kind, remaining: u64 },
}

impl Default for State {
    fn default() -> Self {
        State::Header {
            partial: [0; MAX_HEADER],
            filled: 0,
        }
    }
}

/// Splits the stream's DATA frames into capsules as they arrive.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    state: State,
    /// A FINAL_DATA header was read: no more payload may follow.
    final_seen: bool,
}

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next event in `chunk`, taking what it used off the front of
    /// `chunk`; `None` once `chunk` is used up without completing one.
    /// Call it until `None`, then feed the next frame.
    pub fn decode(&mut self, chunk: &mut Bytes) -> Result<Option<Event>, CapsuleError> {
        loop {
            match &mut self.state {
                State::Value { kind, remaining: 0 } => {
                    let kind = *kind;
                    self.state = State::default();
                    match kind {
                        Kind::Data => {}
                        Kind::FinalData => return Ok(Some(Event::Final)),
                        Kind::Other(code) => return Ok(Some(Event::Skipped(code))),
                    }
                }
                State::Value { kind, remaining } => {
                    if chunk.is_empty() {
                        return Ok(None);
                    }
                    let take =
                        usize::try_from(*remaining).map_or(chunk.len(), |r| r.min(chunk.len()));
                    *remaining -= take as u64;
                    if kind.carries_payload() {
                        return Ok(Some(Event::Payload(chunk.split_to(take))));
                    }
                    chunk.advance(take);
                }
                State::Header { partial, filled } => {
                    let parsed = if *filled == 0 {
                        // A header within one frame, the common case: read in place.
                        parse_header(chunk).inspect(|(_, _, used)| chunk.advance(*used))
                    } else {
                        None
                    };
                    let parsed = match parsed {
                        Some(parsed) => parsed,
                        None => match fill_header(partial, filled, chunk) {
                            Some(parsed) => parsed,
                            None => return Ok(None),
                        },
                    };
                    let (kind, length, _) = parsed;
                    if kind.carries_payload() {
                        if self.final_seen {
                            return Err(CapsuleError::AfterFinal);
                        }
                        self.final_seen = kind == Kind::FinalData;
                    }
                    self.state = State::Value {
                        kind,
                        remaining: length,
                    };
                }
            }
        }
    }

    /// Whether the stream may end here: a FINAL_DATA capsule ended and no
    /// other capsule is half read. Call it at END_STREAM.
    pub fn finish(&self) -> Result<(), CapsuleError> {
        match self.state {
            State::Header { filled: 0, .. } if self.final_seen => Ok(()),
            State::Header { filled: 0, .. } => Err(CapsuleError::NoFinal),
            _ => Err(CapsuleError::Truncated),
        }
    }
}

/// A header split across frames: moves bytes from `chunk` into `partial`
/// one at a time until it parses (sixteen at most).
fn fill_header(
    partial: &mut [u8; MAX_HEADER],
    filled: &mut u8,
    chunk: &mut Bytes,
) -> Option<(Kind, u64, usize)> {
    while !chunk.is_empty() {
        let at = usize::from(*filled);
        // A header is never longer than MAX_HEADER, so it parsed before
        // `partial` could fill up.
        let slot = partial.get_mut(at)?;
        *slot = chunk.get_u8();
        *filled += 1;
        if let Some(parsed) = parse_header(&partial[..=at]) {
            return Some(parsed);
        }
    }
    None
}

/// Type and Length at the start of `bytes`, and the bytes they take.
fn parse_header(bytes: &[u8]) -> Option<(Kind, u64, usize)> {
    let (code, type_len) = read_varint(bytes)?;
    let (length, length_len) = read_varint(&bytes[type_len..])?;
    Some((Kind::of(code), length, type_len + length_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A capsule on the wire.
    fn capsule(kind: Kind, value: &[u8]) -> Vec<u8> {
        let mut wire = Header::new(kind, value.len() as u64)
            .unwrap()
            .as_bytes()
            .to_vec();
        wire.extend_from_slice(value);
        wire
    }

    /// Feeds `chunks` in turn; the payload joined, and the other events.
    fn decode_all(chunks: &[&[u8]]) -> Result<(Vec<u8>, Vec<Event>), CapsuleError> {
        let mut decoder = Decoder::new();
        let (mut payload, mut events) = (Vec::new(), Vec::new());
        for chunk in chunks {
            let mut chunk = Bytes::copy_from_slice(chunk);
            while let Some(event) = decoder.decode(&mut chunk)? {
                match event {
                    Event::Payload(bytes) => payload.extend_from_slice(&bytes),
                    other => events.push(other),
                }
            }
            assert!(chunk.is_empty());
        }
        decoder.finish()?;
        Ok((payload, events))
    }

    #[test]
    fn varints_match_the_rfc_9000_worked_examples() {
        // RFC 9000 §A.1 sample encodings.
        let samples: [(&[u8], u64); 4] = [
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
        ];
        for (wire, value) in samples {
            assert_eq!(read_varint(wire), Some((value, wire.len())));
            let mut out = [0; 8];
            assert_eq!(put_varint(value, &mut out), Some(wire.len()));
            assert_eq!(&out[..wire.len()], wire);
        }
        // RFC 9000 §A.1: a non-shortest form reads the same.
        assert_eq!(read_varint(&[0x40, 0x25]), Some((37, 2)));
    }

    #[test]
    fn varints_round_trip_at_every_length_boundary_and_stop_at_2_62() {
        for value in [
            0,
            63,
            64,
            16_383,
            16_384,
            (1 << 30) - 1,
            1 << 30,
            VARINT_MAX,
        ] {
            let mut out = [0; 8];
            let len = put_varint(value, &mut out).unwrap();
            assert_eq!(read_varint(&out[..len]), Some((value, len)), "{value}");
            assert_eq!(read_varint(&out[..len - 1]), None, "{value} cut short");
        }
        assert_eq!(varint_len(VARINT_MAX + 1), None);
        assert_eq!(Header::new(Kind::Data, VARINT_MAX + 1), None);
        assert_eq!(put_varint(16_384, &mut [0; 3]), None);
    }

    #[test]
    fn the_payload_capsule_types_take_four_bytes() {
        // The same bytes the draft's other implementations send.
        let header = Header::new(Kind::Data, 8).unwrap();
        assert_eq!(header.as_bytes(), [0xa0, 0x28, 0xd7, 0xf0, 8]);
        let header = Header::new(Kind::FinalData, 0).unwrap();
        assert_eq!(header.as_bytes(), EMPTY_FINAL_DATA);
    }

    #[test]
    fn payload_comes_out_as_slices_of_the_frame_without_a_copy() {
        let wire = Bytes::from(capsule(Kind::Data, b"hello"));
        let mut chunk = wire.clone();
        let mut decoder = Decoder::new();
        let Some(Event::Payload(payload)) = decoder.decode(&mut chunk).unwrap() else {
            panic!("no payload");
        };
        assert_eq!(&payload[..], b"hello");
        assert_eq!(payload.as_ptr(), wire[5..].as_ptr());
    }

    #[test]
    fn final_data_ends_the_stream_and_unknown_capsules_are_skipped() {
        let mut wire = capsule(Kind::Other(0x29), b"ignored");
        wire.extend(capsule(Kind::Data, b"abc"));
        wire.extend(capsule(Kind::FinalData, b"def"));
        // Only payload capsules are barred after FINAL_DATA.
        wire.extend(capsule(Kind::Other(VARINT_MAX), b""));
        let (payload, events) = decode_all(&[&wire]).unwrap();
        assert_eq!(payload, b"abcdef");
        assert_eq!(
            events,
            [
                Event::Skipped(0x29),
                Event::Final,
                Event::Skipped(VARINT_MAX)
            ]
        );
    }

    #[test]
    fn a_stream_without_final_data_or_cut_inside_a_capsule_is_an_abort() {
        let data = capsule(Kind::Data, b"abc");
        assert_eq!(decode_all(&[&data]), Err(CapsuleError::NoFinal));
        assert_eq!(decode_all(&[&data[..6]]), Err(CapsuleError::Truncated));
        assert_eq!(decode_all(&[&data[..2]]), Err(CapsuleError::Truncated));
        assert_eq!(decode_all(&[]), Err(CapsuleError::NoFinal));
        let mut after = capsule(Kind::FinalData, b"");
        after.extend(capsule(Kind::Data, b""));
        assert_eq!(decode_all(&[&after]), Err(CapsuleError::AfterFinal));
    }

    #[test]
    fn a_capsule_stream_decodes_the_same_split_at_any_two_places() {
        let mut wire = capsule(Kind::Data, b"");
        wire.extend(capsule(Kind::Data, &[7; 70]));
        wire.extend(capsule(Kind::Other(0x1234_5678_9abc), &[1; 300]));
        wire.extend(capsule(Kind::Data, b"x"));
        wire.extend(capsule(Kind::FinalData, &[9; 20]));
        let mut expected = vec![7; 70];
        expected.push(b'x');
        expected.extend([9; 20]);
        let events = vec![Event::Skipped(0x1234_5678_9abc), Event::Final];
        for first in 0..=wire.len() {
            for second in first..=wire.len() {
                let parts = [&wire[..first], &wire[first..second], &wire[second..]];
                let decoded = decode_all(&parts).unwrap();
                assert_eq!(
                    decoded,
                    (expected.clone(), events.clone()),
                    "{first} {second}"
                );
            }
        }
    }

    #[test]
    fn a_value_longer_than_any_frame_is_streamed_not_gathered() {
        let mut decoder = Decoder::new();
        let header = Header::new(Kind::Data, VARINT_MAX).unwrap();
        let mut chunk = Bytes::copy_from_slice(header.as_bytes());
        assert_eq!(decoder.decode(&mut chunk), Ok(None));
        for _ in 0..3 {
            let mut chunk = Bytes::from_static(&[5; 1000]);
            let event = decoder.decode(&mut chunk).unwrap();
            assert_eq!(event, Some(Event::Payload(Bytes::from_static(&[5; 1000]))));
            assert_eq!(decoder.decode(&mut chunk), Ok(None));
        }
        assert_eq!(decoder.finish(), Err(CapsuleError::Truncated));
    }
}
