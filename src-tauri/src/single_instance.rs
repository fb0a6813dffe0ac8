//! One instance per user: the first launch listens on a unix socket; a second launch finds it,
//! asks the first to open the chat window, and exits. (A socket of our own instead of
//! tauri-plugin-single-instance: that plugin pulls in a second zbus major version.)

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

const OPEN: &str = "open";

/// `$XDG_RUNTIME_DIR` (per-user, mode 0700, cleared at logout), else the temp dir.
pub fn runtime_dir() -> PathBuf {
    dirs::runtime_dir().unwrap_or_else(std::env::temp_dir)
}

/// `$XDG_RUNTIME_DIR/yollayah-tray.sock`.
pub fn socket_path() -> PathBuf {
    runtime_dir().join("yollayah-tray.sock")
}

/// Becomes the primary instance (`Some(listener)`), or, when one is already running, asks it
/// to open the chat and returns `None`.
pub fn claim(path: &Path) -> Result<Option<UnixListener>> {
    if let Ok(mut stream) = UnixStream::connect(path) {
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .and_then(|()| writeln!(stream, "{OPEN}"))
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

/// Serves "open" requests from later launches on a thread of its own, calling `on_open` for
/// each. The thread lives as long as the process.
pub fn serve(listener: UnixListener, on_open: impl Fn() + Send + 'static) -> Result<()> {
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
                if BufReader::new(stream).read_line(&mut line).is_ok() && line.trim() == OPEN {
                    on_open();
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
    fn second_claim_asks_the_first_to_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sock");
        let listener = claim(&path).expect("claim").expect("first is primary");
        let (tx, rx) = mpsc::channel();
        serve(listener, move || {
            let _ = tx.send(());
        })
        .expect("serve");
        assert!(
            claim(&path).expect("second claim").is_none(),
            "second became primary"
        );
        rx.recv_timeout(Duration::from_secs(10))
            .expect("first was asked to open");
    }

    #[test]
    fn a_stale_socket_file_is_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sock");
        drop(UnixListener::bind(&path).expect("bind"));
        assert!(path.exists());
        assert!(claim(&path).expect("claim").is_some());
    }
}
