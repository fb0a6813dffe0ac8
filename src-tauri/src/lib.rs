//! yollayah-tray: the always-on part of Yollayah. One process holds the core (watchdog, alerts,
//! history, chats), the tray icon and menu (`tray-icon` on GTK, no webview) and desktop
//! notifications. The chat window is another process (`yollayah-chat`, a Tauri app) started on
//! demand: it talks to this one over a private socket ([`wire`], served by [`service`]) with
//! the commands and payloads of [`ipc`], and exits when its window closes, so no WebKit runs
//! while the chat is closed.
//!
//! [`forward`] turns the core's snapshots and alerts into the tray's view, notices and window
//! events; [`actions`] carries the user's clicks out. This file only builds ([`start`]); the
//! binary's start-up is `launch.rs`.

mod actions;
mod attach;
mod autostart;
mod chat_process;
mod clients;
mod commands;
mod core_state;
#[cfg(feature = "demo")]
mod demo;
mod error;
mod forward;
mod hosts;
pub mod ipc;
mod launch;
mod lock;
mod menu_bus;
mod models;
mod notify;
mod picker;
mod pulls;
mod reply;
mod samples;
mod service;
mod shell;
mod shortcut;
mod single_instance;
mod startup;
mod tray;
mod user_files;
mod view;
pub mod wire;

use std::path::Path;
use std::sync::Arc;

pub use actions::{AppCommand, MenuId, dispatch};
pub use chat_process::{CHAT_BIN, ChatProcess, chat_program};
pub use error::{Error, Result};
pub use ipc::Status;
pub use launch::{core_options, run};
pub use notify::{Backend, DbusBackend, Notice, NoticeAction, Shown};
pub use shell::Shell;
pub use startup::{CoreOptions, GpuSource};
pub use user_files::UserFiles;
pub use view::{HostLine, LINE_MAX, TrayState, TrayView};

/// Starts the core, the forwarder and the chat windows' socket at `socket`: everything of the
/// tray process but the tray itself (the binary adds it; tests and `yollayah-chat --standalone`
/// run without). `notifications` is the notification daemon (the real one is
/// [`DbusBackend`]); `chat` starts the chat window on "Open chat".
///
/// Must run inside a multi-threaded tokio runtime, which then runs the core.
pub fn start(
    mut options: CoreOptions,
    notifications: impl Backend,
    socket: &Path,
    chat: ChatProcess,
) -> Result<Arc<Shell>> {
    let files = match options.files.take() {
        Some(files) => files,
        None => UserFiles::from_env()?,
    };
    let core = core_state::Core::start(options)?;
    for problem in &core.problems {
        tracing::warn!("{problem}");
    }
    let listener = service::bind(socket)?;
    let uid = service::owner_uid(socket)?;
    let shell = Shell::new(core, notifications, files, chat, |shell, action| {
        dispatch(shell, action.into())
    })?;
    shell.set_view(|view| view.hosts = hosts::initial_lines(&shell.core.hosts));
    service::serve(&shell, listener, uid);
    forward::spawn(&shell);
    hosts::spawn(&shell);
    Ok(shell)
}
