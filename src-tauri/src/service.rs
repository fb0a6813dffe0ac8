//! The tray's end of the private socket ([`crate::wire`]): accepts chat windows of this user
//! only, answers their commands ([`crate::commands`]) and sends them events. One bad client
//! (another uid, a malformed or oversized frame, an unknown command) loses its connection;
//! nothing it sends reaches the core.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::Value;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::shell::Shell;
use crate::startup::lock;
use crate::wire::{Request, ServerMessage, WireError, read_frame, write_frame};

/// A connected chat window.
pub type ClientId = u64;

/// Frames queued for one slow client before it is dropped (a window that stops reading must
/// not make the tray hold an ever-growing queue).
const QUEUE: usize = 1024;

/// The connected chat windows.
#[derive(Debug, Default)]
pub struct Clients {
    next: AtomicU64,
    out: Mutex<HashMap<ClientId, mpsc::Sender<Vec<u8>>>>,
}

impl Clients {
    fn add(&self, tx: mpsc::Sender<Vec<u8>>) -> ClientId {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.out).insert(id, tx);
        id
    }

    fn remove(&self, id: ClientId) {
        lock(&self.out).remove(&id);
    }

    /// Whether any chat window is connected (no window: no event is serialised).
    pub fn any(&self) -> bool {
        !lock(&self.out).is_empty()
    }

    fn send(&self, id: ClientId, msg: &ServerMessage) {
        let Ok(frame) = serde_json::to_vec(msg) else {
            return;
        };
        let mut out = lock(&self.out);
        if let Some(tx) = out.get(&id) {
            if tx.try_send(frame).is_err() {
                tracing::warn!(id, "chat window not reading; disconnecting it");
                out.remove(&id);
            }
        }
    }

    fn ids(&self) -> Vec<ClientId> {
        lock(&self.out).keys().copied().collect()
    }

    /// Sends the event `name` to the window `id`.
    pub fn send_event(&self, id: ClientId, name: &str, payload: &impl Serialize) {
        match serde_json::to_value(payload) {
            Ok(payload) => self.send(
                id,
                &ServerMessage::Event {
                    name: name.to_owned(),
                    payload,
                },
            ),
            Err(err) => tracing::warn!(%err, "event not encodable"),
        }
    }

    /// Sends the event `name` to every window.
    pub fn broadcast(&self, name: &str, payload: &impl Serialize) {
        for id in self.ids() {
            self.send_event(id, name, payload);
        }
    }

    /// Asks every window to come forward.
    pub fn focus(&self) {
        for id in self.ids() {
            self.send(id, &ServerMessage::Focus);
        }
    }
}

/// Listens at `path`: a stale file left by a crash is replaced, and the socket is made 0600.
/// Must run inside a tokio runtime.
pub fn bind(path: &Path) -> Result<UnixListener> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io(format!("removing stale {}", path.display()), e));
        }
        _ => {}
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| Error::io(format!("listening on {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("securing {}", path.display()), e))?;
    Ok(listener)
}

/// Serves chat windows on `listener` (a tokio task) until the core stops. Only connections
/// from `uid` (the owner of the socket file: the user who started the tray) are served.
pub fn serve(shell: &Arc<Shell>, listener: UnixListener, uid: u32) {
    let shell = shell.clone();
    let cancel = shell.core.cancel.clone();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        tracing::warn!(%err, "accepting a chat window failed");
                        continue;
                    }
                },
            };
            tokio::spawn(connection(shell.clone(), stream, uid));
        }
    });
}

/// The uid that owns `path` (for a socket we just bound: ours).
pub fn owner_uid(path: &Path) -> Result<u32> {
    std::fs::metadata(path)
        .map(|m| m.uid())
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

async fn connection(shell: Arc<Shell>, stream: UnixStream, uid: u32) {
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == uid => {}
        Ok(cred) => {
            tracing::warn!(peer_uid = cred.uid(), pid = ?cred.pid(), "refused a connection from another user");
            return;
        }
        Err(err) => {
            tracing::warn!(%err, "no peer credentials; connection refused");
            return;
        }
    }
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let id = shell.clients.add(tx.clone());
    tracing::debug!(id, "chat window connected");
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if write_frame(&mut wr, &frame).await.is_err() {
                break;
            }
        }
    });
    loop {
        let frame = match read_frame(&mut rd).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(err) => {
                tracing::warn!(id, %err, "bad frame from a chat window; disconnecting it");
                break;
            }
        };
        let request: Request = match serde_json::from_slice(&frame) {
            Ok(request) => request,
            Err(err) => {
                tracing::warn!(id, %err, "malformed message from a chat window; disconnecting it");
                break;
            }
        };
        let shell = shell.clone();
        tokio::spawn(async move {
            let reply = match crate::commands::handle(&shell, id, request.command).await {
                Ok(value) => reply(request.seq, Ok(value)),
                Err(err) => reply(request.seq, Err(WireError::from(&err))),
            };
            shell.clients.send(id, &reply);
        });
    }
    shell.clients.remove(id);
    drop(tx);
    writer.abort();
    tracing::debug!(id, "chat window disconnected");
}

fn reply(seq: u64, result: std::result::Result<Value, WireError>) -> ServerMessage {
    match result {
        Ok(ok) => ServerMessage::Reply {
            seq,
            ok: Some(ok),
            err: None,
        },
        Err(err) => ServerMessage::Reply {
            seq,
            ok: None,
            err: Some(err),
        },
    }
}
