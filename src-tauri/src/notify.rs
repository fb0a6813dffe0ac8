//! Desktop notifications (freedesktop, through notify-rust). A [`Notifier`] owns one worker
//! thread that talks to the notification daemon, so neither the GTK main thread nor the
//! watchdog ever waits on D-Bus: a daemon that owns the name but never answers makes
//! `show()` block forever, and that must cost us a status line, not the app.
//!
//! ## Platform-specific
//! Linux/BSD only (freedesktop notifications). Action buttons appear only where the daemon
//! advertises the `actions` capability; otherwise the alert is plain text.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use yollayah_core::alerts::IncidentId;

use crate::error::{Error, Result};

/// How long a daemon may take to answer before the notifier reports itself stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(5);
/// How long an alert stays on screen (sent as the notification's expire timeout).
pub const SHOW_FOR: Duration = Duration::from_secs(15);
/// Alerts waiting for the worker; more than this while the daemon hangs are dropped.
const QUEUE: usize = 16;
/// Threads waiting for a click on an action at once; beyond it alerts are sent without actions,
/// so a daemon that never closes notifications cannot make us pile up threads.
const MAX_WAITERS: usize = 4;
/// Mappings from incidents to daemon ids kept for "replaces"; older ones are forgotten.
const MAX_REMEMBERED: usize = 64;

/// A button on an alert. Keys are spelled here only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeAction {
    /// "Warm model".
    WarmModel,
    /// "Reload on the GPU": the fix core offers when the model would fit there now.
    ReloadOnGpu,
    /// "Open" (the chat window).
    Open,
}

impl NoticeAction {
    /// The action key sent to the daemon.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeAction::WarmModel => "warm-model",
            NoticeAction::ReloadOnGpu => "reload-on-gpu",
            NoticeAction::Open => "open",
        }
    }

    /// The button's default label.
    pub fn label(self) -> &'static str {
        match self {
            NoticeAction::WarmModel => "Warm model",
            NoticeAction::ReloadOnGpu => yollayah_core::alerts::FixAction::ReloadOnGpu.label(),
            NoticeAction::Open => "Open",
        }
    }

    /// Maps a key the daemon reported back. `default` is a click on the alert's body, which
    /// opens the chat like "Open" does.
    pub fn from_key(key: &str) -> Result<Self> {
        match key {
            "warm-model" => Ok(NoticeAction::WarmModel),
            "reload-on-gpu" => Ok(NoticeAction::ReloadOnGpu),
            "open" | "default" => Ok(NoticeAction::Open),
            other => Err(Error::UnknownAction(other.to_owned())),
        }
    }
}

/// One alert to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The incident this alert is about.
    pub id: IncidentId,
    /// Title line.
    pub summary: String,
    /// Body text.
    pub body: String,
    /// Buttons, shown only where the daemon supports actions.
    pub actions: Vec<(NoticeAction, String)>,
    /// The incident whose alert this one replaces on screen (e.g. "back on GPU" replaces
    /// "fell off the GPU").
    pub replaces: Option<IncidentId>,
}

/// How notifications are doing, for the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyState {
    /// Nothing sent yet.
    Idle,
    /// The last alert was accepted by the daemon.
    Ok,
    /// The last attempt failed (see `last_error`).
    Failing,
    /// The daemon has not answered for longer than [`STUCK_AFTER`].
    Stuck,
}

/// Notification health as reported by `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotifierHealth {
    /// Overall state.
    pub state: NotifyState,
    /// Whether the daemon supports action buttons; `None` until asked.
    pub actions: Option<bool>,
    /// Alerts the daemon accepted.
    pub shown: usize,
    /// The last failure, in words.
    pub last_error: Option<String>,
}

/// A shown alert: the daemon's id and, when it has buttons, a blocking wait for the click.
pub struct Shown {
    /// The daemon's notification id (used to replace it later).
    pub id: u32,
    /// Blocks until the alert is clicked or closed; returns the action key, if any.
    pub wait: Option<Box<dyn FnOnce() -> Option<String> + Send>>,
}

/// The notification daemon, seen from the worker. A trait only so tests can stand in for the
/// D-Bus daemon (the system edge).
pub trait Backend: Send + 'static {
    /// The daemon's capabilities (`actions`, `body`, …).
    fn capabilities(&mut self) -> Result<Vec<String>>;
    /// Shows `notice`, replacing the daemon's alert `replaces`, with buttons if `with_actions`.
    fn show(&mut self, notice: &Notice, replaces: Option<u32>, with_actions: bool)
    -> Result<Shown>;
}

/// The real daemon, over the session bus.
#[derive(Debug, Default)]
pub struct DbusBackend;

impl Backend for DbusBackend {
    fn capabilities(&mut self) -> Result<Vec<String>> {
        Ok(notify_rust::get_capabilities()?)
    }

    fn show(
        &mut self,
        notice: &Notice,
        replaces: Option<u32>,
        with_actions: bool,
    ) -> Result<Shown> {
        let mut n = notify_rust::Notification::new();
        n.appname("Yollayah")
            .summary(&notice.summary)
            .body(&notice.body)
            .timeout(notify_rust::Timeout::Milliseconds(
                u32::try_from(SHOW_FOR.as_millis()).unwrap_or(u32::MAX),
            ));
        if let Some(id) = replaces {
            n.id(id);
        }
        if with_actions {
            for (action, label) in &notice.actions {
                n.action(action.as_str(), label);
            }
        }
        let handle = n.show()?;
        let id = handle.id();
        let wait: Option<Box<dyn FnOnce() -> Option<String> + Send>> = with_actions.then(|| {
            Box::new(move || {
                let mut clicked = None;
                handle.wait_for_action(|key| {
                    if key != "__closed" {
                        clicked = Some(key.to_owned());
                    }
                });
                clicked
            }) as Box<dyn FnOnce() -> Option<String> + Send>
        });
        Ok(Shown { id, wait })
    }
}

#[derive(Debug)]
struct Shared {
    busy_since: Option<Instant>,
    actions: Option<bool>,
    shown: usize,
    failing: bool,
    last_error: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends alerts without ever waiting: each goes to the worker thread's queue.
pub struct Notifier {
    tx: SyncSender<Notice>,
    shared: Arc<Mutex<Shared>>,
}

impl Notifier {
    /// Starts the worker on `backend`. The notifier only reports which button was clicked:
    /// `on_action` gets it (on a waiter thread) and decides what it means. The worker ends when
    /// the `Notifier` is dropped.
    pub fn spawn(
        backend: impl Backend,
        on_action: impl Fn(NoticeAction) + Send + Sync + 'static,
    ) -> Result<Self> {
        let (tx, rx) = sync_channel(QUEUE);
        let shared = Arc::new(Mutex::new(Shared {
            busy_since: None,
            actions: None,
            shown: 0,
            failing: false,
            last_error: None,
        }));
        let worker_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("notifier".into())
            .spawn(move || worker(backend, rx, worker_shared, Arc::new(on_action)))
            .map_err(|e| Error::io("starting the notification thread", e))?;
        Ok(Self { tx, shared })
    }

    /// Queues `notice`. Never blocks; a full queue or a dead worker becomes `last_error`.
    pub fn send(&self, notice: Notice) {
        let problem = match self.tx.try_send(notice) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => {
                "alert dropped: the notification service is not answering"
            }
            Err(TrySendError::Disconnected(_)) => "alert dropped: the notification thread ended",
        };
        tracing::warn!("{problem}");
        let mut shared = lock(&self.shared);
        shared.failing = true;
        shared.last_error = Some(problem.to_owned());
    }

    /// The current health.
    pub fn health(&self) -> NotifierHealth {
        let shared = lock(&self.shared);
        let stuck = shared
            .busy_since
            .is_some_and(|t| t.elapsed() >= STUCK_AFTER);
        let state = if stuck {
            NotifyState::Stuck
        } else if shared.failing {
            NotifyState::Failing
        } else if shared.shown > 0 {
            NotifyState::Ok
        } else {
            NotifyState::Idle
        };
        NotifierHealth {
            state,
            actions: shared.actions,
            shown: shared.shown,
            last_error: shared.last_error.clone(),
        }
    }
}

fn worker(
    mut backend: impl Backend,
    rx: Receiver<Notice>,
    shared: Arc<Mutex<Shared>>,
    on_action: Arc<dyn Fn(NoticeAction) + Send + Sync>,
) {
    let waiters = Arc::new(AtomicUsize::new(0));
    let mut daemon_ids: HashMap<IncidentId, u32> = HashMap::new();
    let mut actions_supported: Option<bool> = None;
    let fail = |err: &Error| {
        tracing::warn!(%err, "notification failed");
        let mut s = lock(&shared);
        s.failing = true;
        s.last_error = Some(err.to_string());
    };
    // Ends when every sender is gone, i.e. the Notifier was dropped with the app.
    for notice in rx {
        lock(&shared).busy_since = Some(Instant::now());
        if actions_supported.is_none() {
            // Asked lazily and until it succeeds: the daemon may start after us.
            match backend.capabilities() {
                Ok(caps) => {
                    let has = caps.iter().any(|c| c == "actions");
                    actions_supported = Some(has);
                    lock(&shared).actions = Some(has);
                }
                Err(err) => fail(&err),
            }
        }
        let replaces = notice.replaces.and_then(|i| daemon_ids.get(&i).copied());
        let want_actions = actions_supported == Some(true)
            && !notice.actions.is_empty()
            && waiters.load(Ordering::SeqCst) < MAX_WAITERS;
        match backend.show(&notice, replaces, want_actions) {
            Ok(shown) => {
                if daemon_ids.len() >= MAX_REMEMBERED {
                    daemon_ids.clear();
                }
                daemon_ids.insert(notice.id, shown.id);
                {
                    let mut s = lock(&shared);
                    s.shown += 1;
                    s.failing = false;
                }
                if let Some(wait) = shown.wait {
                    spawn_waiter(wait, &waiters, &on_action);
                }
            }
            Err(err) => fail(&err),
        }
        lock(&shared).busy_since = None;
    }
}

fn spawn_waiter(
    wait: Box<dyn FnOnce() -> Option<String> + Send>,
    waiters: &Arc<AtomicUsize>,
    on_action: &Arc<dyn Fn(NoticeAction) + Send + Sync>,
) {
    let waiters = Arc::clone(waiters);
    let on_action = Arc::clone(on_action);
    waiters.fetch_add(1, Ordering::SeqCst);
    let spawned = std::thread::Builder::new()
        .name("notice-action".into())
        .spawn({
            let waiters = Arc::clone(&waiters);
            move || {
                // Blocks until the alert is clicked or closes (it expires after SHOW_FOR).
                if let Some(key) = wait() {
                    match NoticeAction::from_key(&key) {
                        Ok(action) => on_action(action),
                        Err(err) => tracing::warn!(%err, "ignored notification action"),
                    }
                }
                waiters.fetch_sub(1, Ordering::SeqCst);
            }
        });
    if let Err(err) = spawned {
        waiters.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!(%err, "could not wait for notification actions");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A daemon stand-in: records calls; blocks `show` until released when told to.
    struct FakeDaemon {
        calls: mpsc::Sender<(String, Option<u32>, bool)>,
        gate: Option<mpsc::Receiver<()>>,
        next_id: u32,
        caps: Vec<String>,
        click: Option<&'static str>,
    }

    impl Backend for FakeDaemon {
        fn capabilities(&mut self) -> Result<Vec<String>> {
            Ok(self.caps.clone())
        }
        fn show(&mut self, n: &Notice, replaces: Option<u32>, actions: bool) -> Result<Shown> {
            if let Some(gate) = &self.gate {
                let _ = gate.recv();
            }
            let _ = self.calls.send((n.summary.clone(), replaces, actions));
            self.next_id += 1;
            let click = self.click;
            let wait: Option<Box<dyn FnOnce() -> Option<String> + Send>> =
                actions.then(|| Box::new(move || click.map(str::to_owned)) as _);
            Ok(Shown {
                id: replaces.unwrap_or(self.next_id),
                wait,
            })
        }
    }

    fn notice(id: u64, summary: &str, replaces: Option<u64>) -> Notice {
        Notice {
            id: IncidentId(id),
            summary: summary.to_owned(),
            body: "body".to_owned(),
            actions: vec![(NoticeAction::WarmModel, "Warm model".to_owned())],
            replaces: replaces.map(IncidentId),
        }
    }

    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn resolution_replaces_the_alert_and_actions_reach_the_handler() {
        let (calls_tx, calls) = mpsc::channel();
        let (cmd_tx, cmds) = mpsc::channel();
        let cmd_tx = Mutex::new(cmd_tx);
        let daemon = FakeDaemon {
            calls: calls_tx,
            gate: None,
            next_id: 40,
            caps: vec!["body".into(), "actions".into()],
            click: Some("warm-model"),
        };
        let notifier = Notifier::spawn(daemon, move |c| {
            let _ = lock(&cmd_tx).send(c);
        })
        .expect("spawn");
        notifier.send(notice(1, "Model fell off the GPU", None));
        let first = calls
            .recv_timeout(Duration::from_secs(10))
            .expect("first shown");
        assert_eq!(first, ("Model fell off the GPU".to_owned(), None, true));
        let cmd = cmds
            .recv_timeout(Duration::from_secs(10))
            .expect("action forwarded");
        assert_eq!(cmd, NoticeAction::WarmModel);

        let mut resolved = notice(2, "Back on the GPU", Some(1));
        resolved.actions.clear();
        notifier.send(resolved);
        let second = calls
            .recv_timeout(Duration::from_secs(10))
            .expect("second shown");
        assert_eq!(second, ("Back on the GPU".to_owned(), Some(41), false));
        wait_until("two shown", || notifier.health().shown == 2);
        let health = notifier.health();
        assert_eq!(
            (health.state, health.actions),
            (NotifyState::Ok, Some(true))
        );
    }

    #[test]
    fn no_actions_without_the_capability() {
        let (calls_tx, calls) = mpsc::channel();
        let daemon = FakeDaemon {
            calls: calls_tx,
            gate: None,
            next_id: 0,
            caps: vec![],
            click: None,
        };
        let notifier = Notifier::spawn(daemon, |_| {}).expect("spawn");
        notifier.send(notice(1, "x", None));
        let shown = calls.recv_timeout(Duration::from_secs(10)).expect("shown");
        assert!(!shown.2, "actions sent to a daemon without the capability");
        wait_until("health", || notifier.health().actions == Some(false));
    }

    #[test]
    fn a_hung_daemon_never_blocks_the_sender_and_is_reported_stuck() {
        let (calls_tx, _calls) = mpsc::channel();
        let (release, gate) = mpsc::channel();
        let daemon = FakeDaemon {
            calls: calls_tx,
            gate: Some(gate),
            next_id: 0,
            caps: vec![],
            click: None,
        };
        let notifier = Notifier::spawn(daemon, |_| {}).expect("spawn");
        let started = Instant::now();
        // One in the daemon, QUEUE waiting, the rest must be dropped without blocking.
        for i in 0..(QUEUE as u64 + 5) {
            notifier.send(notice(i, "x", None));
        }
        assert!(started.elapsed() < Duration::from_secs(1), "send blocked");
        let health = notifier.health();
        assert_eq!(health.state, NotifyState::Failing);
        assert!(
            health
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("not answering"))
        );
        wait_until("stuck", || notifier.health().state == NotifyState::Stuck);
        drop(release);
    }

    #[test]
    fn action_keys_map_and_unknown_is_an_error() {
        for action in [NoticeAction::WarmModel, NoticeAction::Open] {
            assert_eq!(
                NoticeAction::from_key(action.as_str()).expect("own key"),
                action
            );
        }
        assert_eq!(
            NoticeAction::from_key("default").expect("body click"),
            NoticeAction::Open
        );
        assert!(matches!(
            NoticeAction::from_key("x"),
            Err(Error::UnknownAction(_))
        ));
    }
}
