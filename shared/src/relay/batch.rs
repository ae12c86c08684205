//! DATA frames gathered for one vectored write.

use std::io::IoSlice;

use bytes::{Buf, Bytes};

/// Most DATA frames gathered into one write.
pub(crate) const MAX_BATCH: usize = 8;

/// DATA frames waiting to be written together, as one `Buf` whose
/// `chunks_vectored` feeds a single writev.
#[derive(Default)]
pub(crate) struct Batch {
    chunks: std::collections::VecDeque<Bytes>,
}

impl Batch {
    pub(crate) fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.chunks.push_back(chunk);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.chunks.len()
    }
}

impl Buf for Batch {
    fn remaining(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |chunk| chunk.as_ref())
    }

    fn chunks_vectored<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (slot, chunk) in slices.iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(chunk);
            filled += 1;
        }
        filled
    }

    fn advance(&mut self, mut count: usize) {
        while count > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if count < front.len() {
                front.advance(count);
                return;
            }
            count -= front.len();
            self.chunks.pop_front();
        }
    }
}
