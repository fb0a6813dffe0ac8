//! What happened to each loaded model between ticks: loads, reloads with other options,
//! expiries and evictions, read from consecutive `/api/ps` answers (plus the `load_duration`
//! of our own requests). `/api/ps` has no load time, so a reload shows up as the entry's
//! `context_length`, `size` or name changing between two ticks, or as the entry vanishing and
//! coming back. One snapshot cannot show reload thrash; this small pure tracker can.
//!
//! The watchdog feeds it on every tick ([`LoadHistory::observe`]) and after its own loads
//! ([`LoadHistory::record_own_load`]); diagnosis reads it through
//! [`crate::diagnose::Observation::history`]. Capture bundles carry it, so thrash seen live
//! can be replayed offline.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::ollama::types::PsModel;

/// Events older than this are forgotten: thrash is about the last half hour, not the day.
pub const WINDOW: Duration = Duration::minutes(30);
/// At most this many events per model.
pub const MAX_EVENTS: usize = 32;
/// An entry that vanishes and comes back within this long was reloaded, not unloaded.
pub const RELOAD_GAP: Duration = Duration::seconds(30);
/// Our own request whose `load_duration` is at least this long really loaded the model (a
/// warm runner answers in milliseconds). A guess; documented in `docs/diagnosis.md`.
pub const OWN_LOAD_MIN_MS: u64 = 500;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LoadEventKind {
    /// Appeared in `/api/ps`.
    Loaded,
    /// Listed at two ticks in a row (or gone for less than [`RELOAD_GAP`]) with another
    /// `context_length`, `size` or name: loaded again with other options.
    Reloaded,
    /// Gone after its `expires_at` passed: the keep-alive ran out.
    Expired,
    /// Gone before its `expires_at`: evicted for another model, or stopped.
    Evicted,
    /// One of our own requests waited `load_ms` for a load.
    OwnLoad { load_ms: u64 },
}

/// One event of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadEvent {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(flatten)]
    pub kind: LoadEventKind,
    /// The name `/api/ps` listed (the model that caused the load).
    pub name: String,
    /// `/api/ps` `context_length` after the event (before it, for expiries and evictions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    #[serde(default)]
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Seen {
    name: String,
    context_length: Option<u64>,
    size: u64,
    expires_at: Option<OffsetDateTime>,
}

/// The history of one weights blob (base and derived models share one runner).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelLoads {
    /// The weights blob path, or the model name when the blob is unknown.
    pub key: String,
    pub events: Vec<LoadEvent>,
    #[serde(skip)]
    last: Option<Seen>,
}

impl ModelLoads {
    fn push(&mut self, e: LoadEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.remove(0);
        }
        self.events.push(e);
    }

    /// Events of `kind`'s variant (ignoring `OwnLoad`'s duration).
    pub fn count(&self, pred: impl Fn(&LoadEventKind) -> bool) -> usize {
        self.events.iter().filter(|e| pred(&e.kind)).count()
    }

    /// Distinct `context_length`s the model was (re)loaded with, in order of first sight.
    pub fn contexts(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for e in &self.events {
            if matches!(e.kind, LoadEventKind::Loaded | LoadEventKind::Reloaded) {
                if let Some(c) = e.context_length {
                    if !out.contains(&c) {
                        out.push(c);
                    }
                }
            }
        }
        out
    }

    /// Distinct names `/api/ps` showed for this blob, in order of first sight.
    pub fn names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for e in &self.events {
            if !out.contains(&e.name.as_str()) {
                out.push(&e.name);
            }
        }
        out
    }

    /// Expiries followed by a load of the same blob, with the gap of each in seconds.
    pub fn reloads_after_expiry(&self) -> Vec<i64> {
        let mut out = Vec::new();
        let mut expired_at = None;
        for e in &self.events {
            match e.kind {
                LoadEventKind::Expired => expired_at = Some(e.at),
                LoadEventKind::Loaded | LoadEventKind::OwnLoad { .. } => {
                    if let Some(t) = expired_at.take() {
                        out.push((e.at - t).whole_seconds());
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Seconds from the first to the last event.
    pub fn span_s(&self) -> i64 {
        match (self.events.first(), self.events.last()) {
            (Some(a), Some(b)) => (b.at - a.at).whole_seconds(),
            _ => 0,
        }
    }
}

/// Per-blob load history over the last [`WINDOW`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadHistory {
    pub models: Vec<ModelLoads>,
    #[serde(skip)]
    last_tick: Option<OffsetDateTime>,
}

impl LoadHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.models.iter().all(|m| m.events.is_empty())
    }

    /// The history of the blob (or name) `key`.
    pub fn get(&self, key: &str) -> Option<&ModelLoads> {
        self.models.iter().find(|m| m.key == key)
    }

    fn entry(&mut self, key: &str) -> &mut ModelLoads {
        let i = match self.models.iter().position(|m| m.key == key) {
            Some(i) => i,
            None => {
                self.models.push(ModelLoads {
                    key: key.to_owned(),
                    events: Vec::new(),
                    last: None,
                });
                self.models.len() - 1
            }
        };
        &mut self.models[i]
    }

    /// Feeds one `/api/ps` answer read at `now`. `key_of` maps an entry to its weights blob
    /// path (`None`: the name is used).
    pub fn observe<'p>(
        &mut self,
        now: OffsetDateTime,
        ps: &'p [PsModel],
        key_of: impl Fn(&'p PsModel) -> Option<&'p str>,
    ) {
        let first_tick = self.last_tick.is_none();
        let mut present: Vec<usize> = Vec::with_capacity(ps.len());
        for p in ps {
            let key = key_of(p).unwrap_or(&p.name);
            let m = self.entry(key);
            let seen = Seen {
                name: p.name.clone(),
                context_length: p.context_length,
                size: p.size,
                expires_at: p.expires_at,
            };
            let event = |kind| LoadEvent {
                at: now,
                kind,
                name: p.name.clone(),
                context_length: p.context_length,
                size: p.size,
            };
            match &m.last {
                Some(prev)
                    if prev.context_length != seen.context_length
                        || prev.size != seen.size
                        || prev.name != seen.name =>
                {
                    m.push(event(LoadEventKind::Reloaded));
                }
                Some(_) => {}
                None if !first_tick => {
                    // Gone for a moment and back with other options: Ollama unloaded it to
                    // load it again, which is a reload, not a fresh load.
                    let kind = match m.events.last() {
                        Some(e)
                            if matches!(e.kind, LoadEventKind::Evicted)
                                && now - e.at <= RELOAD_GAP
                                && (e.context_length != p.context_length
                                    || e.size != p.size
                                    || e.name != p.name) =>
                        {
                            LoadEventKind::Reloaded
                        }
                        _ => LoadEventKind::Loaded,
                    };
                    m.push(event(kind));
                }
                None => {}
            }
            m.last = Some(seen);
            if let Some(i) = self.models.iter().position(|x| x.key == key) {
                present.push(i);
            }
        }
        for (i, m) in self.models.iter_mut().enumerate() {
            if present.contains(&i) {
                continue;
            }
            if let Some(prev) = m.last.take() {
                let expired = prev.expires_at.is_some_and(|t| t <= now);
                m.push(LoadEvent {
                    at: now,
                    kind: if expired {
                        LoadEventKind::Expired
                    } else {
                        LoadEventKind::Evicted
                    },
                    name: prev.name,
                    context_length: prev.context_length,
                    size: prev.size,
                });
            }
        }
        self.prune(now);
        self.last_tick = Some(now);
    }

    /// Records one of our own requests that waited `load_ms` for the model (`load_duration`).
    /// Short waits are not loads and are ignored.
    pub fn record_own_load(&mut self, at: OffsetDateTime, key: &str, name: &str, load_ms: u64) {
        if load_ms < OWN_LOAD_MIN_MS {
            return;
        }
        let m = self.entry(key);
        let context_length = m.last.as_ref().and_then(|s| s.context_length);
        m.push(LoadEvent {
            at,
            kind: LoadEventKind::OwnLoad { load_ms },
            name: name.to_owned(),
            context_length,
            size: 0,
        });
    }

    fn prune(&mut self, now: OffsetDateTime) {
        for m in &mut self.models {
            m.events.retain(|e| now - e.at <= WINDOW);
        }
        self.models
            .retain(|m| !m.events.is_empty() || m.last.is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn ps(name: &str, ctx: u64, size: u64, expires: OffsetDateTime) -> PsModel {
        PsModel {
            name: name.into(),
            model: name.into(),
            size,
            size_vram: size,
            expires_at: Some(expires),
            context_length: Some(ctx),
            ..PsModel::default()
        }
    }

    const BLOB: &str = "/blobs/sha256-aa";

    fn key(_: &PsModel) -> Option<&str> {
        Some(BLOB)
    }

    #[test]
    fn alternating_contexts_are_reloads() {
        let t0 = datetime!(2026-11-21 10:00 UTC);
        let far = datetime!(2319-03-03 12:00 UTC);
        let mut h = LoadHistory::new();
        // Two clients: one sends num_ctx 8192, the other nothing (default 4096).
        for (i, ctx) in [8192, 8192, 4096, 4096, 8192, 4096].iter().enumerate() {
            let size = 5_000_000_000 + ctx * 131_072;
            let now = t0 + Duration::seconds(2 * i as i64);
            h.observe(now, &[ps("llama3.1:8b", *ctx, size, far)], key);
        }
        let m = h.get(BLOB).unwrap();
        assert_eq!(m.count(|k| *k == LoadEventKind::Reloaded), 3);
        assert_eq!(m.contexts(), vec![4096, 8192]);
        // The first sighting is not a load we saw happen.
        assert_eq!(m.count(|k| *k == LoadEventKind::Loaded), 0);
    }

    #[test]
    fn expiry_then_reload_and_quick_reload_after_eviction() {
        let t0 = datetime!(2026-11-21 10:00 UTC);
        let mut h = LoadHistory::new();
        let exp = t0 + Duration::seconds(30);
        h.observe(t0, &[ps("m", 4096, 10, exp)], key);
        h.observe(t0 + Duration::seconds(40), &[], key);
        h.observe(
            t0 + Duration::seconds(100),
            &[ps("m", 4096, 10, exp + Duration::seconds(200))],
            key,
        );
        let m = h.get(BLOB).unwrap();
        assert_eq!(m.count(|k| *k == LoadEventKind::Expired), 1);
        assert_eq!(m.reloads_after_expiry(), vec![60]);
        // Gone before expiry, back 2 s later with another context: a reload.
        let far = datetime!(2319-03-03 12:00 UTC);
        h.observe(t0 + Duration::seconds(102), &[ps("m", 4096, 10, far)], key);
        h.observe(t0 + Duration::seconds(104), &[], key);
        h.observe(t0 + Duration::seconds(106), &[ps("m", 8192, 20, far)], key);
        let m = h.get(BLOB).unwrap();
        assert_eq!(m.count(|k| *k == LoadEventKind::Evicted), 1);
        assert_eq!(
            m.events.last().map(|e| e.kind),
            Some(LoadEventKind::Reloaded)
        );
        // Our own slow request counts; a fast one does not.
        h.record_own_load(t0 + Duration::seconds(107), BLOB, "m", 3200);
        h.record_own_load(t0 + Duration::seconds(108), BLOB, "m", 12);
        let m = h.get(BLOB).unwrap();
        assert_eq!(m.count(|k| matches!(k, LoadEventKind::OwnLoad { .. })), 1);
        // Everything older than the window is forgotten; the unload seen now stays.
        h.observe(t0 + WINDOW + Duration::seconds(200), &[], key);
        let m = h.get(BLOB).unwrap();
        assert_eq!(m.events.len(), 1);
        h.observe(t0 + WINDOW * 3, &[], key);
        assert!(h.is_empty());
    }

    #[test]
    fn serialises_for_bundles() {
        let t0 = datetime!(2026-11-21 10:00 UTC);
        let mut h = LoadHistory::new();
        h.record_own_load(t0, BLOB, "m", 2500);
        let j = serde_json::to_value(&h).unwrap();
        assert_eq!(j["models"][0]["events"][0]["kind"], "own_load");
        assert_eq!(j["models"][0]["events"][0]["load_ms"], 2500);
        let back: LoadHistory = serde_json::from_value(j).unwrap();
        assert_eq!(back.models[0].events, h.models[0].events);
    }
}
