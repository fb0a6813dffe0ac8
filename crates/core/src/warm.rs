//! Keep-warm: keep the configured model loaded in VRAM with Yollayah's load-time options.
//!
//! The policy is pure: each watchdog tick hands it what `/api/ps` showed and it answers what to
//! do. It notices (a) the model is gone — evicted by another model, expired, unloaded by a
//! runtime OOM, or lost in an Ollama restart — and re-warms with backoff; (b) another client
//! shortened its `keep_alive` (fact sheet §4: any later request that sets keep_alive overwrites
//! ours) and re-asserts it; (c) the runner was reloaded with other load-time options by somebody
//! else, which it reports instead of fighting (fighting would make both clients reload forever).
//!
//! Eviction by another model gets exactly one re-warm: if the same contention evicts us again,
//! re-warming would just evict the other model and start a loop, so the policy waits until the
//! other model is gone or the user asks (a chat or an explicit warm).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::parse_go_duration;
use crate::ollama::types::{KeepAlive, PsModel};

/// `ollama ps` shows "Forever" when the expiry is more than this far ahead (`format/time.go`).
const FOREVER_THRESHOLD: Duration = Duration::from_secs(20 * 365 * 24 * 3600);

/// Why a (re-)warm is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WarmReason {
    /// First warm since start, or an explicit request.
    Requested,
    /// Not loaded and nothing explains why (startup, manual `ollama stop`).
    NotLoaded,
    /// Another model took its place.
    Evicted { by: Vec<String> },
    /// Every model vanished at once while Ollama stayed up: the runtime-OOM "expire
    /// everything" path (fact sheet §3) or an external unload of all models.
    AllModelsUnloaded,
    /// Its keep_alive ran out.
    Expired,
    /// Ollama went away and came back; a restart unloads everything.
    OllamaRestarted,
}

/// What the keep-warm policy asks the watchdog to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum WarmAction {
    /// Load the model with the profile's keep_alive and load-time options.
    Warm { reason: WarmReason },
    /// The model is loaded but its expiry moved closer than ours: send our keep_alive again.
    Reassert { expires_in_s: i64 },
    /// It was reloaded with a different context than ours by somebody else.
    OptionsDrifted {
        expected_num_ctx: u64,
        loaded_num_ctx: u64,
    },
    /// Another model keeps evicting ours; we stop re-warming until it is gone.
    Contention { with: Vec<String> },
}

/// What a tick observed, as the keep-warm policy needs it.
#[derive(Clone, Copy)]
pub struct WarmObservation<'a> {
    pub now: Instant,
    pub wall: OffsetDateTime,
    /// `None` when Ollama did not answer.
    pub ps: Option<&'a [PsModel]>,
    /// Whether a ps entry is our model (by name, or by sharing our weights blob).
    pub is_ours: &'a dyn Fn(&PsModel) -> bool,
}

/// The keep-warm state machine of one model.
#[derive(Debug, Clone)]
pub struct KeepWarm {
    keep_alive: KeepAlive,
    expected_num_ctx: Option<u64>,
    enabled: bool,
    backoff_max: Duration,
    /// Was it loaded at the previous tick, and which other models were there?
    was_loaded: bool,
    others_before: Vec<String>,
    was_down: bool,
    /// When we last loaded or re-asserted it, for judging expiry overrides.
    last_assert_wall: Option<OffsetDateTime>,
    /// Retry schedule of failed warms.
    failures: u32,
    retry_at: Option<Instant>,
    /// Models that evicted us after a re-warm; while any of them is loaded we hold off.
    contention: Vec<String>,
    evicted_once_by: Vec<String>,
    reported_drift: Option<u64>,
    warm_in_flight: bool,
    /// The context our own load produced: Ollama caps `num_ctx` at the training context, so
    /// a capped value from our own warm is not somebody else's reload.
    own_num_ctx: Option<u64>,
    /// A warm just succeeded and no tick has seen the runner since.
    just_warmed: bool,
}

impl KeepWarm {
    /// A policy keeping the model alive for `keep_alive`, expecting `num_ctx` when configured.
    pub fn new(
        keep_alive: KeepAlive,
        expected_num_ctx: Option<u64>,
        backoff_max: Duration,
    ) -> Self {
        KeepWarm {
            keep_alive,
            expected_num_ctx,
            enabled: true,
            backoff_max,
            was_loaded: false,
            others_before: Vec::new(),
            was_down: false,
            last_assert_wall: None,
            failures: 0,
            retry_at: None,
            contention: Vec::new(),
            evicted_once_by: Vec::new(),
            reported_drift: None,
            warm_in_flight: false,
            own_num_ctx: None,
            just_warmed: false,
        }
    }

    /// Turns automatic re-warming on or off (explicit warms still work).
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    /// The user asked (warm button, chat): forget contention and backoff.
    pub fn user_requested(&mut self) {
        self.contention.clear();
        self.evicted_once_by.clear();
        self.failures = 0;
        self.retry_at = None;
    }

    /// The caller started a warm; no new one is proposed until it finishes.
    pub fn warm_started(&mut self) {
        self.warm_in_flight = true;
    }

    /// A warm ended that no longer speaks for the model (an unload or a switch came after it
    /// started): nothing is learnt, only that it is over.
    pub fn warm_abandoned(&mut self) {
        self.warm_in_flight = false;
    }

    /// A warm or re-assert succeeded at `wall`.
    pub fn warm_succeeded(&mut self, wall: OffsetDateTime) {
        self.warm_in_flight = false;
        self.failures = 0;
        self.retry_at = None;
        self.last_assert_wall = Some(wall);
        self.was_loaded = true;
        self.just_warmed = true;
    }

    /// A warm failed at `now`; the next try waits 1 s, 2 s, 4 s … up to the configured maximum.
    pub fn warm_failed(&mut self, now: Instant) {
        self.warm_in_flight = false;
        let delay = Duration::from_secs(1u64 << self.failures.min(16)).min(self.backoff_max);
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + delay);
    }

    /// How many warms in a row have failed.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// Decides what to do after one tick's observation.
    pub fn on_tick(&mut self, obs: &WarmObservation<'_>) -> Vec<WarmAction> {
        let mut actions = Vec::new();
        let Some(ps) = obs.ps else {
            // Down is a state, not a reason to hammer: remember it and wait.
            self.was_down = true;
            return actions;
        };
        let ours = ps.iter().find(|m| (obs.is_ours)(m));
        let others: Vec<String> = ps
            .iter()
            .filter(|m| !(obs.is_ours)(m))
            .map(|m| m.name.clone())
            .collect();
        self.contention.retain(|c| others.contains(c));

        match ours {
            Some(model) => {
                self.was_down = false;
                self.was_loaded = true;
                if let Some(action) = self.check_loaded(model, obs.wall) {
                    actions.push(action);
                }
            }
            None => {
                // Whatever loads it next is not the warm that just finished.
                self.just_warmed = false;
                let reason = self.why_missing(&others);
                self.was_loaded = false;
                self.was_down = false;
                if let Some(action) = self.propose_warm(obs.now, reason) {
                    actions.push(action);
                }
            }
        }
        self.others_before = others;
        actions
    }

    fn check_loaded(&mut self, model: &PsModel, wall: OffsetDateTime) -> Option<WarmAction> {
        if std::mem::take(&mut self.just_warmed) && model.context_length.is_some() {
            self.own_num_ctx = model.context_length;
        }
        // Only a context the user pinned can drift: unpinned, Yollayah adopts whatever context
        // the model is loaded with, so another client's reload is nothing to fight or report.
        let expected = self
            .expected_num_ctx
            .map(|pinned| self.own_num_ctx.unwrap_or(pinned));
        if let (Some(expected), Some(loaded)) = (expected, model.context_length) {
            // The server caps num_ctx at the training context, so only a smaller context than
            // ours that we never saw before counts as a reload by someone else.
            if loaded != expected {
                // Said once per watchdog: clients that keep reloading it would otherwise make
                // this a stream of identical news.
                if self.reported_drift.is_none() {
                    self.reported_drift = Some(loaded);
                    return Some(WarmAction::OptionsDrifted {
                        expected_num_ctx: expected,
                        loaded_num_ctx: loaded,
                    });
                }
                // No re-assert of keep_alive either: it carries our load options, so it would
                // reload the model the other client just loaded — the very fight this policy
                // avoids (the other client's shorter keep_alive comes with its reload).
                return None;
            }
        }
        let expires_at = model.expires_at?;
        let expires_in = expires_at - wall;
        let expires_in_s = expires_in.whole_seconds();
        let shortened = match self.keep_alive_duration() {
            // Forever: anything that `ollama ps` would not print as "Forever" is an override.
            None => expires_in < FOREVER_THRESHOLD,
            Some(ours) => {
                // Finite: our last assertion promised at least `ours` from then; an earlier
                // expiry means another request set a shorter keep_alive.
                let asserted = self.last_assert_wall?;
                let promised = asserted + ours;
                expires_at + Duration::from_secs(5) < promised
            }
        };
        if shortened && !self.warm_in_flight {
            return Some(WarmAction::Reassert { expires_in_s });
        }
        None
    }

    fn why_missing(&self, others: &[String]) -> WarmReason {
        if self.was_down {
            return WarmReason::OllamaRestarted;
        }
        if !self.was_loaded {
            return WarmReason::NotLoaded;
        }
        let newcomers: Vec<String> = others
            .iter()
            .filter(|o| !self.others_before.contains(o))
            .cloned()
            .collect();
        if !newcomers.is_empty() {
            return WarmReason::Evicted { by: newcomers };
        }
        if others.is_empty() && !self.others_before.is_empty() {
            return WarmReason::AllModelsUnloaded;
        }
        match self.keep_alive_duration() {
            Some(_) => WarmReason::Expired,
            None if others.is_empty() => WarmReason::AllModelsUnloaded,
            None => WarmReason::NotLoaded,
        }
    }

    fn propose_warm(&mut self, now: Instant, reason: WarmReason) -> Option<WarmAction> {
        if let WarmReason::Evicted { by } = &reason {
            if by.iter().any(|b| self.evicted_once_by.contains(b)) {
                // Second eviction by the same model: a re-warm would only start a loop.
                let newly: Vec<String> = by
                    .iter()
                    .filter(|b| !self.contention.contains(b))
                    .cloned()
                    .collect();
                self.contention.extend(newly.iter().cloned());
                return (!newly.is_empty()).then_some(WarmAction::Contention { with: newly });
            }
            self.evicted_once_by.extend(by.iter().cloned());
        }
        if !self.enabled || self.warm_in_flight || !self.contention.is_empty() {
            return None;
        }
        if self.retry_at.is_some_and(|t| now < t) {
            return None;
        }
        Some(WarmAction::Warm { reason })
    }

    fn keep_alive_duration(&self) -> Option<Duration> {
        match &self.keep_alive {
            KeepAlive::Seconds(s) if *s < 0.0 => None,
            KeepAlive::Seconds(s) => Some(Duration::from_secs_f64(*s)),
            // Config validation already rejected strings Ollama would refuse; an unparsable one
            // here can only mean "not finite", which we treat like forever.
            KeepAlive::Duration(d) => match parse_go_duration(d) {
                Ok(ns) if ns >= 0 => {
                    Some(Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)))
                }
                _ => None,
            },
        }
    }
}

/// What to tell the user when another client keeps reloading the model with another context
/// than the one they pinned: the fix belongs on the server, since `/v1` clients cannot send
/// `num_ctx` at all (fact sheet §10).
pub fn drift_advice(model: &str, pinned: u64, loaded: u64) -> String {
    format!(
        "Another program reloaded {model} with a {loaded}-token context, but num_ctx is pinned \
         to {pinned}, so each of you reloads it in turn. Set the context on the server instead: \
         OLLAMA_CONTEXT_LENGTH={pinned} in a systemd drop-in (systemctl edit ollama), or a \
         derived model with PARAMETER num_ctx {pinned}; or remove the pin."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const WALL: OffsetDateTime = datetime!(2026-11-21 12:00 UTC);

    fn loaded(name: &str, ctx: u64, expires_in: time::Duration) -> PsModel {
        PsModel {
            name: name.into(),
            model: name.into(),
            size: 3 << 30,
            size_vram: 3 << 30,
            context_length: Some(ctx),
            expires_at: Some(WALL + expires_in),
            ..PsModel::default()
        }
    }

    fn tick(kw: &mut KeepWarm, now: Instant, ps: Option<&[PsModel]>) -> Vec<WarmAction> {
        let ours = |m: &PsModel| m.name == "llama3.2:3b";
        kw.on_tick(&WarmObservation {
            now,
            wall: WALL,
            ps,
            is_ours: &ours,
        })
    }

    fn forever() -> KeepWarm {
        KeepWarm::new(KeepAlive::FOREVER, Some(8192), Duration::from_secs(60))
    }

    #[test]
    fn warms_when_missing_and_stays_quiet_when_loaded() {
        let mut kw = forever();
        let t = Instant::now();
        assert_eq!(
            tick(&mut kw, t, Some(&[])),
            vec![WarmAction::Warm {
                reason: WarmReason::NotLoaded
            }]
        );
        kw.warm_started();
        assert!(
            tick(&mut kw, t, Some(&[])).is_empty(),
            "no second warm while one is in flight"
        );
        kw.warm_succeeded(WALL);
        let ps = [loaded("llama3.2:3b", 8192, time::Duration::days(365 * 292))];
        assert!(tick(&mut kw, t, Some(&ps)).is_empty());
    }

    #[test]
    fn shortened_keep_alive_is_reasserted() {
        let mut kw = forever();
        kw.warm_succeeded(WALL);
        let ps = [loaded("llama3.2:3b", 8192, time::Duration::minutes(1))];
        assert_eq!(
            tick(&mut kw, Instant::now(), Some(&ps)),
            vec![WarmAction::Reassert { expires_in_s: 60 }]
        );
    }

    #[test]
    fn finite_keep_alive_override_is_judged_against_our_promise() {
        let mut kw = KeepWarm::new(
            KeepAlive::Duration("30m".into()),
            None,
            Duration::from_secs(60),
        );
        kw.warm_succeeded(WALL - time::Duration::minutes(2));
        let fine = [loaded("llama3.2:3b", 8192, time::Duration::minutes(28))];
        assert!(tick(&mut kw, Instant::now(), Some(&fine)).is_empty());
        let cut = [loaded("llama3.2:3b", 8192, time::Duration::minutes(1))];
        assert!(matches!(
            tick(&mut kw, Instant::now(), Some(&cut))[..],
            [WarmAction::Reassert { .. }]
        ));
    }

    #[test]
    fn eviction_gets_one_rewarm_then_contention_not_a_loop() {
        let mut kw = forever();
        let t = Instant::now();
        let ours = loaded("llama3.2:3b", 8192, time::Duration::days(365 * 292));
        let other = loaded("qwen2.5:7b", 4096, time::Duration::minutes(5));
        tick(&mut kw, t, Some(std::slice::from_ref(&ours)));
        let evicted = tick(&mut kw, t, Some(std::slice::from_ref(&other)));
        assert_eq!(
            evicted,
            vec![WarmAction::Warm {
                reason: WarmReason::Evicted {
                    by: vec!["qwen2.5:7b".into()]
                }
            }]
        );
        kw.warm_started();
        kw.warm_succeeded(WALL);
        tick(&mut kw, t, Some(std::slice::from_ref(&ours)));
        // The other client reloads its model and evicts ours again.
        let again = tick(&mut kw, t, Some(std::slice::from_ref(&other)));
        assert_eq!(
            again,
            vec![WarmAction::Contention {
                with: vec!["qwen2.5:7b".into()]
            }]
        );
        for _ in 0..5 {
            assert!(tick(&mut kw, t, Some(std::slice::from_ref(&other))).is_empty());
        }
        // Once the other model is gone, keeping warm resumes.
        assert!(matches!(
            tick(&mut kw, t, Some(&[]))[..],
            [WarmAction::Warm { .. }]
        ));
    }

    #[test]
    fn restart_is_recognised_and_failures_back_off() {
        let mut kw = forever();
        let t = Instant::now();
        let ours = loaded("llama3.2:3b", 8192, time::Duration::days(365 * 292));
        tick(&mut kw, t, Some(std::slice::from_ref(&ours)));
        assert!(tick(&mut kw, t, None).is_empty(), "down: nothing to do");
        assert_eq!(
            tick(&mut kw, t, Some(&[])),
            vec![WarmAction::Warm {
                reason: WarmReason::OllamaRestarted
            }]
        );
        kw.warm_started();
        kw.warm_failed(t);
        assert!(tick(&mut kw, t + Duration::from_millis(500), Some(&[])).is_empty());
        assert_eq!(
            tick(&mut kw, t + Duration::from_millis(1100), Some(&[])).len(),
            1
        );
        kw.warm_started();
        kw.warm_failed(t + Duration::from_millis(1100));
        assert!(tick(&mut kw, t + Duration::from_millis(2500), Some(&[])).is_empty());
        assert_eq!(kw.consecutive_failures(), 2);
    }

    #[test]
    fn all_models_vanishing_is_runtime_oom_like() {
        let mut kw = forever();
        let t = Instant::now();
        let ours = loaded("llama3.2:3b", 8192, time::Duration::days(365 * 292));
        let other = loaded("nomic-embed-text", 2048, time::Duration::minutes(5));
        tick(&mut kw, t, Some(&[ours, other]));
        assert_eq!(
            tick(&mut kw, t, Some(&[])),
            vec![WarmAction::Warm {
                reason: WarmReason::AllModelsUnloaded
            }]
        );
    }

    #[test]
    fn drift_is_reported_once() {
        let mut kw = forever();
        let t = Instant::now();
        let reloaded = [loaded("llama3.2:3b", 4096, time::Duration::days(365 * 292))];
        assert_eq!(
            tick(&mut kw, t, Some(&reloaded)),
            vec![WarmAction::OptionsDrifted {
                expected_num_ctx: 8192,
                loaded_num_ctx: 4096
            }]
        );
        assert!(tick(&mut kw, t, Some(&reloaded)).is_empty());
    }

    #[test]
    fn drift_is_said_once_even_when_clients_keep_reloading() {
        let mut kw = forever();
        let t = Instant::now();
        let theirs = [loaded("llama3.2:3b", 4096, time::Duration::days(365 * 292))];
        let ours = [loaded("llama3.2:3b", 8192, time::Duration::days(365 * 292))];
        let mut said = 0;
        for _ in 0..4 {
            for ps in [&theirs, &ours] {
                said += tick(&mut kw, t, Some(ps))
                    .iter()
                    .filter(|a| matches!(a, WarmAction::OptionsDrifted { .. }))
                    .count();
            }
        }
        assert_eq!(said, 1);
        assert!(drift_advice("m", 8192, 4096).contains("OLLAMA_CONTEXT_LENGTH=8192"));
    }

    #[test]
    fn an_unpinned_context_never_drifts() {
        let mut kw = KeepWarm::new(KeepAlive::FOREVER, None, Duration::from_secs(60));
        let t = Instant::now();
        kw.warm_started();
        kw.warm_succeeded(WALL);
        let ours = [loaded("llama3.2:3b", 4096, time::Duration::days(365 * 292))];
        assert!(tick(&mut kw, t, Some(&ours)).is_empty());
        let theirs = [loaded(
            "llama3.2:3b",
            32768,
            time::Duration::days(365 * 292),
        )];
        assert!(tick(&mut kw, t, Some(&theirs)).is_empty());
    }

    #[test]
    fn drifted_runner_with_a_short_keep_alive_is_not_reasserted() {
        // `ollama run` reloads our model with its default context and the default 5m
        // keep_alive. Re-asserting would send our num_ctx and reload it back: a fight.
        let mut kw = forever();
        let t = Instant::now();
        kw.warm_succeeded(WALL);
        let ours = [loaded("llama3.2:3b", 8192, time::Duration::days(365 * 292))];
        assert!(tick(&mut kw, t, Some(&ours)).is_empty());
        let theirs = [loaded("llama3.2:3b", 4096, time::Duration::minutes(5))];
        assert!(matches!(
            tick(&mut kw, t, Some(&theirs))[..],
            [WarmAction::OptionsDrifted { .. }]
        ));
        for _ in 0..5 {
            assert!(tick(&mut kw, t, Some(&theirs)).is_empty());
        }
        // Back on our options (a chat reloaded it): a short keep_alive is ours to fix again.
        let ours = [loaded("llama3.2:3b", 8192, time::Duration::minutes(5))];
        assert!(matches!(
            tick(&mut kw, t, Some(&ours))[..],
            [WarmAction::Reassert { .. }]
        ));
    }

    #[test]
    fn context_capped_by_the_server_is_not_drift() {
        // We ask for 8192 on a model trained for 4096: Ollama loads 4096. That is our own
        // load, so nothing is reported and keep_alive is still defended.
        let mut kw = forever();
        let t = Instant::now();
        kw.warm_started();
        kw.warm_succeeded(WALL);
        let capped = [loaded("llama3.2:3b", 4096, time::Duration::days(365 * 292))];
        assert!(tick(&mut kw, t, Some(&capped)).is_empty());
        let shortened = [loaded("llama3.2:3b", 4096, time::Duration::minutes(1))];
        assert!(matches!(
            tick(&mut kw, t, Some(&shortened))[..],
            [WarmAction::Reassert { .. }]
        ));
        // A reload by somebody else with yet another context is still reported.
        let theirs = [loaded("llama3.2:3b", 2048, time::Duration::minutes(5))];
        assert_eq!(
            tick(&mut kw, t, Some(&theirs)),
            vec![WarmAction::OptionsDrifted {
                expected_num_ctx: 4096,
                loaded_num_ctx: 2048
            }]
        );
    }
}
