//! The chat window's process (`yollayah-chat`), started on demand and gone when the window
//! closes, so the always-on tray never runs WebKit. "Open chat" while it runs brings the window
//! forward (over the socket); if it crashed, the tray says so and the next "Open chat" starts a
//! new one.
//!
//! Opening the tray menu starts one *hidden* ([`ChatProcess::prestart`]): a fresh WebKit
//! process takes ~300 ms to paint, about the time a hand takes from opening the menu to
//! clicking "Open chat", which then only shows the loaded window. A pre-started process that is
//! not shown is stopped a few seconds after the menu closes ([`ChatProcess::stop_unused`]), so
//! the idle tray runs no WebKit.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::clients::{ClientId, Clients};
use crate::error::{Error, Result};
use crate::lock::lock;
use crate::notify::Notice;
use crate::wire::ServerMessage;

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
    /// We asked it to end (toggle, Quit, unused pre-start): its exit by SIGTERM is a close, not
    /// a crash.
    stopping: bool,
    /// The process was started hidden (menu opened): it shows its window on `Focus` only.
    started_hidden: bool,
    /// "Open chat" asked for its window since it started (false: pre-started, still hidden).
    shown: bool,
    /// Counts the menu's openings and closings: a stop planned at one of them runs only if
    /// none came after it.
    menu_moves: u64,
}

impl Running {
    /// Whether a process runs that is not on its way out.
    fn alive(&self) -> bool {
        self.pid.is_some() && !self.stopping
    }
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

    /// Opens the chat: brings the window forward (through `clients`) when its process runs
    /// (pre-started hidden or open), else starts one; if that one crashes, `crashed` hears why,
    /// in plain words. Takes the parts it needs, not the shell: the shell holds this (issue 14:
    /// no import cycles).
    pub fn open(
        &self,
        clients: &Clients,
        crashed: impl FnOnce(String) + Send + 'static,
    ) -> Result<()> {
        let mut running = lock(&self.running);
        running.opened_at = Some(Instant::now());
        if running.alive() {
            running.shown = true;
            // A pre-started process that has not connected yet hears it on connecting
            // ([`ChatProcess::connected`]).
            drop(running);
            clients.focus();
            return Ok(());
        }
        self.spawn(running, true, crashed)
    }

    /// The tray menu is opening: starts the chat process hidden, unless one runs, so that
    /// "Open chat" finds its page loaded. Returns the menu's move count, for
    /// [`ChatProcess::stop_unused`] (a host may never say that the menu closed).
    pub fn prestart(&self, crashed: impl FnOnce(String) + Send + 'static) -> Result<u64> {
        let mut running = lock(&self.running);
        running.menu_moves += 1;
        let moves = running.menu_moves;
        if !running.alive() {
            self.spawn(running, false, crashed)?;
        }
        Ok(moves)
    }

    /// The tray menu closed: returns the menu's move count, for [`ChatProcess::stop_unused`].
    pub fn menu_closed(&self) -> u64 {
        let mut running = lock(&self.running);
        running.menu_moves += 1;
        running.menu_moves
    }

    /// Stops a pre-started process that "Open chat" never showed, if the menu has not moved
    /// since `moves` (a reopened menu keeps it). Returns whether it stopped one.
    pub fn stop_unused(&self, moves: u64) -> bool {
        let running = lock(&self.running);
        if running.menu_moves != moves || !running.alive() || running.shown {
            return false;
        }
        tracing::info!("the menu closed without Open chat: stopping the pre-started chat");
        self.kill(running);
        true
    }

    /// A chat window connected as `id`: a pre-started one that "Open chat" asked for before
    /// it connected shows its window now.
    pub fn connected(&self, clients: &Clients, id: ClientId) {
        let running = lock(&self.running);
        if running.started_hidden && running.shown {
            drop(running);
            clients.send(id, &ServerMessage::Focus);
        }
    }

    /// Starts the process, visible or hidden, in place of any that is on its way out.
    fn spawn(
        &self,
        mut running: MutexGuard<'_, Running>,
        visible: bool,
        crashed: impl FnOnce(String) + Send + 'static,
    ) -> Result<()> {
        let mut cmd = Command::new(&self.program);
        cmd.arg("--socket").arg(&self.socket).stdin(Stdio::null());
        if !visible {
            cmd.arg("--hidden");
        }
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
        let pid = child.id();
        running.pid = Some(pid);
        running.stopping = false;
        running.started_hidden = !visible;
        running.shown = visible;
        drop(running);
        let state = self.running.clone();
        std::thread::Builder::new()
            .name("chat-process".into())
            .spawn(move || reap(&mut child, pid, &state, crashed))
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

    /// Closes the chat if its window is open, else opens it (the global shortcut,
    /// `--toggle-chat`). A pre-started, hidden one counts as closed: it is shown.
    pub fn toggle(
        &self,
        clients: &Clients,
        crashed: impl FnOnce(String) + Send + 'static,
    ) -> Result<()> {
        let running = lock(&self.running);
        if running.alive() && running.shown {
            self.kill(running);
            Ok(())
        } else {
            drop(running);
            self.open(clients, crashed)
        }
    }

    /// Ends the chat process (the shortcut's close, Quit).
    pub fn stop(&self) {
        self.kill(lock(&self.running));
    }

    fn kill(&self, mut running: MutexGuard<'_, Running>) {
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

/// Waits for the chat process `pid`; a crash is reported, a close is not.
fn reap(child: &mut Child, pid: u32, state: &Mutex<Running>, crashed: impl FnOnce(String)) {
    let outcome = child.wait();
    let asked = {
        let mut running = lock(state);
        if running.pid == Some(pid) {
            running.pid = None;
            std::mem::take(&mut running.stopping)
        } else {
            // A newer process took its place: this one was on its way out, asked to stop.
            true
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;
    use tokio::sync::mpsc;

    /// A stand-in for `yollayah-chat` (the process is the system edge here): it writes its
    /// arguments to `args` and waits to be stopped.
    fn fake_chat(dir: &std::path::Path) -> ChatProcess {
        let program = dir.join("fake-chat");
        let script = format!(
            "#!/bin/sh\necho \"$@\" > {}/args\nexec sleep 60\n",
            dir.display()
        );
        std::fs::write(&program, script).expect("script");
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        ChatProcess::new(program, dir.join("socket"))
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn args(dir: &std::path::Path) -> String {
        let path = dir.join("args");
        wait_until("the fake chat's arguments", || path.exists());
        std::fs::read_to_string(path).expect("args")
    }

    /// Crash reports, for asserting that there were none (the reaper runs on its own thread).
    #[derive(Default, Clone)]
    struct Crashes(Arc<Mutex<Vec<String>>>);

    impl Crashes {
        fn hear(&self) -> impl FnOnce(String) + Send + 'static {
            let heard = self.0.clone();
            move |problem| lock(&heard).push(problem)
        }

        fn none(&self) {
            // The reaper reports just after the process is seen gone.
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                lock(&self.0).is_empty(),
                "closes reported as crashes: {:?}",
                self.0
            );
        }
    }

    #[test]
    fn a_pre_started_chat_is_hidden_shown_by_open_and_kept_only_while_wanted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chat = fake_chat(dir.path());
        let crashes = Crashes::default();
        let clients = Clients::default();

        // The menu opens: a hidden chat starts; closing the menu and the grace passing stops it.
        let moves = chat.prestart(crashes.hear()).expect("prestart");
        assert!(chat.is_running());
        assert!(args(dir.path()).contains("--hidden"), "started visible");
        let closed = chat.menu_closed();
        assert!(!chat.stop_unused(moves), "a later menu move was ignored");
        assert!(chat.stop_unused(closed), "an unused pre-start survives");
        wait_until("the unused chat to end", || !chat.is_running());

        // Reopened within the grace: the same process stays; once shown, no stop applies.
        std::fs::remove_file(dir.path().join("args")).expect("rm args");
        chat.prestart(crashes.hear()).expect("prestart");
        let first = chat.menu_closed();
        let again = chat.prestart(crashes.hear()).expect("prestart again");
        assert!(
            !chat.stop_unused(first),
            "the reopened menu's chat was stopped"
        );
        chat.open(&clients, crashes.hear()).expect("open");
        assert!(!chat.stop_unused(again), "a shown chat was stopped");
        assert!(chat.is_running());

        // "Open chat" came before the process connected: it is told to show on connecting.
        let (tx, mut rx) = mpsc::channel(4);
        let id = clients.add(tx);
        chat.connected(&clients, id);
        let frame = rx.try_recv().expect("a focus message on connecting");
        assert_eq!(
            serde_json::from_slice::<ServerMessage>(&frame).expect("frame"),
            ServerMessage::Focus
        );
        chat.stop();
        wait_until("the chat to end", || !chat.is_running());
        crashes.none();
    }

    #[test]
    fn a_chat_started_by_open_is_visible_and_not_told_to_show_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chat = fake_chat(dir.path());
        let crashes = Crashes::default();
        let clients = Clients::default();
        chat.open(&clients, crashes.hear()).expect("open");
        assert!(!args(dir.path()).contains("--hidden"));
        // The menu opening and closing around it leaves the open chat alone.
        chat.prestart(crashes.hear()).expect("prestart");
        assert!(!chat.stop_unused(chat.menu_closed()));
        let (tx, mut rx) = mpsc::channel(4);
        let id = clients.add(tx);
        chat.connected(&clients, id);
        assert!(rx.try_recv().is_err(), "a visible chat was sent focus");
        // The shortcut on an open chat closes it, as before.
        chat.toggle(&clients, crashes.hear()).expect("toggle");
        wait_until("the chat to end", || !chat.is_running());
        crashes.none();
    }
}
