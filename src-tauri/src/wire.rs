//! The private socket between the tray (which holds the core) and the chat window's process:
//! typed messages in length-prefixed JSON frames (a big-endian `u32` length, then that many
//! bytes of JSON). The chat window's commands travel as [`Request`]s and come back as
//! [`ServerMessage::Reply`]; the events of [`crate::ipc::events`] travel as
//! [`ServerMessage::Event`]. The payloads are [`crate::ipc`]'s: the contract does not change
//! with the transport.
//!
//! Only the user who started the tray may talk to it: the socket file is mode 0600 in
//! `$XDG_RUNTIME_DIR` (itself 0700), and the server also checks the peer's uid
//! (`SO_PEERCRED`). Anything malformed closes that one connection.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::lock::lock;

/// The largest frame either side accepts. The biggest legitimate frame is an attached image's
/// file in base64 (`attach_image`: at most 25 MiB, 33.4 MiB encoded); a message is at most
/// 1 MiB of text, and its rendering and JSON escaping stay well under 8 MiB. Both peers are the
/// same user (checked), so this bounds a buggy window, not an attacker.
pub const MAX_FRAME: u32 = 36 << 20;

/// `$XDG_RUNTIME_DIR/yollayah-core.sock`, else a per-user folder under the temp dir.
pub fn socket_path() -> PathBuf {
    crate::single_instance::runtime_dir().join("yollayah-core.sock")
}

/// A command of the chat window, as the window's `invoke` names it (`cmd`) with its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// The latest snapshot plus the app's health ([`crate::ipc::StatusReply`]).
    Status,
    /// Sends a message ([`crate::ipc::Started`]).
    SendMessage {
        conversation: Option<i64>,
        text: String,
        /// Images attached with `attach_image`, by their ids (the text may then be empty).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        images: Vec<u64>,
    },
    /// Stops a streaming reply.
    CancelReply { reply: i64 },
    /// Re-sends the question of an incomplete reply ([`crate::ipc::Started`]).
    RetryReply { reply: i64 },
    /// The most recent conversations ([`crate::ipc::ConversationRow`]s).
    ListConversations { limit: usize },
    /// A conversation's messages ([`crate::ipc::MessageRow`]s).
    LoadConversation { id: i64 },
    /// Loads the model now and waits for it.
    Warm,
    /// Unloads the model now.
    Unload,
    /// Opens an http(s)/mailto link with the desktop's handler.
    OpenExternal { url: String },
    /// The sparkline's samples.
    GpuHistory,
    /// The pulled chat models with a fit prediction each (`yollayah_core::models::ModelEntry`s).
    ListModels,
    /// Whether the model sees images, with the size and count limits
    /// ([`crate::ipc::ImageSupport`]).
    ImageSupport,
    /// Prepares a pasted, dropped or picked image (`data`: the file's bytes in base64) and
    /// keeps it until sent ([`crate::ipc::Attachment`]). Refused for a model without vision.
    AttachImage { name: String, data: String },
    /// Forgets an attached image (removed from the composer before sending).
    DiscardImage { id: u64 },
    /// The window painted its first frame (the tray logs how long "Open chat" took).
    Painted,
    /// The picker's choices ([`crate::picker::PickerState`]).
    ChatChoice,
    /// Makes `model` answer the next messages; `None`: the watched model
    /// ([`crate::picker::PickerState`]).
    ChooseModel {
        #[serde(default)]
        model: Option<String>,
    },
    /// Thinking for `model`: `on`, `off`, `low`, `medium`, `high`; `None`: the server's
    /// default ([`crate::picker::PickerState`]).
    SetThink {
        model: String,
        #[serde(default)]
        think: Option<String>,
    },
    /// Makes the watchdog keep `model` warm from now on ([`crate::picker::PickerState`]).
    WatchModel { model: String },
    /// Sends chats to the `[[hosts]]` entry `host`; `None`: `[ollama]`
    /// ([`crate::picker::PickerState`]).
    ChooseHost {
        #[serde(default)]
        host: Option<String>,
    },
    /// Starts pulling a model ([`crate::ipc::PullStarted`]); progress comes as
    /// `yollayah://pull` events.
    PullModel { name: String },
    /// Stops the running pull (`id`: the one the window means; absent: whichever runs).
    CancelPull {
        #[serde(default)]
        id: Option<u64>,
    },
    /// The running pull's state, else how the last one ended, else null
    /// ([`crate::ipc::PullPayload`]).
    PullState,
    /// Checks Ollama now instead of at the next tick, and returns the fresh status
    /// ([`crate::ipc::StatusReply`]): the Retry of the "Ollama is not running" panel.
    CheckNow,
}

/// A numbered command: the reply carries the same `seq`. (Not `id`: commands have arguments
/// of that name, and the command's fields share the object.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub seq: u64,
    #[serde(flatten)]
    pub command: Command,
}

/// An error as the window sees it: the contract's `{ kind, message }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct WireError {
    pub kind: String,
    pub message: String,
}

impl From<&Error> for WireError {
    fn from(err: &Error) -> Self {
        WireError {
            kind: err.kind().to_owned(),
            message: err.to_string(),
        }
    }
}

/// What the tray sends to a chat process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to request `seq`: `ok` or `err`.
    Reply {
        seq: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        ok: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        err: Option<WireError>,
    },
    /// An event for the window (`name` is one of [`crate::ipc::events`]).
    Event { name: String, payload: Value },
    /// "Open chat" was asked while the window is open: bring it forward.
    Focus,
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|len| *len <= MAX_FRAME)
        .ok_or_else(|| std::io::Error::other("frame too large"))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(bytes).await?;
    w.flush().await
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes (at most {MAX_FRAME})"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

/// What a client hears besides replies.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// An event for the window.
    Event { name: String, payload: Value },
    /// Bring the window forward.
    Focus,
    /// The tray went away (quit or crashed).
    Closed,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, WireError>>>>>;

/// The chat process's end of the socket. Cheap to share; calls may run concurrently.
#[derive(Debug)]
pub struct Client {
    out: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    next: AtomicU64,
}

/// How long a connect may take (the tray answers at once or not at all).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Client {
    /// Connects to the tray at `path`. Must run inside a tokio runtime (two tasks carry the
    /// traffic). The receiver hears events, focus requests and the end of the connection.
    pub async fn connect(path: &Path) -> Result<(Client, mpsc::UnboundedReceiver<Heard>)> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(path))
            .await
            .map_err(|_| Error::BadInput(format!("{} did not answer", path.display())))?
            .map_err(|e| Error::io(format!("connecting to {}", path.display()), e))?;
        let (mut rd, mut wr) = stream.into_split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                if write_frame(&mut wr, &frame).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let (heard_tx, heard) = mpsc::unbounded_channel();
        let waiting = pending.clone();
        tokio::spawn(async move {
            while let Ok(Some(frame)) = read_frame(&mut rd).await {
                match serde_json::from_slice::<ServerMessage>(&frame) {
                    Ok(ServerMessage::Reply { seq, ok, err }) => {
                        if let Some(tx) = lock(&waiting).remove(&seq) {
                            let _ = tx.send(match err {
                                Some(err) => Err(err),
                                None => Ok(ok.unwrap_or(Value::Null)),
                            });
                        }
                    }
                    Ok(ServerMessage::Event { name, payload }) => {
                        let _ = heard_tx.send(Heard::Event { name, payload });
                    }
                    Ok(ServerMessage::Focus) => {
                        let _ = heard_tx.send(Heard::Focus);
                    }
                    Err(err) => {
                        tracing::warn!(%err, "malformed message from the tray; disconnecting");
                        break;
                    }
                }
            }
            // Every call still waiting fails (its sender is dropped), and the window hears it.
            lock(&waiting).clear();
            let _ = heard_tx.send(Heard::Closed);
        });
        Ok((
            Client {
                out,
                pending,
                next: AtomicU64::new(1),
            },
            heard,
        ))
    }

    /// Sends `command` and waits for its reply.
    pub async fn call(&self, command: Command) -> Result<Value, WireError> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let frame = serde_json::to_vec(&Request { seq, command }).map_err(|e| WireError {
            kind: "internal".into(),
            message: e.to_string(),
        })?;
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(seq, tx);
        let gone = || WireError {
            kind: "unavailable".into(),
            message: "the Yollayah tray is not running".into(),
        };
        if self.out.send(frame).is_err() {
            lock(&self.pending).remove(&seq);
            return Err(gone());
        }
        rx.await.unwrap_or_else(|_| Err(gone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_are_the_windows_invoke_names_and_arguments() {
        let req: Request = serde_json::from_value(
            json!({"seq": 3, "cmd": "send_message", "conversation": null, "text": "hi"}),
        )
        .expect("parses");
        assert_eq!(
            req.command,
            Command::SendMessage {
                conversation: None,
                text: "hi".into(),
                images: vec![],
            }
        );
        let with_images: Request = serde_json::from_value(json!({"seq": 5,
            "cmd": "send_message", "conversation": 2, "text": "", "images": [7, 8]}))
        .expect("images by id");
        assert_eq!(
            with_images.command,
            Command::SendMessage {
                conversation: Some(2),
                text: String::new(),
                images: vec![7, 8],
            }
        );
        let attach: Request = serde_json::from_value(
            json!({"seq": 6, "cmd": "attach_image", "name": "a.png", "data": "AAAA"}),
        )
        .expect("attach_image");
        assert_eq!(
            attach.command,
            Command::AttachImage {
                name: "a.png".into(),
                data: "AAAA".into()
            }
        );
        let load: Request =
            serde_json::from_value(json!({"seq": 4, "cmd": "load_conversation", "id": 9}))
                .expect("an `id` argument is the command's");
        assert_eq!(load.command, Command::LoadConversation { id: 9 });
        assert!(serde_json::from_value::<Request>(json!({"seq": 1, "cmd": "rm_rf"})).is_err());
        assert!(serde_json::from_value::<Request>(json!({"cmd": "warm"})).is_err());
    }

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            write_frame(&mut a, b"{\"x\":1}").await.expect("write");
            a.write_all(&(MAX_FRAME + 1).to_be_bytes())
                .await
                .expect("write");
        });
        assert_eq!(
            read_frame(&mut b).await.expect("read"),
            Some(b"{\"x\":1}".to_vec())
        );
        assert!(read_frame(&mut b).await.is_err(), "oversized frame read");
        writer.await.expect("writer");
    }
}
