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
//! Compact form: the 1,024-bit bitmap (128 bytes) is needed only while some packet number of
//! the window's older blocks has not arrived. A session whose datagrams arrive in order (or
//! reordered by less than a block) keeps only the two newest blocks inline (`recent`, slot
//! `b % 2`), with the invariant that every number of the blocks `highest/64 - 15 ..=
//! highest/64 - 2` has been received, so the full window would answer `Duplicate` for them
//! exactly as the compact one does. A block that would leave the compact pair with a number
//! missing (a loss, deeper reordering, a jump ahead) moves the window into the boxed bitmap;
//! once the boxed window's older blocks are complete again (the gap was filled, or has moved
//! out of the window), it returns to the compact form. The answers are those of the full
//! window in both forms (the oracle test checks it); an idle healthy session holds 32 bytes
//! instead of 136 (`docs/DECISIONS.md` D56).
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

/// The whole bitmap, block `b` in slot `b % 16`.
type Bitmap = [u64; BLOCKS as usize];

/// A 1024-bit sliding window of received packet numbers.
#[derive(Clone, Debug, Default)]
pub struct ReplayWindow {
    highest: u64,
    /// Compact form: blocks `highest/64 - 1` and `highest/64`, block `b` in slot `b % 2`.
    recent: [u64; 2],
    /// The whole window, while some older block of it is incomplete.
    full: Option<Box<Bitmap>>,
}

impl ReplayWindow {
    /// Whether `pn` is acceptable: `Ok` if it was never seen and is inside the window.
    pub fn check(&self, pn: u64) -> Result<(), DropReason> {
        if pn > self.highest {
            return Ok(());
        }
        let (b, top) = (pn / BLOCK_BITS, self.highest / BLOCK_BITS);
        if b + BLOCKS <= top {
            return Err(DropReason::TooOld);
        }
        let bit = 1u64 << (pn % BLOCK_BITS);
        let word = match &self.full {
            Some(full) => full[(b % BLOCKS) as usize],
            // Compact: every number below the two newest blocks has been received.
            None if b + 2 <= top => u64::MAX,
            None => self.recent[(b % 2) as usize],
        };
        if word & bit != 0 {
            Err(DropReason::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records `pn` as received. Call only after [`ReplayWindow::check`] returned `Ok`.
    pub fn commit(&mut self, pn: u64) {
        if pn > self.highest {
            let (cur, new) = (self.highest / BLOCK_BITS, pn / BLOCK_BITS);
            if new > cur && self.full.is_none() && !self.compact_can_move(cur, new) {
                self.promote(cur);
            }
            match &mut self.full {
                Some(full) => {
                    // Zero the slots of every block skipped over (at most all of them).
                    for b in cur + 1..=new.min(cur + BLOCKS) {
                        full[(b % BLOCKS) as usize] = 0;
                    }
                }
                None => {
                    for b in cur + 1..=new.min(cur + 2) {
                        self.recent[(b % 2) as usize] = 0;
                    }
                }
            }
            self.highest = pn;
        }
        let (b, bit) = (pn / BLOCK_BITS, 1u64 << (pn % BLOCK_BITS));
        match &mut self.full {
            Some(full) => {
                full[(b % BLOCKS) as usize] |= bit;
                self.demote_if_complete();
            }
            None => self.recent[(b % 2) as usize] |= bit,
        }
    }

    /// Compact form, moving from block `cur` to block `new`: whether every block that then
    /// lies below the compact pair but inside the window is complete.
    fn compact_can_move(&self, cur: u64, new: u64) -> bool {
        let oldest = new.saturating_sub(BLOCKS - 1);
        (oldest..new.saturating_sub(1)).all(|b| {
            if b + 2 <= cur {
                true // below the old pair: complete by the invariant
            } else if b <= cur {
                self.recent[(b % 2) as usize] == u64::MAX
            } else {
                false // skipped over: nothing of it received
            }
        })
    }

    /// Moves the compact window at block `cur` into the full bitmap.
    fn promote(&mut self, cur: u64) {
        let mut full: Box<Bitmap> = Box::new([u64::MAX; BLOCKS as usize]);
        for b in cur.saturating_sub(1)..=cur {
            full[(b % BLOCKS) as usize] = self.recent[(b % 2) as usize];
        }
        self.full = Some(full);
    }

    /// Full form: back to the compact one once every block below the newest two is complete.
    fn demote_if_complete(&mut self) {
        let Some(full) = &self.full else {
            return;
        };
        let top = self.highest / BLOCK_BITS;
        let oldest = top.saturating_sub(BLOCKS - 1);
        if (oldest..top.saturating_sub(1)).all(|b| full[(b % BLOCKS) as usize] == u64::MAX) {
            for b in top.saturating_sub(1)..=top {
                self.recent[(b % 2) as usize] = full[(b % BLOCKS) as usize];
            }
            self.full = None;
        }
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

    /// Whether the window holds only its compact form (no boxed bitmap).
    #[must_use]
    pub fn is_compact(&self) -> bool {
        self.full.is_none()
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
        // Small steps ahead (the compact form, boxed at each gap) and long jumps (boxed).
        for max_fwd in [4, 200] {
            oracle(max_fwd);
        }
    }

    fn oracle(max_fwd: u64) {
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
            let fwd = (x >> 20) % max_fwd;
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

    #[test]
    fn in_order_stays_compact_and_a_gap_boxes_until_filled_or_gone() {
        let mut w = ReplayWindow::default();
        for pn in 0..5000 {
            assert_eq!(w.accept(pn), Ok(()));
            assert!(w.is_compact(), "in order: {pn}");
        }
        assert_eq!(w.accept(4100), Err(DropReason::Duplicate));
        assert_eq!(w.accept(3000), Err(DropReason::TooOld));
        // Reordering within a block pair stays compact.
        assert_eq!(w.accept(5010), Ok(()));
        assert_eq!(w.accept(5005), Ok(()));
        assert!(w.is_compact());
        // 5000..5100 with 5050 missing: the window boxes when that block leaves the pair.
        for pn in (5000..5300).filter(|&p| p != 5050 && p != 5010 && p != 5005) {
            assert_eq!(w.accept(pn), Ok(()), "{pn}");
        }
        assert!(!w.is_compact(), "5050 may still arrive");
        assert_eq!(w.accept(5050), Ok(()));
        assert!(w.is_compact(), "the gap is filled");
        assert_eq!(w.accept(5050), Err(DropReason::Duplicate));
        // A loss that never heals: boxed until the gap leaves the window.
        for pn in (5300..5500).filter(|&p| p != 5310) {
            assert_eq!(w.accept(pn), Ok(()));
        }
        assert!(!w.is_compact());
        for pn in 5500..6500 {
            assert_eq!(w.accept(pn), Ok(()));
        }
        assert!(w.is_compact(), "the gap moved out of the window");
        assert_eq!(w.accept(5310), Err(DropReason::TooOld));
        // A jump ahead boxes (the numbers skipped over may still arrive).
        assert_eq!(w.accept(10_000), Ok(()));
        assert!(!w.is_compact());
        assert_eq!(w.accept(9_500), Ok(()));
        assert_eq!(w.accept(9_500), Err(DropReason::Duplicate));
    }
}
