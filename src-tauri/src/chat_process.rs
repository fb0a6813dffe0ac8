//! The chat window's process (`yollayah-chat`), started on demand and gone when the window
//! closes, so the always-on tray never runs WebKit. "Open chat" while it runs brings the window
//! forward (over the socket); if it crashed, the tray says so and the next "Open chat" starts a
//! new one.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::clients::Clients;
use crate::error::{Error, Result};
use crate::lock::lock;
use crate::notify::Notice;

/// The chat binary's name; it is installed beside the tray's.
pub const CHAT_BIN: &str = "yollayah-chat";

/// Set in the environment of the tray when it re-executed itself with `GDK_GL=disable`
/// (launch.rs, `without_gl`): that is for the tray's sake, and its chat window must not inherit
/// it. It lives here, beside its reader, so that this module does not depend on the launcher.
pub(crate) const NO_GL_MARK: &str = "YOLLAYAH_TRAY_NO_GL";

/// WebKitGTK's switch for rendering without accelerated compositing.
const NO_COMPOSITING_ENV: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";

/// Unix ms at which "Open chat" was handled, passed to the chat process for its timing log.
const OPEN_AT_ENV: &str = "YOLLAYAH_OPEN_AT_MS";

/// Where the chat binary is: `$YOLLAYAH_CHAT_BIN`, else beside our own executable.
pub fn chat_program() -> PathBuf {
    if let Some(path) = std::env::var_os("YOLLAYAH_CHAT_BIN") {
        return PathBuf::from(path);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(CHAT_BIN)))
        .unwrap_or_else(|| PathBuf::from(CHAT_BIN))
}

#[derive(Debug, Default)]
struct Running {
    pid: Option<u32>,
    opened_at: Option<Instant>,
    /// We asked it to end (toggle, Quit): its exit by SIGTERM is a close, not a crash.
    stopping: bool,
}

/// Starts and watches the chat process.
#[derive(Debug)]
pub struct ChatProcess {
    program: PathBuf,
    socket: PathBuf,
    running: Arc<Mutex<Running>>,
}

impl ChatProcess {
    /// A chat process run from `program`, told to connect to `socket`.
    pub fn new(program: PathBuf, socket: PathBuf) -> Self {
        ChatProcess {
            program,
            socket,
            running: Arc::default(),
        }
    }

    /// Whether the chat process is alive.
    pub fn is_running(&self) -> bool {
        lock(&self.running).pid.is_some()
    }

    /// Opens the chat: brings the window forward (through `clients`) when its process runs,
    /// else starts one; if that one crashes, `crashed` hears why, in plain words. Takes the
    /// parts it needs, not the shell: the shell holds this (issue 14: no import cycles).
    pub fn open(
        &self,
        clients: &Clients,
        crashed: impl FnOnce(String) + Send + 'static,
    ) -> Result<()> {
        let mut running = lock(&self.running);
        running.opened_at = Some(Instant::now());
        if running.pid.is_some() {
            clients.focus();
            return Ok(());
        }
        let mut cmd = Command::new(&self.program);
        cmd.arg("--socket").arg(&self.socket).stdin(Stdio::null());
        // The chat logs its start-up steps against this moment (yollayah-chat's `timing`).
        if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
            cmd.env(OPEN_AT_ENV, format!("{:.3}", now.as_secs_f64() * 1000.0));
        }
        if std::env::var_os(NO_GL_MARK).is_some() {
            // GL is off for the tray's own sake; GTK in the chat process may use it.
            cmd.env_remove("GDK_GL");
        }
        // The chat is text: WebKit's accelerated compositing buys it nothing, and setting it up
        // (a GL context in the web process, under Xvfb Mesa's llvmpipe) delayed the first paint
        // by hundreds of ms (docs/benchmarks.md, "Open chat"). A user's own setting wins.
        if std::env::var_os(NO_COMPOSITING_ENV).is_none() {
            cmd.env(NO_COMPOSITING_ENV, "1");
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("starting {}", self.program.display()), e))?;
        running.pid = Some(child.id());
        running.stopping = false;
        drop(running);
        let state = self.running.clone();
        std::thread::Builder::new()
            .name("chat-process".into())
            .spawn(move || reap(&mut child, &state, crashed))
            .map_err(|e| Error::io("starting the chat reaper", e))?;
        Ok(())
    }

    /// The window reported its first paint: logs how long "Open chat" took.
    pub fn painted(&self) {
        if let Some(at) = lock(&self.running).opened_at.take() {
            let ms = at.elapsed().as_secs_f64() * 1000.0;
            tracing::info!("chat window painted {ms:.0} ms after Open chat");
        }
    }

    /// Closes the chat if its process runs, else opens it (the global shortcut,
    /// `--toggle-chat`).
    pub fn toggle(
        &self,
        clients: &Clients,
        crashed: impl FnOnce(String) + Send + 'static,
    ) -> Result<()> {
        if self.is_running() {
            self.stop();
            Ok(())
        } else {
            self.open(clients, crashed)
        }
    }

    /// Ends the chat process (the shortcut's close, Quit).
    pub fn stop(&self) {
        let mut running = lock(&self.running);
        running.stopping = true;
        if let Some(pid) = running.pid {
            // SIGTERM through kill(1): no unsafe code here, and the window closes cleanly.
            let _ = Command::new("kill")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Waits for the chat process; a crash is reported, a close is not.
fn reap(child: &mut Child, state: &Mutex<Running>, crashed: impl FnOnce(String)) {
    let outcome = child.wait();
    let asked = {
        let mut running = lock(state);
        running.pid = None;
        std::mem::take(&mut running.stopping)
    };
    if asked {
        return;
    }
    let problem = match outcome {
        Ok(status) if status.success() => return,
        Ok(status) => format!("The chat window crashed ({status}); Open chat starts a new one."),
        Err(err) => format!("Lost track of the chat window: {err}"),
    };
    crashed(problem);
}

/// The desktop notice for a crashed chat window (`problem`: what [`ChatProcess::open`]'s
/// `crashed` heard).
pub fn crash_notice(problem: String) -> Notice {
    Notice {
        id: yollayah_core::alerts::IncidentId(u64::MAX),
        summary: "Yollayah: the chat window crashed".into(),
        body: problem,
        actions: Vec::new(),
        replaces: None,
    }
}
