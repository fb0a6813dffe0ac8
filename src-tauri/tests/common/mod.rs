//! What the host tests share: a recording notification backend, token files, the tray started
//! against a local simulator with a `[[hosts]]` config, and waiting on a host's menu line.
//! Each test file uses part of it.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use yollayah_tray::{
    Backend, ChatProcess, CoreOptions, GpuSource, HostLine, Notice, Shell, Shown, UserFiles,
};

/// How long a host's line or a notice may take to arrive.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A notification daemon that keeps what it is asked to show (the desktop is a system edge).
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Notice>>>);

impl Backend for Recorder {
    fn capabilities(&mut self) -> yollayah_tray::Result<Vec<String>> {
        Ok(vec!["body".into()])
    }

    fn show(&mut self, notice: &Notice, _: Option<u32>, _: bool) -> yollayah_tray::Result<Shown> {
        let mut shown = self.0.lock().expect("lock");
        shown.push(notice.clone());
        Ok(Shown {
            id: u32::try_from(shown.len()).expect("few"),
            wait: None,
        })
    }
}

impl Recorder {
    pub fn find(&self, f: impl Fn(&Notice) -> bool) -> Option<Notice> {
        self.0.lock().expect("lock").iter().find(|n| f(n)).cloned()
    }

    /// Waits for a notice matching `f`; panics naming `what` after [`DEADLINE`].
    pub async fn until(&self, what: &str, f: impl Fn(&Notice) -> bool) -> Notice {
        let end = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(n) = self.find(&f) {
                return n;
            }
            assert!(tokio::time::Instant::now() < end, "no notice: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A token file as `yollayah agent` and the host config want it: the secret, mode 0600.
pub fn secret_file(dir: &Path, name: &str, secret: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{secret}\n")).expect("write secret");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

/// The tray's core against the simulator at `local`, following the `[[hosts]]` of `config`
/// every `tick`; nothing warmed at start, no history, notices recorded.
pub fn start_following(
    dir: &Path,
    local: String,
    config: PathBuf,
    tick: Duration,
) -> (Arc<Shell>, Recorder) {
    let options = CoreOptions {
        ollama_url: Some(local),
        gpu: GpuSource::Simulator,
        config_path: Some(config),
        history_path: Some(None),
        tick: Some(tick),
        warm_on_start: Some(false),
        files: Some(UserFiles::under(dir)),
        ..CoreOptions::default()
    };
    let socket = dir.join("core.sock");
    let chat = ChatProcess::new("/bin/false".into(), socket.clone());
    let notices = Recorder::default();
    let shell = yollayah_tray::start(options, notices.clone(), &socket, chat).expect("core starts");
    (shell, notices)
}

/// Host `name`'s menu line now.
pub fn line(shell: &Shell, name: &str) -> HostLine {
    let view = shell.view();
    view.hosts
        .iter()
        .find(|h| h.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no line for {name}: {:?}", view.hosts))
}

/// Waits until host `name`'s line satisfies `f`; panics with the last line after [`DEADLINE`].
pub async fn until_line(shell: &Shell, name: &str, f: impl Fn(&HostLine) -> bool) -> HostLine {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let l = line(shell, name);
        if f(&l) {
            return l;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "{name} never got there: {l:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
