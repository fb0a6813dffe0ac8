//! The fault matrix (docs/reliability.md): each fault is staged against the real code path
//! (the chat engine, the client, the watchdog, a history database on disk) and each test
//! checks three things: nothing panics and the test ends well inside its bound, the user gets
//! a message that says what happened, and what the user typed (and any part of the reply that
//! arrived) is still in history afterwards, in a database that passes `integrity_check`.
//!
//! Cases already proved elsewhere are cited in docs/reliability.md rather than repeated here.

// Helpers outside #[test] fns are test code too; clippy.toml only exempts the fns.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{MODEL, Rig, bounded, fast_scenario, settings};
use ollama_sim::{Fault, Scenario, SimHandle};
use rusqlite::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use yollayah_core::Error;
use yollayah_core::chat::{ChatEngine, Outgoing, ReplyEvent, ReplyOutcome, SharedHistory};
use yollayah_core::diagnose::Code;
use yollayah_core::events::{Event, Verdict};
use yollayah_core::gpu::NvmlStatus;
use yollayah_core::history::{ConversationId, History, INTERRUPTED, MessageStatus, StoredMessage};
use yollayah_core::ollama::client::{ClientConfig, OllamaClient};
use yollayah_core::persona::PersonaSource;
use yollayah_core::profile::ModelProfile;

/// A history database in a file (not in memory), so that what is "kept" survives a reopen.
struct DiskHistory {
    _dir: tempfile::TempDir,
    path: PathBuf,
    shared: SharedHistory,
}

impl DiskHistory {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        let shared = Arc::new(Mutex::new(History::open(&path).unwrap()));
        DiskHistory {
            _dir: dir,
            path,
            shared,
        }
    }

    /// The conversation's messages as a fresh connection reads them, after checking that the
    /// file is a healthy database.
    fn reread(&self, conversation: ConversationId) -> Vec<StoredMessage> {
        assert_integrity(&self.path);
        History::open(&self.path)
            .unwrap()
            .messages(conversation)
            .unwrap()
    }
}

fn assert_integrity(path: &Path) {
    let check: String = Connection::open(path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", path.display());
}

fn engine_with(client: OllamaClient, profile: ModelProfile, history: SharedHistory) -> ChatEngine {
    ChatEngine::new(
        client,
        Arc::new(PersonaSource::bundled().unwrap()),
        Arc::new(profile),
        history,
        None,
    )
}

fn engine(sim: &SimHandle, history: SharedHistory) -> ChatEngine {
    engine_with(common::client(sim), common::profile(), history)
}

/// Sends one message; returns the outcome (or the engine's error) and every event.
async fn send(
    engine: &ChatEngine,
    conversation: Option<ConversationId>,
    text: &str,
) -> (Result<ReplyOutcome, Error>, Vec<ReplyEvent>) {
    let mut events = Vec::new();
    let out = engine
        .send_message(
            conversation,
            Outgoing::text(text),
            CancellationToken::new(),
            |e| events.push(e),
        )
        .await;
    (out, events)
}

/// The Failed event that must end `events`: its error text and the partial reply it carries.
fn failed(events: &[ReplyEvent]) -> (String, String) {
    match events.last() {
        Some(ReplyEvent::Failed { error, partial, .. }) => (error.clone(), partial.clone()),
        other => panic!("expected the reply to end with Failed, got {other:?} in {events:?}"),
    }
}

fn deltas(events: &[ReplyEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ReplyEvent::Delta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// The user's message and the partial reply are stored, the reply marked incomplete with
/// exactly the error the user was shown.
fn assert_kept(msgs: &[StoredMessage], user: &str, partial: &str, error: &str) {
    let n = msgs.len();
    assert!(n >= 2, "{msgs:?}");
    assert_eq!(
        (msgs[n - 2].role.as_str(), msgs[n - 2].content.as_str()),
        ("user", user)
    );
    assert_eq!(msgs[n - 1].role, "assistant");
    assert_eq!(msgs[n - 1].content, partial);
    assert_eq!(
        msgs[n - 1].status,
        MessageStatus::Incomplete {
            reason: error.to_owned()
        }
    );
}

fn chat_requests(sim: &SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path == "/api/chat")
        .count()
}

#[tokio::test]
async fn ollama_down_at_start_then_up_keeps_the_first_message_and_serves_the_next() {
    bounded(async {
        let sim = ollama_sim::start(fast_scenario()).await.unwrap();
        sim.stop().await;
        let disk = DiskHistory::new();
        let engine = engine(&sim, disk.shared.clone());

        let started = Instant::now();
        let (out, events) = send(&engine, None, "Are you up?").await;
        let out = out.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "refused fast");
        let (error, partial) = failed(&events);
        assert!(error.contains("Ollama is not reachable at"), "{error}");
        assert!(error.contains(&sim.url()), "names the address: {error}");
        assert!(partial.is_empty());

        sim.restart().await;
        let (next, events) = send(&engine, Some(out.conversation), "Now?").await;
        let next = next.unwrap();
        assert!(next.incomplete.is_none(), "{events:?}");
        let msgs = disk.reread(out.conversation);
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert_kept(&msgs[..2], "Are you up?", "", &error);
        assert_eq!(msgs[3].status, MessageStatus::Complete);
        assert_eq!(msgs[3].content, next.text);
        // The failed exchange is not sent back as context.
        let last = sim
            .requests()
            .into_iter()
            .rfind(|r| r.path == "/api/chat")
            .unwrap();
        let roles: Vec<&str> = last.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["role"].as_str())
            .collect();
        assert_eq!(roles, ["system", "user", "user"]);
    })
    .await;
}

#[tokio::test]
async fn ollama_restart_mid_stream_keeps_the_partial_reply() {
    bounded(async {
        let sim = ollama_sim::start(fast_scenario()).await.unwrap();
        sim.set_reply("one two three four five six seven eight");
        // Two chunks, then silence: the restart lands mid-reply, not after it.
        sim.fault(Fault::StallMidStream { after_chunks: 2 });
        let disk = DiskHistory::new();
        let engine = engine(&sim, disk.shared.clone());

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let restarter = {
            let sim = sim.clone();
            tokio::spawn(async move {
                if rx.await.is_ok() {
                    sim.restart().await;
                }
            })
        };
        let mut tx = Some(tx);
        let mut events = Vec::new();
        let started = Instant::now();
        let out = engine
            .send_message(
                None,
                Outgoing::text("Count"),
                CancellationToken::new(),
                |e| {
                    if let ReplyEvent::Delta { text, .. } = &e {
                        if text.contains("two") {
                            if let Some(tx) = tx.take() {
                                let _ = tx.send(());
                            }
                        }
                    }
                    events.push(e);
                },
            )
            .await
            .unwrap();
        restarter.await.unwrap();
        // The client's idle timeout is 5 s: the error came from the dropped connection.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        let (error, partial) = failed(&events);
        assert!(
            error.contains("ended before it was done") || error.contains("HTTP error"),
            "{error}"
        );
        assert_eq!(partial, "one two");
        assert_eq!(partial, deltas(&events));
        assert_kept(&disk.reread(out.conversation), "Count", &partial, &error);

        // Ollama came back with nothing loaded; the next message loads the model again.
        let (again, _) = send(&engine, Some(out.conversation), "Again").await;
        assert!(again.unwrap().incomplete.is_none());
    })
    .await;
}

#[tokio::test]
async fn stall_mid_stream_fires_the_idle_timeout_and_keeps_the_partial_reply() {
    bounded(async {
        let sim = ollama_sim::start(fast_scenario()).await.unwrap();
        sim.set_reply("alpha beta gamma delta epsilon");
        sim.fault(Fault::StallMidStream { after_chunks: 3 });
        let idle = Duration::from_millis(400);
        let client = OllamaClient::new(ClientConfig {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(3),
            load_timeout: Duration::from_secs(10),
            stream_idle_timeout: idle,
            ..ClientConfig::new(sim.url())
        })
        .unwrap();
        let disk = DiskHistory::new();
        let engine = engine_with(client, common::profile(), disk.shared.clone());

        let started = Instant::now();
        let (out, events) = send(&engine, None, "Greek letters").await;
        let out = out.unwrap();
        let took = started.elapsed();
        assert!(took >= idle && took < Duration::from_secs(5), "{took:?}");
        let (error, partial) = failed(&events);
        assert!(
            error.contains("stalled") && error.contains("400ms"),
            "{error}"
        );
        assert_eq!(partial, "alpha beta gamma");
        assert_kept(
            &disk.reread(out.conversation),
            "Greek letters",
            &partial,
            &error,
        );
    })
    .await;
}

#[tokio::test]
async fn malformed_ndjson_line_fails_the_reply_naming_the_line() {
    bounded(async {
        let sim = ollama_sim::start(fast_scenario()).await.unwrap();
        sim.set_reply("red green blue cyan");
        sim.fault(Fault::MalformedLine { after_chunks: 2 });
        let disk = DiskHistory::new();
        let engine = engine(&sim, disk.shared.clone());

        let (out, events) = send(&engine, None, "Colours").await;
        let out = out.unwrap();
        let (error, partial) = failed(&events);
        assert!(
            error.starts_with("invalid line 3 in the stream from Ollama"),
            "{error}"
        );
        assert_eq!(partial, "red green");
        assert_kept(&disk.reread(out.conversation), "Colours", &partial, &error);
    })
    .await;
}

/// Serves one `/api/chat` request with `body` as a close-delimited NDJSON response, then
/// closes the connection: a server that died while writing its last line.
async fn serve_once(body: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        // Read the head and the Content-Length body so the client is not reset mid-send.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = sock.read(&mut chunk).await.unwrap();
            assert!(n > 0, "client closed before sending its request");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
        }
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n";
        sock.write_all(head.as_bytes()).await.unwrap();
        sock.write_all(body.as_bytes()).await.unwrap();
        sock.shutdown().await.unwrap();
    });
    format!("http://{addr}")
}

fn chunk_line(content: &str) -> String {
    format!(
        "{{\"model\":\"{MODEL}\",\"created_at\":\"2025-01-01T00:00:00.000000000Z\",\
         \"message\":{{\"role\":\"assistant\",\"content\":\"{content}\"}},\"done\":false}}\n"
    )
}

#[tokio::test]
async fn truncated_final_chunk_is_a_cut_stream_and_keeps_the_partial_reply() {
    bounded(async {
        let done = format!(
            "{{\"model\":\"{MODEL}\",\"created_at\":\"2025-01-01T00:00:00.000000000Z\",\
             \"message\":{{\"role\":\"assistant\",\"content\":\"\"}},\"done\":true,\
             \"done_reason\":\"stop\",\"total_duration\":123456789,\"eval_count\":2}}\n"
        );
        // The done line is cut in the middle, with no newline: the last write never finished.
        let body = [
            chunk_line("Hello"),
            chunk_line(" world"),
            done[..done.len() / 2].to_owned(),
        ]
        .concat();
        let url = serve_once(body).await;
        let client = OllamaClient::new(ClientConfig {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(3),
            load_timeout: Duration::from_secs(10),
            stream_idle_timeout: Duration::from_secs(5),
            ..ClientConfig::new(url)
        })
        .unwrap();
        let disk = DiskHistory::new();
        let engine = engine_with(client, common::profile(), disk.shared.clone());

        let (out, events) = send(&engine, None, "Say hello").await;
        let out = out.unwrap();
        let (error, partial) = failed(&events);
        // A cut last line is a truncated stream, not "invalid JSON from Ollama".
        assert_eq!(
            error,
            "the stream from Ollama ended before it was done (2 chunks received)"
        );
        assert_eq!(partial, "Hello world");
        assert_kept(
            &disk.reread(out.conversation),
            "Say hello",
            &partial,
            &error,
        );
    })
    .await;
}

#[tokio::test]
async fn http_errors_reach_the_user_in_ollamas_words() {
    bounded(async {
        let sim = ollama_sim::start(fast_scenario()).await.unwrap();
        let disk = DiskHistory::new();
        let engine = engine(&sim, disk.shared.clone());
        let cases: [(u16, &str); 3] = [
            (400, "invalid options: num_ctx"),
            (500, "llama runner process has terminated: exit status 2"),
            (
                503,
                "server busy, please try again.  maximum pending requests exceeded",
            ),
        ];
        let mut conversation = None;
        for (status, message) in cases {
            sim.fault(Fault::Status {
                status,
                message: message.into(),
                count: Some(1),
            });
            let text = format!("case {status}");
            let (out, events) = send(&engine, conversation, &text).await;
            let out = out.unwrap();
            conversation = Some(out.conversation);
            let (error, partial) = failed(&events);
            assert_eq!(error, format!("Ollama returned HTTP {status}: {message}"));
            assert!(partial.is_empty());
            assert_kept(&disk.reread(out.conversation), &text, "", &error);
        }

        // 404 from the real code path: a model that is not pulled.
        let missing = ModelProfile::new(
            "not-pulled:7b",
            common::profile().keep_alive.clone(),
            Default::default(),
        );
        let engine404 = engine_with(common::client(&sim), missing, disk.shared.clone());
        let (out, events) = send(&engine404, conversation, "case 404").await;
        let out = out.unwrap();
        let (error, _) = failed(&events);
        assert_eq!(
            error,
            "Ollama returned HTTP 404: model 'not-pulled:7b' not found"
        );
        let msgs = disk.reread(out.conversation);
        assert_kept(&msgs, "case 404", "", &error);
        assert_eq!(
            msgs.len(),
            8,
            "every user message of the four cases is kept"
        );

        // The faults were one-shot: the same engine works again.
        let (ok, _) = send(&engine, conversation, "fine now?").await;
        assert!(ok.unwrap().incomplete.is_none());
    })
    .await;
}

#[tokio::test]
async fn runtime_oom_keeps_the_partial_reply_and_unloads_everything() {
    bounded(async {
        let sim = ollama_sim::start(fast_scenario()).await.unwrap();
        sim.set_reply("one two three four five");
        let disk = DiskHistory::new();
        let engine = engine(&sim, disk.shared.clone());
        let (warm, _) = send(&engine, None, "warm up").await;
        let conversation = warm.unwrap().conversation;
        assert_eq!(sim.loaded_models(), vec![MODEL.to_owned()]);

        sim.fault(Fault::RuntimeOom);
        let (out, events) = send(&engine, Some(conversation), "Something heavy").await;
        let out = out.unwrap();
        let (error, partial) = failed(&events);
        assert!(
            error.starts_with("Ollama reported an error mid-stream:")
                && error.contains("out of memory"),
            "{error}"
        );
        assert_eq!(partial, "one two", "two chunks arrived before the OOM");
        assert_kept(
            &disk.reread(out.conversation),
            "Something heavy",
            &partial,
            &error,
        );
        assert!(sim.loaded_models().is_empty(), "Ollama expired every model");
    })
    .await;
}

#[tokio::test]
async fn nvml_missing_is_reported_and_placement_rests_on_ps() {
    bounded(async {
        let reason = "libnvidia-ml.so.1: cannot open shared object file: No such file or directory";
        let scenario = Scenario {
            nvml_unavailable: Some(reason.into()),
            ..fast_scenario()
        };
        let mut rig = Rig::start(scenario, settings()).await;
        rig.wait_warm().await;
        let snap = rig
            .events
            .wait_snapshot("a snapshot with NVML unavailable", |s| {
                matches!(&s.nvml, NvmlStatus::Unavailable { .. }) && common::ours_loaded(s)
            })
            .await;
        assert_eq!(
            snap.nvml,
            NvmlStatus::Unavailable {
                reason: reason.into()
            }
        );
        // Without NVML the verdict is what /api/ps says (the model fits: GPU), and the
        // diagnosis says that it could not be cross-checked.
        assert_eq!(snap.verdict, Verdict::Gpu, "{}", snap.headline);
        let ours = snap.diagnoses.iter().find(|d| d.model == MODEL).unwrap();
        assert!(
            ours.finding(Code::NvmlUnavailable).is_some(),
            "{:?}",
            ours.findings
        );
        rig.events.ticks(3).await;
        assert_eq!(
            rig.events
                .count_since(0, |e| matches!(e, Event::AlertRaised(_))),
            0,
            "a missing NVML is not an incident to alert about"
        );

        // The chat (with the watchdog classifying its load) works without NVML.
        let engine = rig.chat_engine();
        let (out, _) = send(&engine, None, "still chatting").await;
        assert!(out.unwrap().incomplete.is_none());
    })
    .await;
}

#[tokio::test]
async fn locked_history_refuses_the_message_before_sending_it() {
    bounded(async {
        let sim = ollama_sim::start(fast_scenario()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        let wait = Duration::from_millis(300);
        let history: SharedHistory = Arc::new(Mutex::new(
            History::open_with_busy_timeout(&path, wait).unwrap(),
        ));
        let engine = engine(&sim, history.clone());
        let (first, _) = send(&engine, None, "before the lock").await;
        let conversation = first.unwrap().conversation;

        // Another process (another Yollayah, a sqlite3 shell) holds the write lock.
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE;").unwrap();
        let started = Instant::now();
        let (out, events) = send(&engine, Some(conversation), "while locked").await;
        let took = started.elapsed();
        let err = out.unwrap_err();
        assert!(matches!(err, Error::HistoryLocked { .. }), "{err:?}");
        assert!(
            err.to_string().contains("is locked by another process"),
            "{err}"
        );
        assert!(took >= wait && took < Duration::from_secs(5), "{took:?}");
        assert!(events.is_empty(), "no reply was started: {events:?}");
        assert_eq!(chat_requests(&sim), 1, "nothing was sent to Ollama");

        other.execute_batch("COMMIT;").unwrap();
        drop(other);
        let (again, _) = send(&engine, Some(conversation), "after the lock").await;
        assert!(again.unwrap().incomplete.is_none());
        assert_integrity(&path);
        let msgs = History::open(&path)
            .unwrap()
            .messages(conversation)
            .unwrap();
        let users: Vec<&str> = msgs
            .iter()
            .filter(|m| m.role == "user")
            .map(|m| m.content.as_str())
            .collect();
        assert_eq!(users, ["before the lock", "after the lock"]);
    })
    .await;
}

/// A tmpfs of a fixed size mounted on a temp dir, unmounted on drop.
struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    /// `None` (with a note on stderr) where mounting is not allowed (not root, no
    /// CAP_SYS_ADMIN, a sandbox).
    fn mount(size: &str) -> Option<TinyDisk> {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Some(TinyDisk { dir }),
            other => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs ({other:?}); the disk-full case needs root \
                     or CAP_SYS_ADMIN"
                );
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk until it refuses a byte, then frees `leave` bytes.
    fn fill(&self, leave: u64) {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let block = vec![0x5Au8; 4096];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC: {e}");
                    break;
                }
            }
        }
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(leave)).unwrap();
    }

    fn free_all(&self) {
        let _ = std::fs::remove_file(self.path().join("filler"));
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Folds the WAL into the database and empties it, from a second connection (as a later
/// open of the app would).
fn checkpoint_truncate(path: &Path) {
    let (busy, _, _): (i64, i64, i64) = Connection::open(path)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(busy, 0, "checkpoint blocked");
}

#[tokio::test]
async fn disk_full_while_writing_history_is_reported_and_corrupts_nothing() {
    bounded(async {
        let Some(disk) = TinyDisk::mount("1m") else {
            return;
        };
        let path = disk.path().join("history.sqlite3");
        let sim = ollama_sim::start(Scenario {
            tokens_per_second: 200_000.0,
            ..fast_scenario()
        })
        .await
        .unwrap();
        let history: SharedHistory = Arc::new(Mutex::new(History::open(&path).unwrap()));
        let engine = engine(&sim, history.clone());
        sim.set_reply("A short first answer.");
        let (first, _) = send(&engine, None, "first").await;
        let first = first.unwrap();
        assert!(first.incomplete.is_none());
        let conversation = first.conversation;

        // 1. The disk is completely full: the message is refused before it is sent. (The WAL
        //    is emptied first: space it already holds would let small writes through.)
        checkpoint_truncate(&path);
        disk.fill(0);
        let (out, events) = send(&engine, Some(conversation), "second").await;
        let err = out.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "history database {}: database or disk is full",
                path.display()
            )
        );
        assert!(events.is_empty(), "no reply was started: {events:?}");
        assert_eq!(chat_requests(&sim), 1, "nothing was sent");

        // 2. Room for the user's message, none for a long reply: the reply streams to the
        //    user, then cannot be stored, and the reply still ends with a Failed event.
        disk.free_all();
        checkpoint_truncate(&path);
        disk.fill(96 * 1024);
        let long: String = (0..20_000).map(|i| format!("w{i:05} ")).collect();
        let long = long.trim_end();
        sim.set_reply(long);
        let (out, events) = send(&engine, Some(conversation), "third").await;
        let err = out.unwrap_err();
        assert!(
            err.to_string().ends_with("database or disk is full"),
            "{err}"
        );
        assert!(
            matches!(events.first(), Some(ReplyEvent::Started { .. })),
            "{:?}",
            events.first()
        );
        let (error, partial) = failed(&events);
        assert_eq!(
            error,
            format!("the reply could not be saved to history: {err}")
        );
        assert_eq!(partial, long, "the user saw the whole reply");
        assert_eq!(chat_requests(&sim), 2);

        // 3. Space again: the database is intact and holds everything that was stored; the
        //    reply that could not be saved keeps its last checkpoint (or nothing) and is
        //    marked interrupted, never left "streaming".
        drop(engine);
        drop(history);
        disk.free_all();
        assert_integrity(&path);
        let msgs = History::open(&path)
            .unwrap()
            .messages(conversation)
            .unwrap();
        let summary: Vec<(&str, &str)> = msgs
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str()))
            .collect();
        assert_eq!(summary.len(), 4, "{:?}", &summary[..3.min(summary.len())]);
        assert_eq!(
            summary[..3],
            [
                ("user", "first"),
                ("assistant", "A short first answer."),
                ("user", "third"),
            ]
        );
        assert_eq!(msgs[3].role, "assistant");
        assert_eq!(
            msgs[3].status,
            MessageStatus::Incomplete {
                reason: INTERRUPTED.into()
            }
        );
        assert!(
            long.starts_with(&msgs[3].content),
            "a checkpoint or nothing"
        );
    })
    .await;
}
