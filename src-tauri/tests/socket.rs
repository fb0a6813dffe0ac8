//! The tray's private socket, attacked: another user's process cannot use it (the file mode
//! stops it, and with the mode opened up on purpose the peer-uid check still does), and a
//! malformed or oversized frame closes that one connection while the tray keeps serving a good
//! client. The real core runs in-process against `ollama-sim`; no display needed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use yollayah_tray::wire::{Client, Command as Cmd};
use yollayah_tray::{
    Backend, ChatProcess, CoreOptions, GpuSource, Notice, Shell, Shown, UserFiles,
};

/// A notification daemon that shows nothing (a system edge; not what this test is about).
struct Quiet;

impl Backend for Quiet {
    fn capabilities(&mut self) -> yollayah_tray::Result<Vec<String>> {
        Ok(vec!["body".into()])
    }

    fn show(&mut self, _: &Notice, _: Option<u32>, _: bool) -> yollayah_tray::Result<Shown> {
        Ok(Shown { id: 1, wait: None })
    }
}

async fn tray(dir: &Path) -> (Arc<Shell>, ollama_sim::SimHandle) {
    let sim = ollama_sim::start(ollama_sim::Scenario::default())
        .await
        .expect("simulator");
    let options = CoreOptions {
        ollama_url: Some(sim.url()),
        gpu: GpuSource::Simulator,
        builtin_config: true,
        warm_on_start: Some(false),
        files: Some(UserFiles::under(dir)),
        ..CoreOptions::default()
    };
    let socket = dir.join("core.sock");
    let chat = ChatProcess::new("/bin/false".into(), socket.clone());
    let shell = yollayah_tray::start(options, Quiet, &socket, chat).expect("core starts");
    (shell, sim)
}

/// Reads until the server closes the connection; panics if it answers or stays open.
async fn closed_without_answer(stream: &mut UnixStream) {
    // Read to the end: the connection must close. Events broadcast to every connection may
    // arrive before the bad frame is read (the watchdog ticks meanwhile); a reply must not.
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
        .await
        .expect("the tray kept a bad connection open")
        .ok();
    let mut rest = got.as_slice();
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(body) = rest.get(4..4 + len) else {
            break;
        };
        let msg: serde_json::Value = serde_json::from_slice(body).expect("a whole frame");
        assert_ne!(
            msg["type"], "reply",
            "the tray answered a bad client: {msg}"
        );
        rest = &rest[4 + len..];
    }
}

fn frame(json: &str) -> Vec<u8> {
    let mut out = u32::try_from(json.len())
        .expect("small")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(json.as_bytes());
    out
}

async fn status_works(socket: &Path) {
    let (client, _heard) = Client::connect(socket).await.expect("connect");
    let status = client.call(Cmd::Status).await.expect("status");
    assert!(status["verdict"]["kind"].is_string(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_closes_only_that_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_shell, _sim) = tray(dir.path()).await;
    let socket = dir.path().join("core.sock");
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    status_works(&socket).await;

    for bad in [
        frame("this is not json"),
        frame(r#"{"seq": 1, "cmd": "rm_rf"}"#),
        frame(r#"{"cmd": "status"}"#),
        // A length far beyond the limit: refused before anything is allocated.
        u32::MAX.to_be_bytes().to_vec(),
    ] {
        let mut stream = UnixStream::connect(&socket).await.expect("connect");
        stream.write_all(&bad).await.expect("write");
        closed_without_answer(&mut stream).await;
        // The tray is unharmed: a good client is served right after.
        status_works(&socket).await;
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a tiny client as uid/gid 65534 (nobody): connects to `socket`, sends a status request
/// and prints what happened (`refused: …`, `closed`, or `answered: …`).
fn as_nobody(socket: &Path) -> String {
    let script = r#"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("refused:", e.strerror); sys.exit(0)
body = b'{"seq": 1, "cmd": "status"}'
try:
    s.sendall(struct.pack(">I", len(body)) + body)
    s.settimeout(10)
    data = s.recv(64)
except OSError as e:
    print("closed:", e.strerror); sys.exit(0)
print("answered: %r" % data if data else "closed")
"#;
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["/usr/bin/python3", "-c", script])
        .arg(socket)
        .output()
        .expect("run setpriv (util-linux) and /usr/bin/python3");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_cannot_use_the_socket() {
    if !is_root() {
        eprintln!(
            "SKIPPED another_user_cannot_use_the_socket: needs root to run a client as another uid"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_shell, _sim) = tray(dir.path()).await;
    let socket = dir.path().join("core.sock");

    // As installed: the folder and the socket file keep other users out.
    let heard = tokio::task::spawn_blocking({
        let socket = socket.clone();
        move || as_nobody(&socket)
    })
    .await
    .expect("client");
    assert!(heard.starts_with("refused"), "another uid got in: {heard}");

    // With the file modes opened up on purpose, the peer-uid check still closes the door.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let heard = tokio::task::spawn_blocking({
        let socket = socket.clone();
        move || as_nobody(&socket)
    })
    .await
    .expect("client");
    assert!(
        heard.starts_with("closed"),
        "another uid was answered: {heard}"
    );

    // And the tray goes on serving its own user.
    status_works(&socket).await;
}
