//! Decaying tags, as go-libp2p's `Decayer`: a tag registered once with an interval, a decay
//! function and a bump function, whose per-session values decay at every interval and are
//! raised by bumps.
//!
//! Decay is applied lazily, not by a ticker walking every value: a value stores its `base`
//! (what the last bump left), the tick at which that happened, and the time of that bump;
//! its value at `now` is the decay function applied once per tick boundary crossed since,
//! in closed form, so reading it costs O(1) however long it was left alone, and no timer or
//! sweep ever runs. Tick boundaries are `registered_at + k × interval`, one grid per tag, so
//! every session's value of a tag decays at the same instants (as under libp2p's ticker).
//!
//! | decay | value after `k ≥ 1` ticks | removed when |
//! |---|---|---|
//! | `None` | `base` | never |
//! | `Fixed(d)` | `base − k·d` | it is `≤ 0` |
//! | `Linear(c)` | `⌊base · cᵏ⌋` | it is `≤ 0` |
//! | `ExpireWhenInactive(t)` | `base` | a tick falls `≥ t` after the last bump |
//!
//! Before the first tick after a bump the value is `base`, whatever it is. Two differences
//! from go-libp2p, on purpose: `Linear` floors once (`⌊base · cᵏ⌋`) where libp2p floors at
//! every tick, which is what makes it O(1) (the results differ by at most one per tick and
//! agree on when the value reaches zero only approximately); and `ExpireWhenInactive` keeps
//! the value until it expires, where libp2p's version returns 0 at every tick and, comparing
//! `time.Until(LastVisit)` (negative for a past visit) with the period, never removes the tag.
//! Custom decay closures are not offered: they would need one call per elapsed tick.
//!
//! | bump | new base from the current value `v` and `delta` |
//! |---|---|
//! | `Sum` | `v + delta` (saturating) |
//! | `SumBounded { min, max }` | `clamp(v + delta, min, max)` |
//! | `Overwrite` | `delta` |
//!
//! A removed value bumps from 0, as if it had never been.
#![forbid(unsafe_code)]

use std::time::Duration;

use super::super::time::{Timestamp, nanos};
use super::tags::{TagError, TagName};

/// How a decaying tag's values fall at each interval. See the module documentation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decay {
    /// No decay.
    None,
    /// Subtract this (`≥ 0`) at every tick; the value goes when it reaches 0.
    Fixed(i32),
    /// Multiply by this (`0.0..=1.0`) at every tick, rounding down; the value goes at 0.
    Linear(f64),
    /// Keep the value; remove it at the first tick this long after its last bump.
    ExpireWhenInactive(Duration),
}

/// How a bump combines a decaying tag's current value with its delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bump {
    /// Add (saturating).
    Sum,
    /// Add, then clamp into `min..=max`.
    SumBounded {
        /// Lowest result.
        min: i32,
        /// Highest result.
        max: i32,
    },
    /// Replace the value by the delta.
    Overwrite,
}

/// A registered decaying tag. Copyable; stale once unregistered (a later registration that
/// reuses the slot gets another generation, so an old handle never reaches it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecayingTag {
    index: u16,
    generation: u32,
}

/// One session's value of one decaying tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DecayValue {
    base: i32,
    base_tick: u64,
    last_bump: Timestamp,
}

#[derive(Clone, Copy, Debug)]
struct Registration {
    name: TagName,
    origin: Timestamp,
    interval_ns: u64,
    decay: Decay,
    bump: Bump,
}

impl Registration {
    fn tick(&self, t: Timestamp) -> u64 {
        t.as_nanos().saturating_sub(self.origin.as_nanos()) / self.interval_ns
    }

    fn value_at(&self, v: &DecayValue, now: Timestamp) -> Option<i32> {
        let tick = self.tick(now);
        let k = tick.saturating_sub(v.base_tick);
        if k == 0 {
            return Some(v.base);
        }
        let positive = |x: i64| (x > 0).then(|| i32::try_from(x).unwrap_or(i32::MAX));
        match self.decay {
            Decay::None => Some(v.base),
            Decay::Fixed(d) => {
                let dropped = i64::from(d).saturating_mul(i64::try_from(k).unwrap_or(i64::MAX));
                positive(i64::from(v.base).saturating_sub(dropped))
            }
            Decay::Linear(c) => {
                let k = i32::try_from(k).unwrap_or(i32::MAX);
                // `as` saturates (NaN cannot occur: `c` is finite and in 0..=1).
                positive((f64::from(v.base) * c.powi(k)).floor() as i64)
            }
            Decay::ExpireWhenInactive(after) => {
                let last_tick_at = self
                    .origin
                    .as_nanos()
                    .saturating_add(tick.saturating_mul(self.interval_ns));
                let idle = last_tick_at.saturating_sub(v.last_bump.as_nanos());
                (idle < nanos(after)).then_some(v.base)
            }
        }
    }
}

/// The registered decaying tags (at most `max`).
#[derive(Debug)]
pub(crate) struct Registry {
    /// Per slot: its current generation, and the registration while live.
    slots: Vec<(u32, Option<Registration>)>,
    max: usize,
}

impl Registry {
    pub fn new(max: usize) -> Self {
        Registry {
            slots: Vec::new(),
            max: max.min(usize::from(u16::MAX)),
        }
    }

    pub fn register(
        &mut self,
        now: Timestamp,
        name: TagName,
        interval: Duration,
        decay: Decay,
        bump: Bump,
    ) -> Result<DecayingTag, TagError> {
        if interval.is_zero() {
            return Err(TagError::Invalid("interval must be positive"));
        }
        match decay {
            Decay::Fixed(d) if d < 0 => {
                return Err(TagError::Invalid(
                    "Decay::Fixed takes a non-negative amount",
                ));
            }
            Decay::Linear(c) if !(0.0..=1.0).contains(&c) => {
                return Err(TagError::Invalid("Decay::Linear takes a factor in 0..=1"));
            }
            _ => {}
        }
        if let Bump::SumBounded { min, max } = bump
            && min > max
        {
            return Err(TagError::Invalid("Bump::SumBounded needs min <= max"));
        }
        if self.live().any(|r| r.name == name) {
            return Err(TagError::DuplicateName(name));
        }
        let reg = Registration {
            name,
            origin: now,
            interval_ns: nanos(interval).max(1),
            decay,
            bump,
        };
        let index = match self.slots.iter().position(|(_, r)| r.is_none()) {
            Some(i) => i,
            None if self.slots.len() < self.max => {
                self.slots.push((0, None));
                self.slots.len() - 1
            }
            None => return Err(TagError::TooManyDecayingTags(self.max)),
        };
        let slot = &mut self.slots[index];
        slot.1 = Some(reg);
        Ok(DecayingTag {
            // `index < max <= u16::MAX`.
            index: index as u16,
            generation: slot.0,
        })
    }

    /// Unregisters `tag`; its values are ignored from now on. `false`: it was not registered.
    pub fn unregister(&mut self, tag: DecayingTag) -> bool {
        match self.slots.get_mut(usize::from(tag.index)) {
            Some(slot) if slot.0 == tag.generation && slot.1.is_some() => {
                slot.1 = None;
                slot.0 = slot.0.wrapping_add(1);
                true
            }
            _ => false,
        }
    }

    pub fn is_registered(&self, tag: DecayingTag) -> bool {
        self.get(tag).is_some()
    }

    pub fn name(&self, tag: DecayingTag) -> Option<TagName> {
        self.get(tag).map(|r| r.name)
    }

    /// `tag`'s value `v` at `now`; `None` if it decayed away or `tag` is no longer registered.
    pub fn value_at(&self, tag: DecayingTag, v: &DecayValue, now: Timestamp) -> Option<i32> {
        self.get(tag)?.value_at(v, now)
    }

    /// The value after bumping `old` (absent or decayed away: 0) by `delta` at `now`.
    pub fn bump(
        &self,
        tag: DecayingTag,
        old: Option<&DecayValue>,
        delta: i32,
        now: Timestamp,
    ) -> Result<DecayValue, TagError> {
        let reg = self.get(tag).ok_or(TagError::UnknownDecayingTag)?;
        let current = old.and_then(|v| reg.value_at(v, now)).unwrap_or(0);
        let base = match reg.bump {
            Bump::Sum => current.saturating_add(delta),
            Bump::SumBounded { min, max } => current.saturating_add(delta).clamp(min, max),
            Bump::Overwrite => delta,
        };
        Ok(DecayValue {
            base,
            base_tick: reg.tick(now),
            last_bump: now,
        })
    }

    fn get(&self, tag: DecayingTag) -> Option<&Registration> {
        match self.slots.get(usize::from(tag.index)) {
            Some((generation, Some(reg))) if *generation == tag.generation => Some(reg),
            _ => None,
        }
    }

    fn live(&self) -> impl Iterator<Item = &Registration> {
        self.slots.iter().filter_map(|(_, r)| r.as_ref())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use proptest::prelude::*;

    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn reg(decay: Decay, bump: Bump) -> (Registry, DecayingTag) {
        let mut r = Registry::new(4);
        let tag = r.register(t(0), "d", S, decay, bump).unwrap();
        (r, tag)
    }

    #[test]
    fn fixed_decays_at_tick_boundaries_and_is_removed_at_zero() {
        let (r, tag) = reg(Decay::Fixed(3), Bump::Sum);
        let v = r.bump(tag, None, 10, t(500)).unwrap();
        assert_eq!(
            r.value_at(tag, &v, t(999)),
            Some(10),
            "before the first boundary"
        );
        assert_eq!(r.value_at(tag, &v, t(1000)), Some(7));
        assert_eq!(r.value_at(tag, &v, t(3999)), Some(1));
        assert_eq!(r.value_at(tag, &v, t(4000)), None, "10 - 4x3 <= 0");
        // A bump after removal starts from 0.
        let v2 = r.bump(tag, Some(&v), 2, t(5000)).unwrap();
        assert_eq!(r.value_at(tag, &v2, t(5000)), Some(2));
    }

    #[test]
    fn linear_floors_once() {
        let (r, tag) = reg(Decay::Linear(0.5), Bump::Sum);
        let v = r.bump(tag, None, 100, t(0)).unwrap();
        assert_eq!(r.value_at(tag, &v, t(1000)), Some(50));
        assert_eq!(r.value_at(tag, &v, t(3000)), Some(12)); // 100/8 = 12.5
        assert_eq!(r.value_at(tag, &v, t(7000)), None); // 100/128 < 1
        assert_eq!(r.value_at(tag, &v, Timestamp::NEVER), None);
    }

    #[test]
    fn expire_when_inactive_keeps_the_value_until_a_tick_past_the_period() {
        let (r, tag) = reg(
            Decay::ExpireWhenInactive(Duration::from_millis(2500)),
            Bump::Sum,
        );
        let v = r.bump(tag, None, 7, t(200)).unwrap();
        assert_eq!(r.value_at(tag, &v, t(2999)), Some(7)); // tick at 2000: idle 1.8 s
        assert_eq!(r.value_at(tag, &v, t(3000)), None); // tick at 3000: idle 2.8 s
        // Bumping keeps it alive.
        let v = r.bump(tag, Some(&v), 1, t(2900)).unwrap();
        assert_eq!(r.value_at(tag, &v, t(5000)), Some(8));
        assert_eq!(r.value_at(tag, &v, t(6000)), None);
    }

    #[test]
    fn bumps_combine_as_configured() {
        let (r, tag) = reg(Decay::None, Bump::SumBounded { min: -5, max: 20 });
        let v = r.bump(tag, None, 15, t(0)).unwrap();
        let v = r.bump(tag, Some(&v), 15, t(0)).unwrap();
        assert_eq!(r.value_at(tag, &v, t(99_000)), Some(20));
        let v = r.bump(tag, Some(&v), -100, t(0)).unwrap();
        assert_eq!(r.value_at(tag, &v, t(0)), Some(-5));
        let (r, tag) = reg(Decay::None, Bump::Overwrite);
        let v = r.bump(tag, None, 15, t(0)).unwrap();
        let v = r.bump(tag, Some(&v), 3, t(0)).unwrap();
        assert_eq!(r.value_at(tag, &v, t(0)), Some(3));
        let (r, tag) = reg(Decay::None, Bump::Sum);
        let v = r.bump(tag, None, i32::MAX, t(0)).unwrap();
        let v = r.bump(tag, Some(&v), 1, t(0)).unwrap();
        assert_eq!(r.value_at(tag, &v, t(0)), Some(i32::MAX));
    }

    #[test]
    fn registration_is_validated_bounded_and_generational() {
        let mut r = Registry::new(2);
        let bad = |r: &mut Registry, d, b| r.register(t(0), "x", S, d, b).unwrap_err();
        assert!(matches!(
            bad(&mut r, Decay::Linear(1.5), Bump::Sum),
            TagError::Invalid(_)
        ));
        assert!(matches!(
            bad(&mut r, Decay::Linear(f64::NAN), Bump::Sum),
            TagError::Invalid(_)
        ));
        assert!(matches!(
            bad(&mut r, Decay::Fixed(-1), Bump::Sum),
            TagError::Invalid(_)
        ));
        assert!(matches!(
            bad(&mut r, Decay::None, Bump::SumBounded { min: 2, max: 1 }),
            TagError::Invalid(_)
        ));
        assert!(matches!(
            r.register(t(0), "x", Duration::ZERO, Decay::None, Bump::Sum),
            Err(TagError::Invalid(_))
        ));
        let a = r.register(t(0), "a", S, Decay::None, Bump::Sum).unwrap();
        assert_eq!(
            r.register(t(0), "a", S, Decay::None, Bump::Sum),
            Err(TagError::DuplicateName("a"))
        );
        let _b = r.register(t(0), "b", S, Decay::None, Bump::Sum).unwrap();
        assert_eq!(
            r.register(t(0), "c", S, Decay::None, Bump::Sum),
            Err(TagError::TooManyDecayingTags(2))
        );
        let v = r.bump(a, None, 5, t(0)).unwrap();
        assert!(r.unregister(a));
        assert!(!r.unregister(a));
        assert_eq!(
            r.value_at(a, &v, t(0)),
            None,
            "values of an unregistered tag count nothing"
        );
        let c = r.register(t(0), "c", S, Decay::None, Bump::Sum).unwrap();
        assert_ne!(a, c, "the reused slot has a new generation");
        assert!(r.is_registered(c) && !r.is_registered(a));
        assert_eq!(r.name(c), Some("c"));
        assert_eq!(r.bump(a, None, 1, t(0)), Err(TagError::UnknownDecayingTag));
    }

    proptest! {
        /// Lazy decay equals decaying at every boundary, for `Fixed` (exactly) and `Linear`
        /// (to within the per-tick flooring: never above, at most `k` below).
        #[test]
        fn lazy_decay_matches_stepwise(base in 1i32..100_000, d in 0i32..500, c in 0.0f64..=1.0, k in 0u64..200, bump_ms in 0u64..1000) {
            let (r, fixed) = reg(Decay::Fixed(d), Bump::Overwrite);
            let v = r.bump(fixed, None, base, t(bump_ms)).unwrap();
            let mut step = Some(base);
            for _ in 0..k {
                step = step.and_then(|x| (x - d > 0).then_some(x - d));
            }
            prop_assert_eq!(r.value_at(fixed, &v, t(k * 1000 + bump_ms)), step);

            let (r, linear) = reg(Decay::Linear(c), Bump::Overwrite);
            let v = r.bump(linear, None, base, t(bump_ms)).unwrap();
            let mut step = Some(i64::from(base));
            for _ in 0..k {
                step = step.and_then(|x| { let y = (x as f64 * c).floor() as i64; (y > 0).then_some(y) });
            }
            let lazy = r.value_at(linear, &v, t(k * 1000 + bump_ms)).map(i64::from);
            match (lazy, step) {
                (Some(l), Some(s)) => prop_assert!(l >= s && l - s <= k as i64, "{} vs {}", l, s),
                (None, Some(s)) => prop_assert!(false, "lazy removed, stepwise {}", s),
                (Some(l), None) => prop_assert!(l <= k as i64, "lazy {} kept", l),
                (None, None) => {}
            }
        }
    }
}
