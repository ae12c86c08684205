//! A pseudo-random byte stream that both ends of a tunnel produce from
//! one seed, for tests that push hundreds of MiB through and check that
//! every byte arrives once and in order (`tests/faults.rs`).

/// Bytes per [`Noise`] block.
pub const BLOCK: usize = 64 * 1024;
/// Size of the random pool [`Noise`] takes its blocks from.
const POOL: usize = 1024 * 1024;
/// How far apart in the pool two blocks in a row start: coprime with
/// `POOL - BLOCK`, so no window repeats within 983,040 blocks (60 GiB).
const STEP: usize = 7919;

/// The same pseudo-random stream at both ends, cheap enough for 256 MiB
/// in a debug build: block `k` is the window of a random pool (xorshift64*)
/// at `k × STEP`, so that a dropped, repeated or reordered chunk shows.
pub struct Noise {
    pool: Vec<u8>,
    block: usize,
    at: usize,
}

impl Noise {
    /// The stream for `seed`, at its start.
    pub fn new(seed: u64) -> Noise {
        let mut state = seed | 1;
        let mut pool = Vec::with_capacity(POOL);
        while pool.len() < POOL {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            pool.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        Noise {
            pool,
            block: 0,
            at: 0,
        }
    }

    /// The current block, from `at` on.
    pub fn rest_of_block(&self) -> &[u8] {
        let start = self.block * STEP % (POOL - BLOCK);
        &self.pool[start + self.at..start + BLOCK]
    }

    /// Moves `n` bytes on in the stream.
    pub fn advance(&mut self, n: usize) {
        self.at += n;
        if self.at == BLOCK {
            (self.block, self.at) = (self.block + 1, 0);
        }
    }

    /// Whether `got` is what comes next in the stream.
    pub fn matches(&mut self, mut got: &[u8]) -> bool {
        while !got.is_empty() {
            let expected = self.rest_of_block();
            let n = got.len().min(expected.len());
            if got[..n] != expected[..n] {
                return false;
            }
            self.advance(n);
            got = &got[n..];
        }
        true
    }
}
