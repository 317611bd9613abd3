//! Sliding replay window over packet numbers (RFC 6479 / WireGuard style bitmap).
//!
//! ```text
//!  bitmap: 16 blocks x 64 bits = 1024 bits, block b holds packet numbers 64*b .. 64*b+63
//!  and lives in slot b % 16.
//!
//!   slot:  [ 0 ][ 1 ][ 2 ] ... [ k ] ... [15 ]
//!                                ^ block of `highest`
//!   the 15 slots after k (cyclically) hold the 15 blocks before it.
//! ```
//!
//! Invariants: `highest` is the largest accepted packet number (0 before any); every bit of the
//! blocks `highest/64 - 15 ..= highest/64` is exact (set = received). When `highest` advances
//! to a new block, the slots of the skipped blocks are zeroed whole, which is why the window
//! covers between 960 and 1023 numbers below `highest` (the RFC's "redundant block").
//!
//! Usage contract: [`ReplayWindow::check`] before doing anything with a datagram, and
//! [`ReplayWindow::commit`] only once it has been fully validated, so that garbage can never
//! move the window.
#![forbid(unsafe_code)]

use super::drop_reason::DropReason;

const BLOCKS: u64 = 16;
const BLOCK_BITS: u64 = 64;
/// Packet numbers at least this far below the highest one received are always rejected as
/// [`DropReason::TooOld`]; any number closer than [`REPLAY_WINDOW_MIN`] is always judged exactly.
pub const REPLAY_WINDOW_BITS: u64 = BLOCKS * BLOCK_BITS;
/// The reordering depth the window always tolerates.
pub const REPLAY_WINDOW_MIN: u64 = (BLOCKS - 1) * BLOCK_BITS;

/// A 1024-bit sliding window of received packet numbers.
#[derive(Clone, Debug, Default)]
pub struct ReplayWindow {
    highest: u64,
    bitmap: [u64; BLOCKS as usize],
}

impl ReplayWindow {
    /// Whether `pn` is acceptable: `Ok` if it was never seen and is inside the window.
    pub fn check(&self, pn: u64) -> Result<(), DropReason> {
        if pn > self.highest {
            return Ok(());
        }
        if pn / BLOCK_BITS + BLOCKS <= self.highest / BLOCK_BITS {
            return Err(DropReason::TooOld);
        }
        let (slot, bit) = Self::position(pn);
        if self.bitmap[slot] & bit != 0 {
            Err(DropReason::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records `pn` as received. Call only after [`ReplayWindow::check`] returned `Ok`.
    pub fn commit(&mut self, pn: u64) {
        if pn > self.highest {
            let cur = self.highest / BLOCK_BITS;
            let new = pn / BLOCK_BITS;
            // Zero the slots of every block skipped over (at most all of them).
            let skipped = (new - cur).min(BLOCKS);
            for i in 1..=skipped {
                self.bitmap[((cur + i) % BLOCKS) as usize] = 0;
            }
            self.highest = pn;
        }
        let (slot, bit) = Self::position(pn);
        self.bitmap[slot] |= bit;
    }

    /// `check` then `commit`.
    pub fn accept(&mut self, pn: u64) -> Result<(), DropReason> {
        self.check(pn)?;
        self.commit(pn);
        Ok(())
    }

    /// The highest packet number accepted so far (0 before any).
    #[must_use]
    pub fn highest(&self) -> u64 {
        self.highest
    }

    fn position(pn: u64) -> (usize, u64) {
        (
            ((pn / BLOCK_BITS) % BLOCKS) as usize,
            1u64 << (pn % BLOCK_BITS),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn first_packet_zero_then_duplicate() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.accept(0), Ok(()));
        assert_eq!(w.accept(0), Err(DropReason::Duplicate));
    }

    #[test]
    fn reorder_inside_window_accepted_once() {
        let mut w = ReplayWindow::default();
        for pn in (0..900).rev().step_by(3) {
            // Jump ahead first, then fill in backwards.
            assert_eq!(w.accept(pn + 100), Ok(()), "{pn}");
        }
        for pn in (0..900).rev().step_by(3) {
            assert_eq!(w.accept(pn + 100), Err(DropReason::Duplicate));
        }
    }

    #[test]
    fn too_old_and_big_jumps() {
        let mut w = ReplayWindow::default();
        w.commit(5000);
        assert_eq!(w.check(5000 - REPLAY_WINDOW_MIN + 1), Ok(()));
        assert_eq!(w.check(5000 - REPLAY_WINDOW_BITS), Err(DropReason::TooOld));
        assert_eq!(w.check(10), Err(DropReason::TooOld));
        w.commit(u64::MAX);
        assert_eq!(w.check(u64::MAX), Err(DropReason::Duplicate));
        assert_eq!(w.check(u64::MAX - 1), Ok(()));
    }

    #[test]
    fn matches_a_set_oracle() {
        // A tiny LCG keeps this test deterministic without extra dependencies.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut w = ReplayWindow::default();
        let mut seen = BTreeSet::new();
        let mut top = 0u64;
        for _ in 0..50_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let back = (x >> 33) % 1200;
            let fwd = (x >> 20) % 4;
            let pn = if (x >> 60) & 1 == 0 {
                top + fwd
            } else {
                top.saturating_sub(back)
            };
            let expected = if pn <= top && pn / 64 + 16 <= top / 64 {
                Err(DropReason::TooOld)
            } else if seen.contains(&pn) {
                Err(DropReason::Duplicate)
            } else {
                Ok(())
            };
            let got = w.accept(pn);
            assert_eq!(got, expected, "pn {pn} top {top}");
            if got.is_ok() {
                seen.insert(pn);
                top = top.max(pn);
            }
        }
    }
}
