//! The app's one managed state: what the tray shows, how the desktop integration is doing, the
//! notifier, and the command channel towards the core adapter.

use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::command::AppCommand;
use crate::error::Error;
use crate::notify::{Notice, Notifier, NotifierHealth};
use crate::view::TrayView;

/// Something that can draw a [`TrayView`]: the real tray, or nothing when headless.
pub trait TrayUi: Send {
    /// Brings the tray up to date with `view`, touching only what changed.
    fn apply(&mut self, view: &TrayView) -> crate::Result<()>;
}

/// What `status` returns: the view plus the health of the desktop integration.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// What the tray shows.
    pub view: TrayView,
    /// Whether a StatusNotifierWatcher owns the session bus name, i.e. whether the tray icon
    /// can appear at all; `None` until checked (and in headless tests).
    pub tray_host: Option<bool>,
    /// Health of desktop notifications.
    pub notifications: NotifierHealth,
    /// The last failure of a shell action (menu command, tray update, bus check).
    pub last_error: Option<String>,
}

/// The single managed state of the app.
pub struct AppState {
    view: Mutex<TrayView>,
    tray: Mutex<Option<Box<dyn TrayUi>>>,
    tray_host: Mutex<Option<bool>>,
    last_error: Mutex<Option<String>>,
    notifier: Notifier,
    commands_tx: UnboundedSender<AppCommand>,
    commands_rx: Mutex<Option<UnboundedReceiver<AppCommand>>>,
}

/// A poisoned lock only means another thread panicked mid-update of plain data; the data is
/// still the best we have, so keep going rather than cascade the panic.
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AppState {
    /// A state showing `view`, with `notifier` for alerts.
    pub fn new(view: TrayView, notifier: Notifier) -> Self {
        let (commands_tx, commands_rx) = unbounded_channel();
        Self {
            view: Mutex::new(view),
            tray: Mutex::new(None),
            tray_host: Mutex::new(None),
            last_error: Mutex::new(None),
            notifier,
            commands_tx,
            commands_rx: Mutex::new(Some(commands_rx)),
        }
    }

    /// A snapshot for the `status` command.
    pub fn status(&self) -> Status {
        Status {
            view: self.view(),
            tray_host: *lock(&self.tray_host),
            notifications: self.notifier.health(),
            last_error: lock(&self.last_error).clone(),
        }
    }

    /// What the tray shows now.
    pub fn view(&self) -> TrayView {
        lock(&self.view).clone()
    }

    /// Changes the view and returns the new one. Drawing it is [`crate::set_view`]'s job, on
    /// the main thread.
    pub(crate) fn update_view(&self, change: impl FnOnce(&mut TrayView)) -> TrayView {
        let mut view = lock(&self.view);
        change(&mut view);
        view.clone()
    }

    /// Installs the tray that [`AppState::redraw`] draws on.
    pub(crate) fn set_tray(&self, tray: Box<dyn TrayUi>) {
        *lock(&self.tray) = Some(tray);
    }

    /// Draws the current view on the tray, if there is one. Call on the main thread only: the
    /// menu calls then run directly instead of waiting on the main thread while holding the lock.
    pub(crate) fn redraw(&self) {
        let view = self.view();
        let outcome = lock(&self.tray).as_mut().map(|tray| tray.apply(&view));
        if let Some(Err(err)) = outcome {
            tracing::warn!(%err, "tray update failed");
            self.record_error(&err);
        }
    }

    /// Records whether a tray host (StatusNotifierWatcher) exists.
    pub(crate) fn set_tray_host(&self, present: bool) {
        *lock(&self.tray_host) = Some(present);
    }

    /// Makes `err` visible in the status.
    pub fn record_error(&self, err: &Error) {
        *lock(&self.last_error) = Some(err.to_string());
    }

    /// Shows a desktop alert unless alerts are muted. Never blocks.
    pub fn notify(&self, notice: Notice) {
        if lock(&self.view).muted {
            tracing::debug!(id = ?notice.id, "alert muted");
            return;
        }
        self.notifier.send(notice);
    }

    /// Hands over the receiving end of the command channel (once; later calls get `None`).
    /// Every [`AppCommand`] the user issues arrives there after the shell did its own part.
    pub fn take_commands(&self) -> Option<UnboundedReceiver<AppCommand>> {
        lock(&self.commands_rx).take()
    }

    pub(crate) fn forward(&self, cmd: AppCommand) {
        if self.commands_tx.send(cmd).is_err() {
            tracing::debug!(?cmd, "no adapter listening for commands");
        }
    }
}
