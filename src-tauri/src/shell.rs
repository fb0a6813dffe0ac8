//! The tray process's one shared state: the running core, what the tray shows, how the desktop
//! integration is doing, the notifier, the user's files, the connected chat windows and the
//! chat process. Everything that acts (the menu, notification buttons, the socket service, the
//! forwarder) holds an `Arc<Shell>`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::chat_process::ChatProcess;
use crate::clients::Clients;
use crate::core_state::Core;
use crate::error::Error;
use crate::ipc::{ShortcutState, Status};
use crate::lock::lock;
use crate::notify::{Backend, Notice, NoticeAction, Notifier};
use crate::user_files::UserFiles;
use crate::view::TrayView;

/// Draws a view on the tray (on GTK's thread); set by the tray once it exists.
pub type Redraw = Box<dyn Fn() + Send + Sync>;
/// Ends the app (leaves GTK's main loop).
pub type Quit = Box<dyn Fn() + Send + Sync>;

/// The state of the tray process.
pub struct Shell {
    view: Mutex<TrayView>,
    tray_host: Mutex<Option<bool>>,
    last_error: Mutex<Option<String>>,
    shortcut: Mutex<ShortcutState>,
    notifier: Notifier,
    files: UserFiles,
    /// The running core.
    pub core: Core,
    /// The chat windows connected to the socket.
    pub clients: Clients,
    /// The chat window's process, started on demand.
    pub chat: ChatProcess,
    runtime: tokio::runtime::Handle,
    redraw: OnceLock<Redraw>,
    quit: OnceLock<Quit>,
    quitting: AtomicBool,
}

impl Shell {
    /// The shell around a started `core`. Notification buttons go to `on_action` (the app
    /// dispatches them as commands: passed in, because the actions work on the shell and the
    /// shell must not depend on them). Must run inside the tokio runtime that runs the core.
    pub fn new(
        core: Core,
        notifications: impl Backend,
        files: UserFiles,
        chat: ChatProcess,
        on_action: impl Fn(&Arc<Shell>, NoticeAction) + Send + Sync + 'static,
    ) -> crate::Result<Arc<Shell>> {
        // The notifier's button callback needs the shell, which owns the notifier.
        let me: Arc<OnceLock<Weak<Shell>>> = Arc::default();
        let weak = me.clone();
        let notifier = Notifier::spawn(notifications, move |action| {
            if let Some(shell) = weak.get().and_then(Weak::upgrade) {
                on_action(&shell, action);
            }
        })?;
        let view = TrayView {
            autostart: crate::autostart::is_enabled(&files.autostart_entry),
            ..TrayView::default()
        };
        let shell = Arc::new(Shell {
            view: Mutex::new(view),
            tray_host: Mutex::new(None),
            last_error: Mutex::new(None),
            shortcut: Mutex::new(ShortcutState::Off),
            notifier,
            files,
            core,
            clients: Clients::default(),
            chat,
            runtime: tokio::runtime::Handle::current(),
            redraw: OnceLock::new(),
            quit: OnceLock::new(),
            quitting: AtomicBool::new(false),
        });
        let _ = me.set(Arc::downgrade(&shell));
        Ok(shell)
    }

    /// The runtime the core runs on (for work started from GTK's or the notifier's thread).
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
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
            shortcut: lock(&self.shortcut).clone(),
        }
    }

    /// What the tray shows now.
    pub fn view(&self) -> TrayView {
        lock(&self.view).clone()
    }

    /// Changes what the tray shows; the tray redraws on its own thread.
    pub fn set_view(&self, change: impl FnOnce(&mut TrayView)) {
        change(&mut lock(&self.view));
        if let Some(redraw) = self.redraw.get() {
            redraw();
        }
    }

    /// Installs the tray's redraw (once).
    pub fn set_redraw(&self, redraw: Redraw) {
        let _ = self.redraw.set(redraw);
    }

    /// Installs what Quit does (once).
    pub fn set_quit(&self, quit: Quit) {
        let _ = self.quit.set(quit);
    }

    /// Ends the app: the chat window goes, the core stops, the main loop ends. Only the first
    /// call acts (Quit, SIGTERM and the end of the main loop may all ask).
    pub fn quit(&self) {
        if self.quitting.swap(true, Ordering::SeqCst) {
            return;
        }
        self.chat.stop();
        self.core.shutdown();
        if let Some(quit) = self.quit.get() {
            quit();
        }
    }

    /// Records whether a tray host (StatusNotifierWatcher) exists.
    pub fn set_tray_host(&self, present: bool) {
        *lock(&self.tray_host) = Some(present);
    }

    /// Records how the global shortcut is bound.
    pub fn set_shortcut(&self, state: ShortcutState) {
        *lock(&self.shortcut) = state;
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
