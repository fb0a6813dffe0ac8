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

/// Alert state of one model.
#[derive(Debug, Clone)]
pub struct AlertPolicy<A> {
    settings: AlertSettings,
    open: Option<Open<A>>,
    last_resolved_at: Option<Instant>,
    next_id: u64,
}

impl<A: Clone> AlertPolicy<A> {
    /// A policy with no open incident.
    pub fn new(settings: AlertSettings) -> Self {
        AlertPolicy {
            settings,
            open: None,
            last_resolved_at: None,
            next_id: 1,
        }
    }

    /// Starts numbering incidents at `first`, so several policies (one per model) can hand out
    /// ids that never collide.
    pub fn with_first_id(settings: AlertSettings, first: u64) -> Self {
        AlertPolicy {
            next_id: first,
            ..AlertPolicy::new(settings)
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

    /// The currently open incident, if any.
    pub fn open_incident(&self) -> Option<(IncidentId, &A)> {
        self.open.as_ref().map(|o| (o.id, &o.alert))
    }

    /// Feeds one observation taken at `now`; returns what to announce, if anything.
    pub fn observe(&mut self, now: Instant, health: Health<A>) -> Option<AlertAction<A>> {
        match health {
            Health::Neutral => None,
            Health::Bad(alert) => {
                if let Some(open) = self.open.as_mut() {
                    // Same incident: keep the freshest text (numbers move) but say nothing.
                    open.alert = alert;
                    return None;
                }
                let in_cooldown = self
                    .last_resolved_at
                    .is_some_and(|t| now.saturating_duration_since(t) < self.settings.cooldown);
                let notify = !self.settings.muted && !in_cooldown;
                let id = IncidentId(self.next_id);
                self.next_id += 1;
                self.open = Some(Open {
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
                let open = self.open.take()?;
                self.last_resolved_at = Some(now);
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

    fn policy() -> AlertPolicy<&'static str> {
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
        let mut out = vec![p.observe(t0, Health::Good)];
        for i in 1..10 {
            out.push(p.observe(t0 + Duration::from_secs(2 * i), Health::Bad("62% on CPU")));
        }
        out.push(p.observe(t0 + Duration::from_secs(30), Health::Good));
        out.push(p.observe(t0 + Duration::from_secs(32), Health::Good));
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
        assert_eq!(p.observe(t0, Health::Neutral), None);
        assert!(p.observe(t0, Health::Bad("cpu")).is_some());
        // Ollama restarts mid-incident: the incident stays open, nothing is announced.
        assert_eq!(
            p.observe(t0 + Duration::from_secs(2), Health::Neutral),
            None
        );
        assert!(p.open_incident().is_some());
        assert!(matches!(
            p.observe(t0 + Duration::from_secs(4), Health::Good),
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
            out.push(p.observe(t0 + s(2 * i), h));
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
        let late = p.observe(t0 + s(200), Health::Bad("cpu"));
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
        let raise = p.observe(t0, Health::Bad("cpu"));
        assert!(matches!(
            raise,
            Some(AlertAction::Raise { notify: false, .. })
        ));
        p.set_muted(false);
        // Unmuting mid-incident does not replay the alert, and its resolution stays quiet.
        assert_eq!(
            p.observe(t0 + Duration::from_secs(2), Health::Bad("cpu")),
            None
        );
        let resolve = p.observe(t0 + Duration::from_secs(4), Health::Good);
        assert!(matches!(
            resolve,
            Some(AlertAction::Resolve { notify: false, .. })
        ));
    }

    #[test]
    fn open_incident_keeps_freshest_text() {
        let mut p = policy();
        let t0 = Instant::now();
        p.observe(t0, Health::Bad("40% on CPU"));
        p.observe(t0 + Duration::from_secs(2), Health::Bad("62% on CPU"));
        assert_eq!(p.open_incident().map(|(_, a)| *a), Some("62% on CPU"));
    }
}
