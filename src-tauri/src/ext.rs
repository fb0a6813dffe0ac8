//! `app.app_state()` and `app.core()` on anything that reaches the app (handle, window, app):
//! the one place the managed state is looked up (the pattern of Tauri's plugins'
//! `NotificationExt`). `None` only before `run_app` managed them.

use tauri::{Manager, Runtime, State};

use crate::startup::Core;
use crate::state::AppState;

/// Typed access to the app's managed state.
pub(crate) trait YollayahExt<R: Runtime> {
    /// The shell's state (view, tray, notifier).
    fn app_state(&self) -> Option<State<'_, AppState>>;
    /// The running core (watchdog, chat, history).
    fn core(&self) -> Option<State<'_, Core>>;
}

impl<R: Runtime, T: Manager<R>> YollayahExt<R> for T {
    fn app_state(&self) -> Option<State<'_, AppState>> {
        self.try_state::<AppState>()
    }

    fn core(&self) -> Option<State<'_, Core>> {
        self.try_state::<Core>()
    }
}
