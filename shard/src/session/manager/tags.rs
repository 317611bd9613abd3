//! One session's tags: weighted names, decaying-tag values and protections, in one bounded
//! list.
//!
//! Tag names are `&'static str`: the set of names is fixed by the application's code, so a
//! tag costs no allocation and no name table can grow with traffic. An application that
//! needs a name per topic or per peer keeps its own sum and upserts one tag.
//!
//! A session holds at most `max_tags_per_session` items, weights, decaying values and
//! protections together (a handful in practice; the list is scanned linearly). Weighted tags
//! and protections are separate namespaces, as in go-libp2p.
#![forbid(unsafe_code)]

use super::decay::{DecayValue, DecayingTag};

/// A tag's name.
pub type TagName = &'static str;

/// Why a tag operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagError {
    /// No session with this connection ID is managed (never inserted, closed or trimmed).
    #[error("no such session")]
    UnknownSession,
    /// The session holds `max_tags_per_session` tags, decaying values and protections.
    #[error("the session holds {0} tags already")]
    TooManyTags(usize),
    /// The decaying tag was never registered, or was unregistered.
    #[error("no such decaying tag")]
    UnknownDecayingTag,
    /// `max_decaying_tags` decaying tags are registered.
    #[error("{0} decaying tags are registered already")]
    TooManyDecayingTags(usize),
    /// A live decaying tag has this name.
    #[error("a decaying tag named {0:?} is registered already")]
    DuplicateName(&'static str),
    /// An argument out of range (the text says which).
    #[error("invalid decaying tag: {0}")]
    Invalid(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    Weight { name: TagName, weight: i32 },
    Decaying { tag: DecayingTag, value: DecayValue },
    Protect { name: TagName },
}

/// Bytes one tag, decaying value or protection takes in its session's list.
#[cfg(test)]
pub(crate) const ITEM_SIZE: usize = std::mem::size_of::<Item>();

/// The items of one session. Empty: no allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tags {
    items: Vec<Item>,
}

impl Tags {
    pub fn weight(&self, name: TagName) -> Option<i32> {
        self.items.iter().find_map(|i| match *i {
            Item::Weight { name: n, weight } if n == name => Some(weight),
            _ => None,
        })
    }

    /// The sum of the weighted tags.
    pub fn weights(&self) -> i64 {
        self.items
            .iter()
            .map(|i| match *i {
                Item::Weight { weight, .. } => i64::from(weight),
                _ => 0,
            })
            .sum()
    }

    /// Sets `name` to `weight` (the caller checks there is room for a new item).
    pub fn set_weight(&mut self, name: TagName, weight: i32) {
        for i in &mut self.items {
            if let Item::Weight { name: n, weight: w } = i
                && *n == name
            {
                *w = weight;
                return;
            }
        }
        self.items.push(Item::Weight { name, weight });
    }

    pub fn has_weight(&self, name: TagName) -> bool {
        self.weight(name).is_some()
    }

    /// Removes `name`; `false` if it was not set.
    pub fn remove_weight(&mut self, name: TagName) -> bool {
        self.remove(|i| matches!(*i, Item::Weight { name: n, .. } if n == name))
    }

    pub fn decaying(&self, tag: DecayingTag) -> Option<&DecayValue> {
        self.items.iter().find_map(|i| match i {
            Item::Decaying { tag: t, value } if *t == tag => Some(value),
            _ => None,
        })
    }

    /// Sets `tag`'s value (adding it needs room).
    pub fn set_decaying(&mut self, tag: DecayingTag, value: DecayValue) {
        for i in &mut self.items {
            if let Item::Decaying { tag: t, value: v } = i
                && *t == tag
            {
                *v = value;
                return;
            }
        }
        self.items.push(Item::Decaying { tag, value });
    }

    pub fn remove_decaying(&mut self, tag: DecayingTag) -> bool {
        self.remove(|i| matches!(*i, Item::Decaying { tag: t, .. } if t == tag))
    }

    /// Every decaying value.
    pub fn decaying_values(&self) -> impl Iterator<Item = (DecayingTag, &DecayValue)> {
        self.items.iter().filter_map(|i| match i {
            Item::Decaying { tag, value } => Some((*tag, value)),
            _ => None,
        })
    }

    /// Drops the decaying values `dead` says are gone (decayed away, or their tag
    /// unregistered); returns how many.
    pub fn purge_decaying(
        &mut self,
        mut dead: impl FnMut(DecayingTag, &DecayValue) -> bool,
    ) -> usize {
        let before = self.items.len();
        self.items.retain(|i| match i {
            Item::Decaying { tag, value } => !dead(*tag, value),
            _ => true,
        });
        before - self.items.len()
    }

    pub fn is_protected(&self) -> bool {
        self.items.iter().any(|i| matches!(i, Item::Protect { .. }))
    }

    pub fn is_protected_by(&self, name: TagName) -> bool {
        self.items
            .iter()
            .any(|i| matches!(*i, Item::Protect { name: n } if n == name))
    }

    /// Adds protection `name` (adding needs room unless it is there already).
    pub fn protect(&mut self, name: TagName) {
        if !self.is_protected_by(name) {
            self.items.push(Item::Protect { name });
        }
    }

    /// Removes protection `name`; returns whether any protection remains.
    pub fn unprotect(&mut self, name: TagName) -> bool {
        self.remove(|i| matches!(*i, Item::Protect { name: n } if n == name));
        self.is_protected()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    fn remove(&mut self, pred: impl Fn(&Item) -> bool) -> bool {
        match self.items.iter().position(pred) {
            Some(i) => {
                self.items.swap_remove(i);
                if self.items.is_empty() {
                    self.items = Vec::new();
                }
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_and_protections_are_separate_namespaces() {
        let mut t = Tags::default();
        t.set_weight("relay", 10);
        t.set_weight("dht", -3);
        t.set_weight("relay", 50);
        assert_eq!(t.weight("relay"), Some(50));
        assert_eq!(t.weights(), 47);
        t.protect("relay");
        t.protect("relay");
        assert_eq!(t.len(), 3);
        assert!(t.is_protected_by("relay"));
        assert!(t.remove_weight("relay"));
        assert!(!t.remove_weight("relay"));
        assert!(
            t.is_protected(),
            "removing the weight leaves the protection"
        );
        t.protect("pinned");
        assert!(t.unprotect("relay"), "still protected by pinned");
        assert!(!t.unprotect("pinned"));
        assert!(!t.unprotect("pinned"));
        assert_eq!(t.weights(), -3);
        assert!(t.remove_weight("dht"));
        assert_eq!(t, Tags::default());
    }
}
