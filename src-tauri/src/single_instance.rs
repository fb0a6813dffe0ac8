//! One instance per user: the first launch listens on a unix socket; a second launch finds it,
//! asks the first to open the chat window (or, with `--toggle-chat`, to open or close it), and
//! exits. (A socket of our own instead of
//! tauri-plugin-single-instance: that plugin pulls in a second zbus major version.)

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// What a later launch asks of the running instance: one line on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Open the chat (a plain second launch).
    Open,
    /// Open the chat if closed, close it if open (`--toggle-chat`).
    Toggle,
}

impl Request {
    fn as_str(self) -> &'static str {
        match self {
            Request::Open => "open",
            Request::Toggle => "toggle",
        }
    }

    fn parse(line: &str) -> Option<Request> {
        [Request::Open, Request::Toggle]
            .into_iter()
            .find(|r| r.as_str() == line.trim())
    }
}

/// `$XDG_RUNTIME_DIR` (per-user, mode 0700, cleared at logout), else the temp dir.
pub fn runtime_dir() -> PathBuf {
    dirs::runtime_dir().unwrap_or_else(std::env::temp_dir)
}

/// `$XDG_RUNTIME_DIR/yollayah-tray.sock`.
pub fn socket_path() -> PathBuf {
    runtime_dir().join("yollayah-tray.sock")
}

/// Becomes the primary instance (`Some(listener)`), or, when one is already running, sends it
/// `request` and returns `None`.
pub fn claim(path: &Path, request: Request) -> Result<Option<UnixListener>> {
    if let Ok(mut stream) = UnixStream::connect(path) {
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .and_then(|()| writeln!(stream, "{}", request.as_str()))
            .map_err(|e| Error::io(format!("talking to {}", path.display()), e))?;
        return Ok(None);
    }
    // Nobody answers: whatever is there is left over from a crash.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io(format!("removing stale {}", path.display()), e));
        }
        _ => {}
    }
    UnixListener::bind(path)
        .map(Some)
        .map_err(|e| Error::io(format!("listening on {}", path.display()), e))
}

/// Serves the requests of later launches on a thread of its own, calling `on_request` for
/// each. The thread lives as long as the process.
pub fn serve(listener: UnixListener, on_request: impl Fn(Request) + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name("single-instance".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                // A client that connects and says nothing must not wedge the loop.
                if stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .is_err()
                {
                    continue;
                }
                let mut line = String::new();
                if BufReader::new(stream).read_line(&mut line).is_ok() {
                    match Request::parse(&line) {
                        Some(request) => on_request(request),
                        None => tracing::warn!(?line, "unknown single-instance request ignored"),
                    }
                }
            }
        })
        .map(|_| ())
        .map_err(|e| Error::io("starting the single-instance thread", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn later_claims_pass_their_request_to_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sock");
        let listener = claim(&path, Request::Open)
            .expect("claim")
            .expect("first is primary");
        let (tx, rx) = mpsc::channel();
        serve(listener, move |request| {
            let _ = tx.send(request);
        })
        .expect("serve");
        for request in [Request::Open, Request::Toggle, Request::Toggle] {
            assert!(
                claim(&path, request).expect("later claim").is_none(),
                "a later launch became primary"
            );
            assert_eq!(
                rx.recv_timeout(Duration::from_secs(10))
                    .expect("the first heard it"),
                request
            );
        }
        // A stray line does not wedge the loop, and later requests still arrive.
        let mut stray = UnixStream::connect(&path).expect("connect");
        writeln!(stray, "format-disk").expect("write");
        drop(stray);
        assert!(claim(&path, Request::Toggle).expect("claim").is_none());
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).expect("heard"),
            Request::Toggle
        );
    }

    #[test]
    fn a_stale_socket_file_is_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sock");
        drop(UnixListener::bind(&path).expect("bind"));
        assert!(path.exists());
        assert!(claim(&path, Request::Toggle).expect("claim").is_some());
    }
}
