//! The watchdog: one tokio task that observes, classifies, keeps the model warm and publishes.
//!
//! Each tick (default every 2 s, and at once when kicked — the chat kicks it as soon as a
//! reply starts streaming, so a load caused by the chat is classified before its first token
//! is shown) reads `/api/ps`, the GPU and the runner processes, runs [`crate::diagnose`],
//! feeds the keep-warm policy ([`crate::warm`]) and the alert policy ([`crate::alerts`]), and
//! publishes typed [`Event`]s on a broadcast channel plus the latest [`Snapshot`] on a watch
//! channel. Ollama being down is a state (one `OllamaDown` event), never an error storm.
//!
//! `/api/show` and `/api/tags` are read only when a model is seen for the first time (or its
//! digest changes), so a steady-state tick costs one local HTTP request and one GPU probe.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::alerts::{self, AlertPolicy, AlertSettings, Seen};
use crate::capture::CaptureBundle;
use crate::diagnose::{self, LoadHistory, ModelDiagnosis, Observation};
use crate::error::{Error, Result};
use crate::events::{Event, GpuSummary, OllamaState, Snapshot, Verdict, WarmEvent};
use crate::fit::{self, FitMismatch, FitPrediction, ModelFit};
use crate::gpu::blob_path_from_modelfile;
use crate::machine::{Machine, MachineView};
use crate::ollama::client::OllamaClient;
use crate::ollama::env::OllamaEnv;
use crate::ollama::types::{Options, PsModel, ShowResponse, TagModel, is_embedding_only};
use crate::placement::Placement;
use crate::profile::ModelProfile;
use crate::scope::Scope;
use crate::warm::{KeepWarm, WarmAction, WarmObservation, WarmReason};

/// How often and how loudly the watchdog works.
#[derive(Debug, Clone)]
pub struct WatchdogSettings {
    pub tick: Duration,
    /// Re-warm automatically after eviction, expiry, OOM or restart.
    pub rewarm: bool,
    pub backoff_max: Duration,
    /// Raise alerts at all (false: state only).
    pub alerts_enabled: bool,
    /// The alert rule and its cooldown.
    pub alert: AlertSettings,
    /// Warm the model as soon as the watchdog starts.
    pub warm_on_start: bool,
    /// Where GPU facts come from; `None` resolves it from the Ollama URL at start-up
    /// ([`crate::scope::resolve`]). An agent sets [`Scope::Agent`] here.
    pub scope: Option<Scope>,
}

impl Default for WatchdogSettings {
    fn default() -> Self {
        WatchdogSettings {
            tick: Duration::from_secs(2),
            rewarm: true,
            backoff_max: Duration::from_secs(60),
            alerts_enabled: true,
            alert: AlertSettings::default(),
            warm_on_start: true,
            scope: None,
        }
    }
}

impl WatchdogSettings {
    /// Settings from the `[watchdog]` and `[alerts]` sections of the config.
    pub fn from_config(config: &crate::config::Config) -> Self {
        WatchdogSettings {
            tick: config.watchdog.tick(),
            rewarm: config.watchdog.rewarm,
            backoff_max: config.watchdog.rewarm_backoff_max(),
            alerts_enabled: config.alerts.enabled,
            alert: AlertSettings {
                cooldown: config.alerts.cooldown(),
                muted: false,
                on_partial: config.alerts.on_partial,
                min_cpu_pct: config.alerts.min_cpu_pct,
            },
            warm_on_start: config.watchdog.rewarm,
            scope: None,
        }
    }
}

/// Result of an explicit warm.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WarmOutcome {
    pub model: String,
    pub load_ms: u64,
    /// The effective placement right after loading, when the follow-up tick could tell.
    pub placement: Option<Placement>,
}

enum Command {
    Kick(Option<oneshot::Sender<()>>),
    UserAsked,
    Warm(oneshot::Sender<Result<WarmOutcome>>),
    Unload(oneshot::Sender<Result<()>>),
    Reload(oneshot::Sender<Result<WarmOutcome>>),
    SetMuted(bool),
    Capture(oneshot::Sender<CaptureBundle>),
    /// One of our chats reported `load_duration` (ms) for the profile's model.
    OwnLoad(u64),
    /// Watch another model from now on.
    Watch(ModelProfile, oneshot::Sender<()>),
    /// Fit predictions made before loading, to compare with the placement once loaded.
    Expect(Vec<ModelFit>),
}

/// How long a picker's prediction is compared with a later load (a guess: long enough to pick
/// a model and send, short enough that the machine has not changed much; `docs/diagnosis.md`).
pub const PREDICTION_LIFETIME: Duration = Duration::from_secs(600);

/// How long [`WatchdogHandle::reload`] waits for Ollama to drop the model after the unload
/// before it loads anyway (Ollama itself waits up to 5 s for VRAM to recover, fact sheet §5).
pub const RELOAD_UNLOAD_WAIT: Duration = Duration::from_secs(10);

/// The handle to a running watchdog. Cheap to clone; the task stops when [`shutdown`] is
/// called or the cancellation token given to [`spawn`] is cancelled.
///
/// [`shutdown`]: WatchdogHandle::shutdown
#[derive(Clone)]
pub struct WatchdogHandle {
    events: broadcast::Sender<Event>,
    latest: watch::Receiver<Arc<Snapshot>>,
    commands: mpsc::Sender<Command>,
    cancel: CancellationToken,
    /// The profile in force: [`WatchdogHandle::watch_model`] replaces it at runtime.
    profile: watch::Receiver<Arc<ModelProfile>>,
}

impl std::fmt::Debug for WatchdogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchdogHandle")
            .field("model", &self.profile.borrow().model)
            .finish()
    }
}

impl WatchdogHandle {
    /// Events from now on. A slow subscriber that falls behind loses the oldest events
    /// (`RecvError::Lagged`) but can always read [`latest`](Self::latest).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The latest snapshot (the initial one before the first tick).
    pub fn latest(&self) -> Arc<Snapshot> {
        self.latest.borrow().clone()
    }

    /// A receiver that wakes on every new snapshot.
    pub fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.latest.clone()
    }

    /// The profile the watchdog keeps warm now.
    pub fn profile(&self) -> Arc<ModelProfile> {
        self.profile.borrow().clone()
    }

    /// Watches `model` from now on, with the same keep_alive and load options (the profile's
    /// options are the user's, not the model's: a switch never changes them). The old model is
    /// left as it is (Ollama evicts it when memory is needed, fact sheet §5); the new one is
    /// warmed when re-warming is on. Returns once the switch is in force (the next snapshot
    /// names the new model). Not persisted: the config decides at the next start.
    pub async fn watch_model(&self, model: &str) -> Result<()> {
        let next = self.profile().with_model(model);
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Watch(next, tx))
            .await
            .map_err(|_| Error::Cancelled)?;
        rx.await.map_err(|_| Error::Cancelled)
    }

    /// Hands over fit predictions made before loading (the picker's). When one of these
    /// models next appears in `/api/ps`, its placement is compared with the prediction
    /// ([`crate::fit::check`]); a disagreement becomes a `FIT_MISPREDICTED` finding on that
    /// model's diagnosis and an [`Event::FitMispredicted`]. Predictions for models already
    /// loaded are ignored (there is nothing left to predict). Never waits.
    pub fn expect_fits(&self, fits: Vec<ModelFit>) {
        let _ = self.commands.try_send(Command::Expect(fits));
    }

    /// Ticks now, without waiting for it.
    pub fn kick(&self) {
        // A full queue means a tick is already pending, which is all a kick asks for.
        let _ = self.commands.try_send(Command::Kick(None));
    }

    /// Ticks now and waits (at most `limit`) until that tick has been published.
    pub async fn kick_and_wait(&self, limit: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Kick(Some(tx))).await.is_ok() {
            let _ = tokio::time::timeout(limit, rx).await;
        }
    }

    /// The user asked for the model (a chat reached it): forget contention and backoff and
    /// end a pause left by [`unload`](Self::unload), as an explicit warm would. Queued
    /// ahead of any later kick, so the tick it triggers already sees the new state.
    pub async fn user_asked(&self) {
        let _ = self.commands.send(Command::UserAsked).await;
    }

    /// Loads the model now (keep_alive and load options from the profile) and waits.
    pub async fn warm(&self) -> Result<WarmOutcome> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Warm(tx))
            .await
            .map_err(|_| Error::Cancelled)?;
        rx.await.map_err(|_| Error::Cancelled)?
    }

    /// Unloads the model now and pauses automatic re-warming until the next warm or chat.
    pub async fn unload(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Unload(tx))
            .await
            .map_err(|_| Error::Cancelled)?;
        rx.await.map_err(|_| Error::Cancelled)?
    }

    /// Records the `load_duration` one of our requests reported for the profile's model, so
    /// reload thrash caused by other clients shows up in the diagnosis. Never waits.
    pub fn record_load(&self, load_ms: u64) {
        let _ = self.commands.try_send(Command::OwnLoad(load_ms));
    }

    /// Unloads the model, then loads it again, and waits for the load. This is the fix for a
    /// model that Ollama placed partly or wholly on the CPU while memory was short: Ollama keeps
    /// a loaded runner where it is, so a plain [`warm`](Self::warm) changes nothing.
    ///
    /// Ollama answers the unload at once and unloads afterwards (fact sheet §5); a load sent
    /// before the runner is gone would land on the old runner. So this waits, tick by tick, until
    /// `/api/ps` no longer lists the model (at most [`RELOAD_UNLOAD_WAIT`]) before loading.
    pub async fn reload(&self) -> Result<WarmOutcome> {
        self.unload().await?;
        let deadline = Instant::now() + RELOAD_UNLOAD_WAIT;
        while self.latest().target().is_some_and(|d| d.loaded) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.kick_and_wait(Duration::from_millis(500)).await;
        }
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Reload(tx))
            .await
            .map_err(|_| Error::Cancelled)?;
        rx.await.map_err(|_| Error::Cancelled)?
    }

    /// Carries out a fix offered by an alert or the snapshot. `Mute` mutes.
    pub async fn apply(&self, fix: alerts::FixAction) -> Result<()> {
        match fix {
            alerts::FixAction::ReloadOnGpu => self.reload().await.map(|_| ()),
            alerts::FixAction::Warm => self.warm().await.map(|_| ()),
            alerts::FixAction::Mute => {
                self.set_muted(true).await;
                Ok(())
            }
        }
    }

    /// Mutes or unmutes alerts (state is still published).
    pub async fn set_muted(&self, muted: bool) {
        let _ = self.commands.send(Command::SetMuted(muted)).await;
    }

    /// Everything the last tick read, as a capture bundle.
    pub async fn capture(&self) -> Result<CaptureBundle> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Capture(tx))
            .await
            .map_err(|_| Error::Cancelled)?;
        rx.await.map_err(|_| Error::Cancelled)
    }

    /// Stops the task.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

/// Starts the watchdog on the current tokio runtime.
pub fn spawn(
    client: OllamaClient,
    machine: Machine,
    profile: ModelProfile,
    env: OllamaEnv,
    settings: WatchdogSettings,
    cancel: CancellationToken,
) -> WatchdogHandle {
    let profile = Arc::new(profile);
    let (profile_tx, profile_rx) = watch::channel(profile.clone());
    let (events, _) = broadcast::channel(256);
    let initial = Arc::new(Snapshot::initial(client.base_url(), &profile.model));
    let (latest_tx, latest) = watch::channel(initial);
    let (commands, rx) = mpsc::channel(16);
    let (warm_done_tx, warm_done_rx) = mpsc::channel(4);
    let keep_warm = KeepWarm::new(
        profile.keep_alive.clone(),
        profile.num_ctx(),
        settings.backoff_max,
    );
    let state = State {
        alerts: AlertPolicy::new(settings.alert),
        settings,
        client,
        machine,
        profile: profile.clone(),
        profile_tx,
        expected: HashMap::new(),
        mispredicted: HashMap::new(),
        env,
        events: events.clone(),
        latest: latest_tx,
        keep_warm,
        up: None,
        version: None,
        show: BTreeMap::new(),
        show_digest: HashMap::new(),
        tags: Vec::new(),
        last: None,
        placements: HashMap::new(),
        warming: None,
        warm_epoch: 0,
        warm_waiters: Vec::new(),
        warm_done_tx,
        paused_by_unload: false,
        reloading: false,
        loaded_ctx: None,
        rescan: Rescan::default(),
        loads: LoadHistory::new(),
        scope: Scope::Local,
    };
    tokio::spawn(run(state, rx, warm_done_rx, cancel.clone()));
    WatchdogHandle {
        events,
        latest,
        commands,
        cancel,
        profile: profile_rx,
    }
}

/// A warm waiter and what it will hear.
type WarmReply = (oneshot::Sender<Result<WarmOutcome>>, Result<WarmOutcome>);

struct WarmDone {
    result: Result<u64>,
    reassert: bool,
    /// The model this warm loaded (the profile's when it started).
    model: String,
    /// [`State::warm_epoch`] when it started.
    epoch: u64,
}

struct LastTick {
    ps: Vec<PsModel>,
    view: MachineView,
    at: OffsetDateTime,
}

struct State {
    settings: WatchdogSettings,
    client: OllamaClient,
    machine: Machine,
    profile: Arc<ModelProfile>,
    /// Tells the handles which profile is in force.
    profile_tx: watch::Sender<Arc<ModelProfile>>,
    /// Predictions waiting for their model to load ([`WatchdogHandle::expect_fits`]), with
    /// when they were made.
    expected: HashMap<String, (ModelFit, Instant)>,
    /// Loaded models whose placement disagreed with the prediction, as long as they stay
    /// loaded.
    mispredicted: HashMap<String, FitMismatch>,
    env: OllamaEnv,
    events: broadcast::Sender<Event>,
    latest: watch::Sender<Arc<Snapshot>>,
    keep_warm: KeepWarm,
    alerts: AlertPolicy,
    /// `None` before the first answer.
    up: Option<bool>,
    version: Option<String>,
    show: BTreeMap<String, ShowResponse>,
    show_digest: HashMap<String, String>,
    tags: Vec<TagModel>,
    last: Option<LastTick>,
    placements: HashMap<String, Placement>,
    /// Reason of the warm in flight.
    warming: Option<WarmReason>,
    /// Bumped by anything that makes a warm in flight stale: an unload sent after it started
    /// (Ollama may carry it out after the load answers, fact sheet §5) or a switch of the
    /// watched model. A stale warm answers only the waiters who asked before that, and its
    /// success teaches keep-warm nothing.
    warm_epoch: u64,
    /// Who waits for a warm, with [`warm_epoch`](Self::warm_epoch) when they asked.
    warm_waiters: Vec<(u64, oneshot::Sender<Result<WarmOutcome>>)>,
    warm_done_tx: mpsc::Sender<WarmDone>,
    paused_by_unload: bool,
    /// A reload (unload, then warm) is in flight: its warm takes the server's default context.
    reloading: bool,
    /// The context our model is loaded with, as of the latest `/api/ps`.
    loaded_ctx: Option<u64>,
    rescan: Rescan,
    /// `/api/ps` history for reload-thrash and keep_alive findings.
    loads: LoadHistory,
    /// Resolved once at start-up (and again when Ollama comes back after an outage).
    scope: Scope,
}

/// When to scan the whole process table for runners. A full scan reads every process of the
/// machine (hundreds of files), which would dominate an idle tick; new runners only appear
/// when the set of loaded models changes, so that is when we look.
#[derive(Default)]
struct Rescan {
    last: Option<Instant>,
    /// `(name, size, size_vram, context_length)` of the loaded models at the last scan: a load,
    /// reload or unload changes it; a keep_alive refresh (`expires_at`) does not.
    fingerprint: Vec<(String, u64, u64, Option<u64>)>,
    /// A loaded model had no visible runner at the last tick (e.g. Ollama in a container).
    unmatched: bool,
    /// When a loaded model last went from matched (or new) to unmatched: a runner that vanished
    /// is usually replaced within seconds, so the table is scanned every tick for [`Self::HUNT`].
    unmatched_since: Option<Instant>,
}

impl Rescan {
    /// Longest time between full scans, however quiet things are.
    const MAX_AGE: Duration = Duration::from_secs(300);
    /// Retry interval while a loaded model has no visible runner.
    const UNMATCHED_RETRY: Duration = Duration::from_secs(30);
    /// How long after a runner went missing every tick scans: long enough for Ollama to start
    /// the replacement (a load takes seconds), short enough that a server whose runners are
    /// never visible (a container) costs a full scan per tick only briefly.
    const HUNT: Duration = Duration::from_secs(20);

    fn fingerprint(ps: &[PsModel]) -> Vec<(String, u64, u64, Option<u64>)> {
        ps.iter()
            .map(|m| (m.name.clone(), m.size, m.size_vram, m.context_length))
            .collect()
    }

    fn needed(&self, now: Instant, ps: &[PsModel]) -> bool {
        let Some(last) = self.last else { return true };
        let age = now.saturating_duration_since(last);
        age >= Self::MAX_AGE
            || (self.unmatched && age >= Self::UNMATCHED_RETRY)
            || self
                .unmatched_since
                .is_some_and(|t| now.saturating_duration_since(t) < Self::HUNT)
            || self.fingerprint.len() != ps.len()
            || self.fingerprint.iter().zip(ps).any(|(f, m)| {
                f.0 != m.name || f.1 != m.size || f.2 != m.size_vram || f.3 != m.context_length
            })
    }

    fn done(&mut self, now: Instant, ps: &[PsModel]) {
        self.last = Some(now);
        self.fingerprint = Self::fingerprint(ps);
    }
}

async fn run(
    mut state: State,
    mut commands: mpsc::Receiver<Command>,
    mut warm_done: mpsc::Receiver<WarmDone>,
    cancel: CancellationToken,
) {
    state.resolve_scope().await;
    let mut interval = tokio::time::interval(state.settings.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if state.settings.warm_on_start {
        state.start_warm(WarmReason::Requested, false);
    }
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = interval.tick() => state.tick().await,
            Some(done) = warm_done.recv() => {
                let (replies, unload_again) = state.finish_warm(done);
                if unload_again {
                    // The user unloaded while this load ran, and the server may have seen
                    // the unload first: make the later request win whatever the order.
                    if let Err(e) = state.client.unload(&state.profile.model).await {
                        tracing::warn!("unload after an abandoned warm: {e}");
                    }
                }
                // Waiters hear after the tick, so `latest()` already shows where it landed.
                state.tick().await;
                state.answer_warm(replies);
            }
            Some(cmd) = commands.recv() => match cmd {
                Command::Kick(done) => {
                    state.tick().await;
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                Command::Warm(reply) => {
                    state.keep_warm.user_requested();
                    state.paused_by_unload = false;
                    state.warm_waiters.push((state.warm_epoch, reply));
                    if state.warming.is_none() {
                        state.start_warm(WarmReason::Requested, false);
                    }
                }
                Command::Unload(reply) => {
                    state.warm_epoch += 1;
                    let result = state.client.unload(&state.profile.model).await;
                    if result.is_ok() {
                        state.paused_by_unload = true;
                        state.publish(Event::Warm(WarmEvent::Unloaded {
                            model: state.profile.model.clone(),
                        }));
                    }
                    let _ = reply.send(result);
                    state.tick().await;
                }
                Command::Reload(reply) => {
                    // The unload is done (see `WatchdogHandle::reload`): a fresh load, which
                    // takes the server's default context unless the user pinned one.
                    state.keep_warm.user_requested();
                    state.paused_by_unload = false;
                    state.reloading = true;
                    state.warm_waiters.push((state.warm_epoch, reply));
                    if state.warming.is_none() {
                        state.start_warm(WarmReason::Requested, false);
                    }
                }
                Command::UserAsked => {
                    state.keep_warm.user_requested();
                    state.paused_by_unload = false;
                }
                Command::SetMuted(muted) => {
                    state.alerts.set_muted(muted);
                    state.republish_muted(muted);
                }
                Command::Capture(reply) => {
                    let _ = reply.send(state.capture());
                }
                Command::OwnLoad(load_ms) => state.record_own_load(load_ms),
                Command::Watch(profile, done) => {
                    state.watch(profile);
                    state.tick().await;
                    let _ = done.send(());
                }
                Command::Expect(fits) => state.expect(fits),
            },
        }
    }
}

impl State {
    /// Switches the watched model: everything learnt about the old one's keep-warm state
    /// starts over, and the new one is warmed (as at start) when re-warming is on.
    fn watch(&mut self, profile: ModelProfile) {
        if profile == *self.profile {
            return;
        }
        tracing::info!(from = %self.profile.model, to = %profile.model, "watching another model");
        let profile = Arc::new(profile);
        self.keep_warm = KeepWarm::new(
            profile.keep_alive.clone(),
            profile.num_ctx(),
            self.settings.backoff_max,
        );
        self.profile = profile.clone();
        self.profile_tx.send_replace(profile);
        self.warm_epoch += 1;
        self.paused_by_unload = false;
        self.reloading = false;
        self.loaded_ctx = None;
        if self.settings.rewarm {
            self.start_warm(WarmReason::Requested, false);
        }
    }

    fn expect(&mut self, fits: Vec<ModelFit>) {
        let loaded = |m: &str| {
            self.last
                .as_ref()
                .is_some_and(|l| l.ps.iter().any(|p| p.name == m || p.model == m))
        };
        for fit in fits {
            let waiting = !matches!(
                fit.prediction,
                FitPrediction::Loaded { .. } | FitPrediction::Unknown { .. }
            );
            if waiting && !loaded(&fit.model) {
                self.expected
                    .insert(fit.model.clone(), (fit, Instant::now()));
            }
        }
    }

    /// Compares waiting predictions with the placement of models that just loaded, and
    /// adds the standing disagreements to their diagnoses as findings.
    fn settle_fits(&mut self, ps: &[PsModel], diagnoses: &mut [ModelDiagnosis]) {
        self.mispredicted
            .retain(|m, _| ps.iter().any(|p| &p.name == m || &p.model == m));
        // A prediction describes the machine as it was; an old one would blame the sums for
        // what changed since.
        self.expected
            .retain(|_, (_, at)| at.elapsed() < PREDICTION_LIFETIME);
        for p in ps {
            let Some((fit, _)) = self
                .expected
                .remove(&p.name)
                .or_else(|| self.expected.remove(&p.model))
            else {
                continue;
            };
            if let Some(mismatch) = fit::check(&fit, p) {
                self.publish(Event::FitMispredicted(mismatch.clone()));
                self.mispredicted.insert(p.name.clone(), mismatch);
            }
        }
        for d in diagnoses.iter_mut() {
            if let Some(m) = self.mispredicted.get(&d.model) {
                d.findings
                    .push(fit::mismatch_finding(m, d.findings.len() as u32 + 1));
            }
        }
    }

    async fn resolve_scope(&mut self) {
        self.scope = match &self.settings.scope {
            Some(s) => s.clone(),
            None => crate::scope::resolve(self.client.base_url()).await,
        };
    }

    fn publish(&self, event: Event) {
        // No subscriber is fine: the watch channel still holds the latest snapshot.
        let _ = self.events.send(event);
    }

    fn is_ours(&self, m: &PsModel) -> bool {
        if m.name == self.profile.model || m.model == self.profile.model {
            return true;
        }
        // A model made with `ollama create FROM ours` shares our weights blob and therefore our
        // runner (fact sheet §7): ps shows whichever name loaded it.
        let blob = |name: &str| {
            self.show
                .get(name)
                .and_then(|s| blob_path_from_modelfile(&s.modelfile))
        };
        matches!((blob(&m.name), blob(&self.profile.model)), (Some(a), Some(b)) if a == b)
    }

    fn start_warm(&mut self, reason: WarmReason, reassert: bool) {
        if self.warming.is_some() {
            return;
        }
        self.keep_warm.warm_started();
        self.warming = Some(reason.clone());
        if !reassert {
            self.publish(Event::Warm(WarmEvent::Started {
                model: self.profile.model.clone(),
                reason: reason.clone(),
            }));
        }
        let client = self.client.clone();
        let profile = self.profile.clone();
        let tx = self.warm_done_tx.clone();
        let epoch = self.warm_epoch;
        let options = self.warm_options();
        let embedding = self
            .show
            .get(&profile.model)
            .map(|s| is_embedding_only(&s.capabilities));
        tokio::spawn(async move {
            let started = Instant::now();
            // Before the first tick nothing has read /api/show yet; ask, since an embedding
            // model answers generate with 400.
            let embedding = match embedding {
                Some(e) => e,
                None => client
                    .show(&profile.model)
                    .await
                    .is_ok_and(|s| is_embedding_only(&s.capabilities)),
            };
            let result = if embedding {
                client
                    .load_embedding(&profile.model, Some(profile.keep_alive.clone()))
                    .await
            } else {
                client
                    .load(
                        &profile.model,
                        Some(profile.keep_alive.clone()),
                        Some(&options),
                    )
                    .await
                    .map(|_| ())
            }
            .map(|()| started.elapsed().as_millis() as u64);
            let _ = tx
                .send(WarmDone {
                    result,
                    reassert,
                    model: profile.model.clone(),
                    epoch,
                })
                .await;
        });
    }

    fn record_own_load(&mut self, load_ms: u64) {
        let model = &self.profile.model;
        let key = self
            .show
            .get(model)
            .and_then(|s| blob_path_from_modelfile(&s.modelfile))
            .unwrap_or(model);
        self.loads
            .record_own_load(OffsetDateTime::now_utc(), key, model, load_ms);
    }

    /// The load options of a warm: the profile's, and when the user pinned no `num_ctx`, the
    /// context our model is loaded with right now, so that a warm or a re-assert of keep_alive
    /// never reloads a model that another client loaded with its own context. A fresh load
    /// (nothing loaded, or a reload the user asked for) sends none and gets the server's
    /// default.
    fn warm_options(&self) -> Options {
        let mut options = self.profile.load_options().clone();
        if self.profile.num_ctx().is_none() && !self.reloading {
            if let Some(ctx) = self.loaded_ctx {
                options.insert("num_ctx".into(), ctx.into());
            }
        }
        options
    }

    /// Books a finished warm and takes the waiters it answers, each with its reply (the
    /// placement is filled in by [`answer_warm`](Self::answer_warm) after the next tick).
    /// Also says whether the model must be unloaded again: an unload came while this warm
    /// ran and nothing asked for the model since.
    fn finish_warm(&mut self, done: WarmDone) -> (Vec<WarmReply>, bool) {
        self.warming = None;
        let stale = done.epoch != self.warm_epoch;
        // Who asked before an unload or a switch hears this warm's result (the later unload
        // wins); who asked after needs a load of its own.
        let (answered, later): (Vec<_>, Vec<_>) = self
            .warm_waiters
            .drain(..)
            .partition(|(epoch, _)| *epoch <= done.epoch);
        self.warm_waiters = later;
        let model = done.model.clone();
        if stale {
            // The keep-warm state of the watched model learns nothing from it, but whoever
            // showed "warming" must hear that it ended.
            self.keep_warm.warm_abandoned();
            self.reloading = self.reloading && !self.warm_waiters.is_empty();
        } else {
            self.reloading = false;
            match &done.result {
                Ok(load_ms) => {
                    self.record_own_load(*load_ms);
                    self.keep_warm.warm_succeeded(OffsetDateTime::now_utc());
                }
                Err(_) => self.keep_warm.warm_failed(Instant::now()),
            }
        }
        match &done.result {
            Ok(load_ms) if !done.reassert => self.publish(Event::Warm(WarmEvent::Finished {
                model: model.clone(),
                load_ms: *load_ms,
            })),
            Ok(_) => {}
            Err(e) => self.publish(Event::Warm(WarmEvent::Failed {
                model: model.clone(),
                error: e.to_string(),
                retry: self.settings.rewarm && !stale,
            })),
        }
        let switched = model != self.profile.model;
        let unload_again =
            stale && !switched && self.paused_by_unload && self.warm_waiters.is_empty();
        if !self.warm_waiters.is_empty()
            || (stale && switched && self.settings.rewarm && !self.paused_by_unload)
        {
            self.start_warm(WarmReason::Requested, false);
        }
        let reply = || match &done.result {
            Ok(load_ms) => Ok(WarmOutcome {
                model: model.clone(),
                load_ms: *load_ms,
                placement: None,
            }),
            Err(e) => Err(Error::WarmFailed {
                model: model.clone(),
                reason: e.to_string(),
            }),
        };
        let replies = answered
            .into_iter()
            .map(|(_, waiter)| (waiter, reply()))
            .collect();
        (replies, unload_again)
    }

    /// Answers warm waiters, with the placement the tick after the load saw.
    fn answer_warm(&self, replies: Vec<WarmReply>) {
        let latest = self.latest.borrow().clone();
        for (waiter, mut reply) in replies {
            if let Ok(outcome) = &mut reply {
                outcome.placement = latest
                    .diagnoses
                    .iter()
                    .find(|d| d.model == outcome.model && d.loaded)
                    .map(|d| d.placement.placement);
            }
            let _ = waiter.send(reply);
        }
    }

    async fn refresh_metadata(&mut self, ps: &[PsModel]) {
        let mut wanted: Vec<(String, String)> = ps
            .iter()
            .map(|m| (m.name.clone(), m.digest.clone()))
            .collect();
        wanted.push((self.profile.model.clone(), String::new()));
        let mut new_model = false;
        for (name, digest) in wanted {
            let known = self.show_digest.get(&name);
            let stale = match known {
                None => true,
                Some(d) => !digest.is_empty() && d != &digest,
            };
            if !stale {
                continue;
            }
            new_model = true;
            match self.client.show(&name).await {
                Ok(mut show) => {
                    // Nothing here reads the chat template or license; keep ticks lean.
                    show.template.clear();
                    show.license.clear();
                    self.show.insert(name.clone(), show);
                    self.show_digest.insert(name, digest);
                }
                Err(e) => {
                    tracing::debug!("show {name}: {e}");
                    // Remember the failure for this digest so a missing model is not asked
                    // about on every tick.
                    self.show_digest.insert(name, digest);
                }
            }
        }
        if new_model {
            if let Ok(tags) = self.client.tags().await {
                self.tags = tags.models;
            }
        }
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        let wall = OffsetDateTime::now_utc();
        let ps = self.client.ps().await;
        let ps = match ps {
            Ok(ps) => ps.models,
            Err(e) => {
                self.went_down(e);
                return;
            }
        };
        if self.up != Some(true) {
            self.came_up().await;
        }
        self.refresh_metadata(&ps).await;
        let rescan = self.rescan.needed(now, &ps);
        let view = if self.scope.has_gpu_facts() {
            self.machine.observe(rescan).await
        } else {
            // Never even read this machine's GPU for a server elsewhere.
            MachineView::none("Ollama runs on another machine (remote scope)")
        };
        if view.full_scan {
            self.rescan.done(now, &ps);
        }
        let unmatched = ps.iter().any(|m| {
            let blob = self
                .show
                .get(&m.name)
                .and_then(|s| blob_path_from_modelfile(&s.modelfile));
            blob.is_none_or(|b| !view.runners.iter().any(|r| r.model_path == b))
        });
        self.rescan.unmatched_since = match (unmatched, self.rescan.unmatched_since) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => Some(now),
        };
        self.rescan.unmatched = unmatched;

        let show = &self.show;
        self.loads.observe(wall, &ps, |m| {
            show.get(&m.name)
                .and_then(|s| blob_path_from_modelfile(&s.modelfile))
        });
        let requested = [self.profile.model.clone()];
        let obs = Observation {
            captured_at: Some(wall),
            ps: &ps,
            show: &self.show,
            tags: &self.tags,
            gpu: &view.gpu,
            runners: &view.runners,
            env: &self.env,
            requested_models: &requested,
            request_options: Some(self.profile.load_options()),
            server_version: self.version.as_deref(),
            history: Some(&self.loads),
            scope: &self.scope,
        };
        let mut diagnoses = diagnose::diagnose(&obs);
        self.settle_fits(&ps, &mut diagnoses);

        let ours: Vec<String> = ps
            .iter()
            .filter(|m| self.is_ours(m))
            .map(|m| m.name.clone())
            .collect();
        self.loaded_ctx = ps
            .iter()
            .find(|m| ours.contains(&m.name))
            .and_then(|m| m.context_length);
        self.keep_warm_tick(now, wall, &ps, &ours);
        self.placement_events(&diagnoses);
        self.alert_tick(now, &diagnoses, &view, &ps, &ours);
        let snapshot = self.snapshot(wall, &ps, diagnoses, &view, &ours);
        // One allocation shared by the watch channel and the event: a snapshot carries every
        // diagnosis, and this runs on every tick.
        let snapshot = Arc::new(snapshot);
        self.latest.send_replace(snapshot.clone());
        self.publish(Event::Snapshot(snapshot));
        self.last = Some(LastTick { ps, view, at: wall });
    }

    fn went_down(&mut self, e: Error) {
        let was_up = self.up;
        self.loaded_ctx = None;
        self.up = Some(false);
        self.version = None;
        let ours = |_: &PsModel| false;
        self.keep_warm.on_tick(&WarmObservation {
            now: Instant::now(),
            wall: OffsetDateTime::now_utc(),
            ps: None,
            is_ours: &ours,
        });
        let reason = e.to_string();
        if was_up != Some(false) {
            self.publish(Event::OllamaDown {
                url: self.client.base_url().to_owned(),
                reason: reason.clone(),
            });
        }
        let mut snap = Snapshot::initial(self.client.base_url(), &self.profile.model);
        snap.scope = self.scope.clone();
        snap.ollama = OllamaState::Down { reason };
        snap.verdict = Verdict::Down;
        snap.headline = format!("{} · Ollama down", self.profile.model);
        snap.advice = Some(
            "Ollama is not running or not reachable: start it with `ollama serve` \
             (or `systemctl start ollama`)."
                .into(),
        );
        snap.muted = self.alerts.muted();
        snap.open_incidents = self.alerts.open_count();
        let changed = self.latest.borrow().verdict != Verdict::Down;
        let snap = Arc::new(snap);
        self.latest.send_replace(snap.clone());
        if changed {
            self.publish(Event::Snapshot(snap));
        }
    }

    async fn came_up(&mut self) {
        self.up = Some(true);
        let version = match self.client.version().await {
            Ok(v) => v.version,
            Err(_) => "unknown".to_owned(),
        };
        self.version = Some(version.clone());
        // A restarted server may have other models and digests; ask again. Its name may also
        // point elsewhere now.
        self.show_digest.clear();
        self.resolve_scope().await;
        self.publish(Event::OllamaUp { version });
    }

    fn keep_warm_tick(
        &mut self,
        now: Instant,
        wall: OffsetDateTime,
        ps: &[PsModel],
        our_names: &[String],
    ) {
        let ours = |m: &PsModel| our_names.contains(&m.name);
        let actions = self.keep_warm.on_tick(&WarmObservation {
            now,
            wall,
            ps: Some(ps),
            is_ours: &ours,
        });
        for action in actions {
            let model = self.profile.model.clone();
            match action {
                WarmAction::Warm { reason } => {
                    if self.settings.rewarm && !self.paused_by_unload {
                        self.start_warm(reason, false);
                    }
                }
                WarmAction::Reassert { expires_in_s } => {
                    if !self.paused_by_unload {
                        self.publish(Event::Warm(WarmEvent::Reasserted {
                            model,
                            expires_in_s,
                        }));
                        self.start_warm(WarmReason::Requested, true);
                    }
                }
                WarmAction::OptionsDrifted {
                    expected_num_ctx,
                    loaded_num_ctx,
                } => {
                    let advice =
                        crate::warm::drift_advice(&model, expected_num_ctx, loaded_num_ctx);
                    self.publish(Event::Warm(WarmEvent::OptionsDrifted {
                        model,
                        expected_num_ctx,
                        loaded_num_ctx,
                        advice,
                    }));
                }
                WarmAction::Contention { with } => {
                    self.publish(Event::Warm(WarmEvent::Contention { model, with }));
                }
            }
        }
    }

    fn placement_events(&mut self, diagnoses: &[ModelDiagnosis]) {
        for d in diagnoses.iter().filter(|d| d.loaded) {
            let to = d.placement.placement;
            let from = self.placements.insert(d.model.clone(), to);
            if from != Some(to) {
                self.publish(Event::PlacementChanged {
                    model: d.model.clone(),
                    from,
                    to,
                });
            }
        }
        self.placements
            .retain(|m, _| diagnoses.iter().any(|d| d.loaded && &d.model == m));
    }

    fn alert_tick(
        &mut self,
        now: Instant,
        diagnoses: &[ModelDiagnosis],
        view: &MachineView,
        ps: &[PsModel],
        ours: &[String],
    ) {
        if !self.settings.alerts_enabled {
            return;
        }
        let seen = Seen {
            machine: view,
            ps,
            ours,
        };
        for d in diagnoses {
            if let Some(action) = self.alerts.observe(d, &seen, now) {
                self.publish(Event::from(action));
            }
        }
    }

    fn verdict<'a>(
        &self,
        ps: &[PsModel],
        diagnoses: &'a [ModelDiagnosis],
    ) -> (Verdict, Option<&'a ModelDiagnosis>) {
        let ours = ps.iter().find(|m| self.is_ours(m));
        let diag = ours.and_then(|m| diagnoses.iter().find(|d| d.model == m.name));
        let verdict = match diag {
            _ if self.warming.is_some() && ours.is_none() => Verdict::Warming,
            None => Verdict::NotLoaded,
            Some(d) => Verdict::from_placement(d.placement.placement),
        };
        let diag = diag.or_else(|| diagnoses.iter().find(|d| d.model == self.profile.model));
        (verdict, diag)
    }

    fn snapshot(
        &self,
        wall: OffsetDateTime,
        ps: &[PsModel],
        diagnoses: Vec<ModelDiagnosis>,
        view: &MachineView,
        ours: &[String],
    ) -> Snapshot {
        let (verdict, diag) = self.verdict(ps, &diagnoses);
        let unchecked = diag.and_then(|d| alerts::unchecked_reason(d, &view.gpu));
        let placement_text = match verdict {
            // A verdict that rests on /api/ps alone never reads as a clean bill.
            Verdict::Gpu if unchecked.is_some() => "100% GPU (unchecked)".to_owned(),
            Verdict::Gpu => "100% GPU".to_owned(),
            Verdict::Partial { cpu_pct } => format!("{cpu_pct}% on CPU"),
            Verdict::Cpu => "on CPU".to_owned(),
            Verdict::Warming => "warming…".to_owned(),
            Verdict::NotLoaded => "not loaded".to_owned(),
            Verdict::Down => "Ollama down".to_owned(),
            Verdict::Unknown => "placement unchecked".to_owned(),
            Verdict::Unverified { .. } => "GPU unverified".to_owned(),
        };
        let mut headline = format!("{} · {placement_text}", self.profile.model);
        if self.scope != Scope::Local {
            headline.push_str(&format!(" · {} server", self.scope));
        }
        if let Some(vram) = alerts::vram_line(view) {
            headline.push_str(" · ");
            headline.push_str(&vram);
        }
        let seen = Seen {
            machine: view,
            ps,
            ours,
        };
        let found = match verdict {
            Verdict::Warming => Some(alerts::Advice {
                line: "Loading the model…".to_owned(),
                code: None,
                actions: Vec::new(),
            }),
            _ => diag.and_then(|d| alerts::advice(d, &seen)),
        };
        let (advice, fixes) = match found {
            Some(a) => (Some(a.line), a.actions),
            None => (None, Vec::new()),
        };
        let loaded_num_ctx = self.loaded_ctx;
        let gpus = view
            .gpu
            .gpus
            .iter()
            .map(|g| GpuSummary {
                name: g.name.clone(),
                memory_used: g.memory_used,
                memory_total: g.memory_total,
                utilization_gpu: g.utilization_gpu,
            })
            .collect();
        Snapshot {
            at: wall,
            url: self.client.base_url().to_owned(),
            scope: self.scope.clone(),
            ollama: OllamaState::Up {
                version: self.version.clone().unwrap_or_default(),
            },
            model: self.profile.model.clone(),
            verdict,
            headline,
            advice,
            fixes,
            loaded_num_ctx,
            diagnoses,
            gpus,
            nvml: view.gpu.nvml.clone(),
            warming: self.warming.is_some(),
            muted: self.alerts.muted(),
            open_incidents: self.alerts.open_count(),
        }
    }

    fn republish_muted(&self, muted: bool) {
        let mut snap = (**self.latest.borrow()).clone();
        snap.muted = muted;
        let snap = Arc::new(snap);
        self.latest.send_replace(snap.clone());
        self.publish(Event::Snapshot(snap));
    }

    fn capture(&self) -> CaptureBundle {
        let gpu = self
            .last
            .as_ref()
            .map(|l| l.view.gpu.clone())
            .unwrap_or_else(|| crate::gpu::GpuSnapshot::unavailable("no tick yet"));
        let mut b = CaptureBundle::new(self.client.base_url(), gpu);
        b.scope = self.scope.clone();
        if let Some(last) = &self.last {
            b.captured_at = last.at;
            b.ps.models = last.ps.clone();
            b.runners = last.view.runners.clone();
        }
        b.ollama_version = self.version.clone();
        b.history = self.loads.clone();
        b.show = self.show.clone();
        b.tags = self.tags.clone();
        b.env = self.env.clone();
        b.requested_models = vec![self.profile.model.clone()];
        b.request_options = Some(self.profile.load_options().clone());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_runner_is_hunted_every_tick_for_a_while_then_every_30_s() {
        let t0 = Instant::now();
        let ps: Vec<PsModel> = Vec::new();
        let mut r = Rescan::default();
        r.done(t0, &ps);
        assert!(!r.needed(t0 + Duration::from_secs(2), &ps));
        // The runner vanished at t0 (as the tick records it): every tick scans during the hunt…
        r.unmatched = true;
        r.unmatched_since = Some(t0);
        for s in [2, 4, 10, 18] {
            let now = t0 + Duration::from_secs(s);
            assert!(r.needed(now, &ps), "tick at {s} s");
            r.done(now, &ps);
        }
        // …then only every UNMATCHED_RETRY.
        let after = t0 + Rescan::HUNT + Duration::from_secs(1);
        r.done(after, &ps);
        assert!(!r.needed(after + Duration::from_secs(2), &ps));
        assert!(r.needed(after + Rescan::UNMATCHED_RETRY, &ps));
    }
}
