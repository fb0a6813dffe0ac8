//! The shell's managed state: what the tray shows, how the desktop integration is doing, the
//! notifier, and the user's files the menu acts on.

use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use tauri::{AppHandle, Manager, Runtime};

use crate::error::Error;
use crate::notify::{Notice, Notifier, NotifierHealth};
use crate::user_files::UserFiles;
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
    files: UserFiles,
}

/// A poisoned lock only means another thread panicked mid-update of plain data; the data is
/// still the best we have, so keep going rather than cascade the panic.
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AppState {
    /// A state showing `view`, with `notifier` for alerts, acting on `files`.
    pub fn new(view: TrayView, notifier: Notifier, files: UserFiles) -> Self {
        Self {
            view: Mutex::new(view),
            tray: Mutex::new(None),
            tray_host: Mutex::new(None),
            last_error: Mutex::new(None),
            notifier,
            files,
        }
    }

    /// The user's files the menu acts on.
    pub fn files(&self) -> &UserFiles {
        &self.files
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

    /// Changes the view and returns the new one. Drawing it is [`set_view`]'s job, on the main
    /// thread.
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

    /// Shows a desktop alert. Never blocks. Mute is the core's: a muted alert arrives with
    /// `notify: false` and never gets here.
    pub fn notify(&self, notice: Notice) {
        self.notifier.send(notice);
    }
}

/// Changes what the tray shows. Callable from any thread: the state changes at once, the tray
/// is redrawn on the main thread (GTK's).
pub fn set_view<R: Runtime>(app: &AppHandle<R>, change: impl FnOnce(&mut TrayView)) {
    let Some(state) = app.try_state::<AppState>() else {
        return;
    };
    state.update_view(change);
    let handle = app.clone();
    let queued = app.run_on_main_thread(move || {
        if let Some(state) = handle.try_state::<AppState>() {
            state.redraw();
        }
    });
    if let Err(err) = queued {
        state.record_error(&err.into());
    }
}
