//! yollayah-tray: the desktop shell of Yollayah. A tray icon and menu that render a
//! [`TrayView`], desktop alerts, and a chat window created on demand. It decides nothing: the
//! core's watchdog does, [`forward`] turns its snapshots and alerts into the view and notices,
//! and [`actions`] carries the user's clicks out. The window's IPC contract is [`ipc`], its
//! commands [`commands`].
//!
//! This file only builds the app ([`run_app`]); the binary's start-up is `launch.rs`.

mod actions;
mod autostart;
mod chat_window;
mod commands;
#[cfg(feature = "demo")]
mod demo;
mod error;
mod ext;
mod forward;
pub mod ipc;
mod launch;
mod notify;
mod reply;
mod samples;
mod single_instance;
mod startup;
mod state;
mod tray;
mod user_files;
mod view;

use tauri::{App, Builder, Manager, Runtime};

pub use actions::{AppCommand, MenuId, dispatch};
pub use error::{Error, Result};
pub use launch::run;
pub use notify::{Backend, DbusBackend, Notice, NoticeAction, Shown};
pub use startup::{CoreOptions, GpuSource};
pub use state::Status;
pub use user_files::UserFiles;
pub use view::{TrayState, TrayView};

/// Builds the app: managed state, the core (watchdog on Tauri's runtime, forwarding of its
/// snapshots and alerts), IPC commands, capabilities. No tray, no single-instance socket, no
/// bus checks: those are [`run`]'s, so tests can boot this with `tauri::test::mock_builder()`
/// and no display. `notifications` is the notification daemon (the real one is
/// [`DbusBackend`]).
///
/// Call it outside any tokio runtime (it blocks on Tauri's to start the core).
pub fn run_app<R: Runtime>(
    builder: Builder<R>,
    mut options: CoreOptions,
    notifications: impl Backend,
) -> Result<App<R>> {
    let app = builder
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::send_message,
            commands::cancel_reply,
            commands::retry_reply,
            commands::list_conversations,
            commands::load_conversation,
            commands::warm,
            commands::unload,
            commands::open_external,
            commands::gpu_history,
        ])
        .build(tauri::generate_context!())?;
    // Managed here rather than in a setup hook: the mock runtime runs setup only once the event
    // loop starts, and tests never start it.
    let handle = app.handle().clone();
    let notifier = notify::Notifier::spawn(notifications, move |action| {
        dispatch(&handle, action.into());
    })?;
    let files = match options.files.take() {
        Some(files) => files,
        None => UserFiles::from_env()?,
    };
    let view = TrayView {
        autostart: autostart::is_enabled(&files.autostart_entry),
        ..TrayView::default()
    };
    app.manage(state::AppState::new(view, notifier, files));
    // The watchdog is a tokio task: start it inside Tauri's runtime.
    let core = tauri::async_runtime::block_on(async move { startup::Core::start(options) })?;
    for problem in &core.problems {
        tracing::warn!("{problem}");
    }
    app.manage(core);
    forward::spawn(app.handle());
    Ok(app)
}
