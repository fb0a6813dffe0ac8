//! The alert policy: when a placement problem becomes a desktop notification.
//!
//! It lives in the core (not the GUI) so the tray, `yollayah watch --notify` and the tests all
//! obey one rule set: one alert when an incident starts, nothing while it persists, one
//! resolution when it ends, nothing at all while a model is merely unloaded or Ollama is down,
//! a cooldown so a flapping model cannot spam, and a mute switch that silences notifications
//! without hiding the state.
//!
//! The policy is a pure state machine over caller-supplied time, so it is tested without
//! sleeping and costs nothing on the watchdog tick.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Identifies one incident (bad period) of one model; a resolution carries the id of its alert so
/// a notifier can replace the alert with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IncidentId(pub u64);

/// What one tick saw for a model, as far as alerting is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Health<A> {
    /// Fully on the GPU and nothing contradicts it.
    Good,
    /// Not (fully) on the GPU, or NVML contradicts `/api/ps`; `A` is the alert text to show.
    Bad(A),
    /// Nothing can be said: model not loaded, Ollama down, placement unknown. Never alerts and
    /// never resolves, so a restart of Ollama is not an incident.
    Neutral,
}

/// What the caller should do after an observation.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertAction<A> {
    /// A new incident started. `notify` is false when muted or inside the flap cooldown.
    Raise {
        incident: IncidentId,
        alert: A,
        notify: bool,
    },
    /// The incident ended (back on the GPU). `alert` is the one that was raised; `notify`
    /// mirrors whether the raise was notified, so a quiet alert never gets a loud resolution.
    Resolve {
        incident: IncidentId,
        alert: A,
        notify: bool,
    },
}

/// Settings of the policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertSettings {
    /// After a resolution, a new incident within this time is tracked but not notified.
    pub cooldown: Duration,
    /// Silences notifications; incidents are still tracked and published.
    pub muted: bool,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            cooldown: Duration::from_secs(60),
            muted: false,
        }
    }
}

#[derive(Debug, Clone)]
struct Open<A> {
    id: IncidentId,
    alert: A,
    notified: bool,
}

#[derive(Debug, Clone)]
struct Track<A> {
    open: Option<Open<A>>,
    last_resolved_at: Option<Instant>,
}

/// Alert state of every model, keyed by `K` (the model name). Incident ids are unique across
/// keys, so a notifier can use them as notification ids.
#[derive(Debug, Clone)]
pub struct AlertPolicy<K, A> {
    settings: AlertSettings,
    tracks: HashMap<K, Track<A>>,
    next_id: u64,
}

impl<K: Eq + Hash + Clone, A: Clone> AlertPolicy<K, A> {
    /// A policy with no open incident.
    pub fn new(settings: AlertSettings) -> Self {
        AlertPolicy {
            settings,
            tracks: HashMap::new(),
            next_id: 1,
        }
    }

    /// Mutes or unmutes. Muting does not resolve or forget the open incident.
    pub fn set_muted(&mut self, muted: bool) {
        self.settings.muted = muted;
    }

    /// Whether notifications are muted.
    pub fn muted(&self) -> bool {
        self.settings.muted
    }

    /// The open incident of `key`, if any.
    pub fn open_incident(&self, key: &K) -> Option<(IncidentId, &A)> {
        let open = self.tracks.get(key)?.open.as_ref()?;
        Some((open.id, &open.alert))
    }

    /// How many incidents are open over all keys.
    pub fn open_count(&self) -> usize {
        self.tracks.values().filter(|t| t.open.is_some()).count()
    }

    /// Feeds one observation of `key` taken at `now`; returns what to announce, if anything.
    pub fn observe(&mut self, key: &K, now: Instant, health: Health<A>) -> Option<AlertAction<A>> {
        if matches!(health, Health::Neutral) {
            return None;
        }
        let track = self.tracks.entry(key.clone()).or_insert(Track {
            open: None,
            last_resolved_at: None,
        });
        match health {
            Health::Neutral => None,
            Health::Bad(alert) => {
                if let Some(open) = track.open.as_mut() {
                    // Same incident: keep the freshest text (numbers move) but say nothing.
                    open.alert = alert;
                    return None;
                }
                let in_cooldown = track
                    .last_resolved_at
                    .is_some_and(|t| now.saturating_duration_since(t) < self.settings.cooldown);
                let notify = !self.settings.muted && !in_cooldown;
                let id = IncidentId(self.next_id);
                self.next_id += 1;
                track.open = Some(Open {
                    id,
                    alert: alert.clone(),
                    notified: notify,
                });
                Some(AlertAction::Raise {
                    incident: id,
                    alert,
                    notify,
                })
            }
            Health::Good => {
                let open = track.open.take()?;
                track.last_resolved_at = Some(now);
                Some(AlertAction::Resolve {
                    incident: open.id,
                    alert: open.alert,
                    // A muted user asked for silence; an alert they never saw needs no "all clear".
                    notify: open.notified && !self.settings.muted,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "llama3.2:3b";

    fn policy() -> AlertPolicy<&'static str, &'static str> {
        AlertPolicy::new(AlertSettings {
            cooldown: Duration::from_secs(60),
            muted: false,
        })
    }

    fn notified(actions: &[Option<AlertAction<&'static str>>]) -> (usize, usize) {
        actions.iter().flatten().fold((0, 0), |(r, s), a| match a {
            AlertAction::Raise { notify: true, .. } => (r + 1, s),
            AlertAction::Resolve { notify: true, .. } => (r, s + 1),
            _ => (r, s),
        })
    }

    #[test]
    fn one_alert_and_one_resolution_per_incident() {
        let mut p = policy();
        let t0 = Instant::now();
        let mut out = vec![p.observe(&M, t0, Health::Good)];
        for i in 1..10 {
            out.push(p.observe(
                &M,
                t0 + Duration::from_secs(2 * i),
                Health::Bad("62% on CPU"),
            ));
        }
        out.push(p.observe(&M, t0 + Duration::from_secs(30), Health::Good));
        out.push(p.observe(&M, t0 + Duration::from_secs(32), Health::Good));
        assert_eq!(notified(&out), (1, 1));
        assert!(matches!(
            out[1],
            Some(AlertAction::Raise {
                incident: IncidentId(1),
                ..
            })
        ));
        assert!(matches!(
            out[10],
            Some(AlertAction::Resolve {
                incident: IncidentId(1),
                ..
            })
        ));
    }

    #[test]
    fn neutral_neither_raises_nor_resolves() {
        let mut p = policy();
        let t0 = Instant::now();
        assert_eq!(p.observe(&M, t0, Health::Neutral), None);
        assert!(p.observe(&M, t0, Health::Bad("cpu")).is_some());
        // Ollama restarts mid-incident: the incident stays open, nothing is announced.
        assert_eq!(
            p.observe(&M, t0 + Duration::from_secs(2), Health::Neutral),
            None
        );
        assert!(p.open_incident(&M).is_some());
        assert!(matches!(
            p.observe(&M, t0 + Duration::from_secs(4), Health::Good),
            Some(AlertAction::Resolve { notify: true, .. })
        ));
    }

    #[test]
    fn flapping_inside_cooldown_is_quiet_then_loud_again() {
        let mut p = policy();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut out = Vec::new();
        for i in 0..10u64 {
            let h = if i % 2 == 0 {
                Health::Bad("cpu")
            } else {
                Health::Good
            };
            out.push(p.observe(&M, t0 + s(2 * i), h));
        }
        assert_eq!(
            notified(&out),
            (1, 1),
            "only the first incident is announced"
        );
        assert_eq!(
            out.iter().flatten().count(),
            10,
            "every change is still published"
        );
        let late = p.observe(&M, t0 + s(200), Health::Bad("cpu"));
        assert!(matches!(
            late,
            Some(AlertAction::Raise { notify: true, .. })
        ));
    }

    #[test]
    fn mute_silences_but_keeps_tracking() {
        let mut p = policy();
        p.set_muted(true);
        let t0 = Instant::now();
        let raise = p.observe(&M, t0, Health::Bad("cpu"));
        assert!(matches!(
            raise,
            Some(AlertAction::Raise { notify: false, .. })
        ));
        p.set_muted(false);
        // Unmuting mid-incident does not replay the alert, and its resolution stays quiet.
        assert_eq!(
            p.observe(&M, t0 + Duration::from_secs(2), Health::Bad("cpu")),
            None
        );
        let resolve = p.observe(&M, t0 + Duration::from_secs(4), Health::Good);
        assert!(matches!(
            resolve,
            Some(AlertAction::Resolve { notify: false, .. })
        ));
    }

    #[test]
    fn models_are_tracked_separately_with_unique_ids() {
        let mut p = policy();
        let t0 = Instant::now();
        let a = p.observe(&"a", t0, Health::Bad("cpu"));
        let b = p.observe(&"b", t0, Health::Bad("cpu"));
        assert!(matches!(
            a,
            Some(AlertAction::Raise {
                incident: IncidentId(1),
                notify: true,
                ..
            })
        ));
        assert!(matches!(
            b,
            Some(AlertAction::Raise {
                incident: IncidentId(2),
                notify: true,
                ..
            })
        ));
        assert_eq!(p.open_count(), 2);
        assert!(matches!(
            p.observe(&"a", t0, Health::Good),
            Some(AlertAction::Resolve { .. })
        ));
        assert_eq!(p.open_count(), 1);
    }

    #[test]
    fn open_incident_keeps_freshest_text() {
        let mut p = policy();
        let t0 = Instant::now();
        p.observe(&M, t0, Health::Bad("40% on CPU"));
        p.observe(&M, t0 + Duration::from_secs(2), Health::Bad("62% on CPU"));
        assert_eq!(p.open_incident(&M).map(|(_, a)| *a), Some("62% on CPU"));
    }
}
