//! The connection manager: which sessions a shard keeps when it holds too many.
//!
//! One [`ConnManager`] per shard, sans-IO, after go-libp2p's `BasicConnMgr` but inside the
//! shard: no lock, no goroutine, no global view. The application values sessions with tags
//! (weighted names, decaying tags, protections); the host feeds it the pressure the flight
//! recorder sees and the other shards' counts; the manager decides which sessions to trim
//! and says so, a bounded batch at a time ([`ConnManager::trim`]); the host closes each with
//! `Close(Trimmed)`.
//!
//! | file | concern |
//! |---|---|
//! | `tags.rs` | one session's tags and protections, bounded |
//! | `decay.rs` | decaying tags: registration, lazy decay, bumps |
//! | `score.rs` | [`Pressure`] and the score formula |
//! | `watermarks.rs` | a shard's share of the node-wide watermarks; convergence |
//! | `trim.rs` | the incremental trim round |
//!
//! Sessions are named by [`ConnId`]; the manager knows nothing of the session table, so the
//! host must tell it when a session begins ([`ConnManager::insert`]) and ends
//! ([`ConnManager::remove`]). A session the manager trimmed is already forgotten when
//! [`ConnManager::trim`] names it; removing it again is a no-op.
#![forbid(unsafe_code)]

mod decay;
mod score;
mod tags;
mod trim;
mod watermarks;

use crate::id_hash::{BuildIdHasher, IdMap};
use std::time::Duration;

pub use decay::{Bump, Decay, DecayingTag};
pub use score::{Pressure, PressureWeights, magnitude, penalty};
pub use tags::{TagError, TagName};
pub use trim::{TrimCounters, TrimReason, Trims};
pub use watermarks::share;

use super::admission::NodeView;
use super::conn_id::ConnId;
use super::time::Timestamp;
use decay::Registry;
use tags::Tags;
use trim::Round;

/// Connection-manager settings. Start from [`ManagerConfig::default`] and set what you need;
/// every default is justified in `docs/CONFIG.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManagerConfig {
    /// Node-wide: trimming brings the node down to this. Default 163,840.
    pub low_watermark: usize,
    /// Node-wide: a shard trims when it sees the node above this. Default 196,608.
    pub high_watermark: usize,
    /// A session younger than this is never trimmed. Default 60 s.
    pub grace_period: Duration,
    /// After a shard begins a trim round, it begins no other for this long (a forced trim
    /// excepted). Default 10 s.
    pub silence_period: Duration,
    /// Sessions one [`ConnManager::trim`] call scores at most. Default 1024.
    pub trim_batch: usize,
    /// Sessions one [`ConnManager::trim`] call names at most: each is a session the host
    /// closes in the same turn (a Close frame, an event, the application's callback), so
    /// this bounds the host's work as well. Default 128.
    pub close_batch: usize,
    /// Tags, decaying values and protections one session holds at most. Default 16.
    pub max_tags_per_session: usize,
    /// Decaying tags registered at most. Default 64.
    pub max_decaying_tags: usize,
    /// How pressure lowers a score.
    pub pressure: PressureWeights,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            low_watermark: 163_840,
            high_watermark: 196_608,
            grace_period: Duration::from_secs(60),
            silence_period: Duration::from_secs(10),
            trim_batch: 1024,
            close_batch: 128,
            max_tags_per_session: 16,
            max_decaying_tags: 64,
            pressure: PressureWeights::default(),
        }
    }
}

/// A manager setting outside its allowed range; names the setting and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid connection-manager setting `{key}` = {value}: allowed {allowed}")]
#[non_exhaustive]
pub struct ManagerConfigError {
    /// The setting's name.
    pub key: &'static str,
    /// The rejected value.
    pub value: String,
    /// What would have been accepted.
    pub allowed: &'static str,
}

impl ManagerConfig {
    /// Checks every setting against its allowed range.
    pub fn validate(&self) -> Result<(), ManagerConfigError> {
        let err = |key, value: &dyn std::fmt::Debug, allowed| ManagerConfigError {
            key,
            value: format!("{value:?}"),
            allowed,
        };
        if self.high_watermark == 0 {
            return Err(err("high_watermark", &self.high_watermark, "at least 1"));
        }
        if self.low_watermark > self.high_watermark {
            return Err(err(
                "low_watermark",
                &self.low_watermark,
                "at most high_watermark",
            ));
        }
        if self.trim_batch == 0 {
            return Err(err("trim_batch", &self.trim_batch, "at least 1"));
        }
        if self.close_batch == 0 {
            return Err(err("close_batch", &self.close_batch, "at least 1"));
        }
        if !(1..=255).contains(&self.max_tags_per_session) {
            return Err(err(
                "max_tags_per_session",
                &self.max_tags_per_session,
                "1 to 255",
            ));
        }
        if self.max_decaying_tags > usize::from(u16::MAX) {
            return Err(err(
                "max_decaying_tags",
                &self.max_decaying_tags,
                "0 to 65535",
            ));
        }
        Ok(())
    }
}

/// Counters and levels of one shard's manager.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManagerStats {
    /// Sessions managed now.
    pub sessions: usize,
    /// Of those, protected now.
    pub protected: usize,
    /// Sessions the other shards hold, in the node view last given
    /// ([`ConnManager::set_node_view`]).
    pub peer_sessions: usize,
    /// This shard's share of the high watermark now.
    pub high_share: usize,
    /// This shard's share of the low watermark now.
    pub low_share: usize,
    /// Sessions trimmed, by reason.
    pub trimmed: TrimCounters,
    /// Trim rounds begun.
    pub rounds: u64,
    /// Trim rounds that ended above their target: too few sessions were neither protected
    /// nor in their grace period.
    pub rounds_short: u64,
    /// Sessions a round passed over because they were protected.
    pub spared_protected: u64,
    /// Sessions a round passed over because they were in their grace period.
    pub spared_grace: u64,
    /// Sessions scored by trim rounds.
    pub scanned: u64,
    /// Whether a trim round is in progress.
    pub trimming: bool,
    /// Tag operations refused for want of room (`TooManyTags`).
    pub tags_refused: u64,
}

/// One managed session.
#[derive(Debug)]
struct Entry {
    conn: ConnId,
    opened: Timestamp,
    /// `tags.is_protected()`, kept here so that a trim round can skip a protected session
    /// without reaching its tags (one cache miss fewer per session at 100k sessions).
    protected: bool,
    tags: Tags,
    pressure: Pressure,
}

/// One shard's connection manager. See the module documentation.
#[derive(Debug)]
pub struct ConnManager {
    cfg: ManagerConfig,
    /// Dense, so a trim round can walk it by position across calls.
    entries: Vec<Entry>,
    /// conn → position in `entries`. Our own IDs (a session's connection ID, a QUIC
    /// connection's sequence number): hashed with one multiply (`crate::id_hash`, D84).
    index: IdMap<ConnId, u32>,
    registry: Registry,
    /// The node's load, from the count exchange (`None`: never given; the shard is alone).
    view: Option<NodeView>,
    protected: usize,
    round: Option<Round>,
    forced: bool,
    /// When the last trim round began: the start of the exchange round its view was from, or
    /// the call's `now` when it had no complete view.
    last_round: Option<Timestamp>,
    /// The exchange round of the complete view the last watermark round acted on (a view
    /// is acted on once: it shows the counts from before that trim).
    last_view_round: Option<u64>,
    /// The latest `now` any call passed (for calls that take none: dropping decayed values).
    now: Timestamp,
    stats: ManagerStats,
}

impl ConnManager {
    /// A manager with room for `capacity` sessions allocated up front (the host's
    /// `max_sessions_shard`), so that no insertion reallocates inside a loop turn.
    pub fn new(cfg: ManagerConfig, capacity: usize) -> Result<Self, ManagerConfigError> {
        cfg.validate()?;
        Ok(ConnManager {
            registry: Registry::new(cfg.max_decaying_tags),
            cfg,
            entries: Vec::with_capacity(capacity),
            index: IdMap::with_capacity_and_hasher(capacity, BuildIdHasher::default()),
            view: None,
            protected: 0,
            round: None,
            forced: false,
            last_round: None,
            last_view_round: None,
            now: Timestamp::ZERO,
            stats: ManagerStats::default(),
        })
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &ManagerConfig {
        &self.cfg
    }

    /// Starts managing `conn`, opened at `now` (its grace period starts). `false`: it was
    /// managed already (nothing changes).
    pub fn insert(&mut self, now: Timestamp, conn: ConnId) -> bool {
        self.advance(now);
        if self.index.contains_key(&conn) {
            return false;
        }
        let Ok(pos) = u32::try_from(self.entries.len()) else {
            return false;
        };
        self.index.insert(conn, pos);
        self.entries.push(Entry {
            conn,
            opened: now,
            protected: false,
            tags: Tags::default(),
            pressure: Pressure::default(),
        });
        true
    }

    /// Stops managing `conn` (it closed). `false`: it was not managed (never inserted, or
    /// trimmed already).
    pub fn remove(&mut self, conn: ConnId) -> bool {
        let Some(pos) = self.index.remove(&conn) else {
            return false;
        };
        let entry = self.entries.swap_remove(pos as usize);
        if entry.protected {
            self.protected -= 1;
        }
        if let Some(moved) = self.entries.get(pos as usize) {
            self.index.insert(moved.conn, pos);
        }
        true
    }

    /// Whether `conn` is managed.
    #[must_use]
    pub fn contains(&self, conn: ConnId) -> bool {
        self.index.contains_key(&conn)
    }

    /// Sessions managed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no session is managed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The node's load as the count exchange knows it (`AdmissionController::node_view`);
    /// give it after each load report is sent or received. Without one, the shard is
    /// treated as the whole node.
    pub fn set_node_view(&mut self, view: NodeView) {
        self.view = Some(view);
    }

    /// This shard's shares of the high and low watermarks, by the node view (see
    /// `watermarks.rs`).
    #[must_use]
    pub fn shares(&self) -> (usize, usize) {
        let (own, peers) = self.load();
        (
            share(self.cfg.high_watermark, own, peers),
            share(self.cfg.low_watermark, own, peers),
        )
    }

    /// `(own, peers)` the shares are computed from: a complete view's counts, else this
    /// shard's live count and the peers' latest.
    fn load(&self) -> (usize, usize) {
        match self.view {
            Some(v) if v.complete => (v.own, v.peers),
            Some(v) => (self.entries.len(), v.peers),
            None => (self.entries.len(), 0),
        }
    }

    /// Sets tag `name` of `conn` to `weight` (go-libp2p's `TagPeer`).
    pub fn tag(&mut self, conn: ConnId, name: TagName, weight: i32) -> Result<(), TagError> {
        let i = self.room_for(conn, |t| t.has_weight(name))?;
        self.entries[i].tags.set_weight(name, weight);
        Ok(())
    }

    /// Removes tag `name` from `conn`; `false` if it was not set (or no such session).
    pub fn untag(&mut self, conn: ConnId, name: TagName) -> bool {
        self.entry_mut(conn)
            .is_some_and(|e| e.tags.remove_weight(name))
    }

    /// Sets tag `name` of `conn` to `f(current)`, `current` being 0 when unset (go-libp2p's
    /// `UpsertTag`); returns the new weight.
    pub fn upsert_tag(
        &mut self,
        conn: ConnId,
        name: TagName,
        f: impl FnOnce(i32) -> i32,
    ) -> Result<i32, TagError> {
        let i = self.room_for(conn, |t| t.has_weight(name))?;
        let entry = &mut self.entries[i];
        let weight = f(entry.tags.weight(name).unwrap_or(0));
        entry.tags.set_weight(name, weight);
        Ok(weight)
    }

    /// Tag `name`'s weight on `conn`.
    #[must_use]
    pub fn tag_weight(&self, conn: ConnId, name: TagName) -> Option<i32> {
        self.entry(conn)?.tags.weight(name)
    }

    /// Protects `conn` from trimming under `name` (go-libp2p's `Protect`); a session stays
    /// protected while any protection remains.
    pub fn protect(&mut self, conn: ConnId, name: TagName) -> Result<(), TagError> {
        let i = self.room_for(conn, |t| t.is_protected_by(name))?;
        let entry = &mut self.entries[i];
        entry.tags.protect(name);
        if !entry.protected {
            entry.protected = true;
            self.protected += 1;
        }
        Ok(())
    }

    /// Removes protection `name` from `conn`; returns whether `conn` is still protected (by
    /// another name). `false` also for an unknown session.
    pub fn unprotect(&mut self, conn: ConnId, name: TagName) -> bool {
        let Some(entry) = self.entry_mut(conn) else {
            return false;
        };
        let still = entry.tags.unprotect(name);
        if entry.protected && !still {
            entry.protected = false;
            self.protected -= 1;
        }
        still
    }

    /// Whether `conn` is protected (by any name).
    #[must_use]
    pub fn is_protected(&self, conn: ConnId) -> bool {
        self.entry(conn).is_some_and(|e| e.protected)
    }

    /// Whether `conn` is protected by `name`.
    #[must_use]
    pub fn is_protected_by(&self, conn: ConnId, name: TagName) -> bool {
        self.entry(conn)
            .is_some_and(|e| e.tags.is_protected_by(name))
    }

    /// Registers a decaying tag (go-libp2p's `RegisterDecayingTag`): its values decay every
    /// `interval` from `now` by `decay`, and bumps combine by `bump`.
    pub fn register_decaying_tag(
        &mut self,
        now: Timestamp,
        name: TagName,
        interval: Duration,
        decay: Decay,
        bump: Bump,
    ) -> Result<DecayingTag, TagError> {
        self.advance(now);
        self.registry.register(now, name, interval, decay, bump)
    }

    /// Unregisters `tag` (go-libp2p's `DecayingTag.Close`); its values stop counting at once
    /// and are dropped from sessions lazily. `false`: it was not registered.
    pub fn unregister_decaying_tag(&mut self, tag: DecayingTag) -> bool {
        self.registry.unregister(tag)
    }

    /// The name `tag` was registered with.
    #[must_use]
    pub fn decaying_tag_name(&self, tag: DecayingTag) -> Option<TagName> {
        self.registry.name(tag)
    }

    /// Bumps `conn`'s value of `tag` by `delta` at `now`; returns the new value.
    pub fn bump(
        &mut self,
        now: Timestamp,
        tag: DecayingTag,
        conn: ConnId,
        delta: i32,
    ) -> Result<i32, TagError> {
        self.advance(now);
        if !self.registry.is_registered(tag) {
            return Err(TagError::UnknownDecayingTag);
        }
        let i = self.room_for(conn, |t| t.decaying(tag).is_some())?;
        let tags = &mut self.entries[i].tags;
        let value = self.registry.bump(tag, tags.decaying(tag), delta, now)?;
        tags.set_decaying(tag, value);
        // `value_at(now)` of a fresh bump is its base.
        Ok(self.registry.value_at(tag, &value, now).unwrap_or(0))
    }

    /// Removes `conn`'s value of `tag`; `false` if it had none.
    pub fn remove_decaying(&mut self, tag: DecayingTag, conn: ConnId) -> bool {
        self.entry_mut(conn)
            .is_some_and(|e| e.tags.remove_decaying(tag))
    }

    /// `conn`'s value of `tag` at `now` (`None`: none, decayed away, or `tag` unregistered).
    #[must_use]
    pub fn decaying_value(&self, now: Timestamp, tag: DecayingTag, conn: ConnId) -> Option<i32> {
        let v = self.entry(conn)?.tags.decaying(tag)?;
        self.registry.value_at(tag, v, now)
    }

    /// Sets the pressure the flight recorder sees on `conn`. `false`: no such session.
    pub fn set_pressure(&mut self, conn: ConnId, pressure: Pressure) -> bool {
        match self.entry_mut(conn) {
            Some(e) => {
                e.pressure = pressure;
                true
            }
            None => false,
        }
    }

    /// `conn`'s score at `now` (see `score.rs` for the formula).
    #[must_use]
    pub fn score(&self, now: Timestamp, conn: ConnId) -> Option<i64> {
        Some(self.score_of(self.entry(conn)?, now))
    }

    /// Asks for a trim round at the next [`ConnManager::trim`] call, whatever the node's
    /// count and the silence period: down to this shard's share of the low watermark,
    /// sparing protected sessions and those in their grace period.
    pub fn force_trim(&mut self) {
        self.forced = true;
    }

    /// When to call [`ConnManager::trim`] next: `now` while a round is in progress or a
    /// forced one waits; when the silence period ends, if the node view shows the node over
    /// the high watermark and has not been acted on; `None` when nothing is due (a new node
    /// view may change that).
    #[must_use]
    pub fn poll_timeout(&self, now: Timestamp) -> Option<Timestamp> {
        if self.round.is_some() || self.forced {
            return Some(now);
        }
        self.watermark_due(now).map(|at| at.max(now))
    }

    /// Counters and levels now.
    #[must_use]
    pub fn stats(&self) -> ManagerStats {
        let (high_share, low_share) = self.shares();
        ManagerStats {
            sessions: self.entries.len(),
            protected: self.protected,
            peer_sessions: self.load().1,
            high_share,
            low_share,
            trimming: self.round.is_some(),
            ..self.stats
        }
    }

    fn score_of(&self, e: &Entry, now: Timestamp) -> i64 {
        score_entry(e, &self.registry, &self.cfg.pressure, now)
    }

    fn advance(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
    }

    fn entry(&self, conn: ConnId) -> Option<&Entry> {
        self.index.get(&conn).map(|&i| &self.entries[i as usize])
    }

    fn entry_mut(&mut self, conn: ConnId) -> Option<&mut Entry> {
        self.index
            .get(&conn)
            .map(|&i| &mut self.entries[i as usize])
    }

    /// The position of `conn`'s entry, with room for one more item unless `present` says the item is there:
    /// values that decayed away (as of the latest `now` seen) or whose tag was unregistered
    /// are dropped first to make room.
    fn room_for(
        &mut self,
        conn: ConnId,
        present: impl Fn(&Tags) -> bool,
    ) -> Result<usize, TagError> {
        let max = self.cfg.max_tags_per_session;
        let &i = self.index.get(&conn).ok_or(TagError::UnknownSession)?;
        let (registry, now) = (&self.registry, self.now);
        let tags = &mut self.entries[i as usize].tags;
        let fits = present(tags)
            || tags.len() < max
            || (tags.purge_decaying(|tag, v| registry.value_at(tag, v, now).is_none()) > 0
                && tags.len() < max);
        if !fits {
            self.stats.tags_refused += 1;
            return Err(TagError::TooManyTags(max));
        }
        Ok(i as usize)
    }
}

/// The score formula of `score.rs`, for one entry.
fn score_entry(e: &Entry, registry: &Registry, weights: &PressureWeights, now: Timestamp) -> i64 {
    let decaying: i64 = e
        .tags
        .decaying_values()
        .filter_map(|(tag, v)| registry.value_at(tag, v, now))
        .map(i64::from)
        .sum();
    e.tags
        .weights()
        .saturating_add(decaying)
        .saturating_sub(penalty(&e.pressure, weights))
}

#[cfg(test)]
mod tests;
